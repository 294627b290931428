"""The attention D2NN on the cluttered canvas against the full-resolution
network, the context pass alone, the glimpse rules and the oracle.

For each seed, on the first `--train_examples` canvases of
`fashion_mnist_canvas`'s train split (112x112, or `--canvas=224`), with
the same epochs for every trained contender:

- `d2nn`: `architectures.attention()` trained by `fit_static_first`: its
  modules as the full-resolution network for `--epochs`, then the
  controller alone for `--gate_epochs`, then the modules on the
  controller's routes for `--route_epochs` (the D2NN before this phase
  is reported as `d2nn_before_routes`);
- `full_resolution`: that network (the D2NN's modules after phase one:
  the glimpse network over the whole canvas), the dearest;
- on the D2NN's own modules, the region chosen by a rule
  (`experiments.glimpse_baselines`): centre, random (uniform), saliency
  (the region with the most ink, the rule of thumb), oracle (the region
  holding the item nearest its centre, from the canvas's metadata) and
  any region (correct if any region's answer is: the ceiling of every
  controller on these modules);
- trained alone from the same seed: the static network at half
  resolution (the canvas averaged 2x2, near the D2NN's FLOPs) and the
  context pass alone (the cheapest).

Costs exclude the controller for the rules (they do not run it).

    python benchmarks/attention_canvas.py --seeds=0,1
"""

import argparse
import dataclasses
import json
import pathlib
import platform
import time

import keras
import numpy as np

from keras_d2nn import architectures
from keras_d2nn import data
from keras_d2nn.architectures.attention import full_resolution_network
from keras_d2nn.experiments import glimpse_baselines
from keras_d2nn.recipes import fit_modules_on_routes
from keras_d2nn.recipes import fit_static_first
from keras_d2nn.recipes.own_routes import DEFAULT_LEARNING_RATE

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--canvas", type=int, default=112, choices=(112, 224))
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--gate_epochs", type=int, default=12)
    parser.add_argument("--route_epochs", type=int, default=2)
    parser.add_argument(
        "--skip_static_networks",
        action="store_true",
        help="do not train the half-resolution network and the context "
        "pass alone (they do not depend on the D2NN)",
    )
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--train_examples", type=int, default=55_000)
    parser.add_argument("--test_examples", type=int, default=10_000)
    parser.add_argument(
        "--output", default="benchmarks/results/attention_canvas.json"
    )
    args = parser.parse_args(argv)
    args.seeds = [int(s) for s in args.seeds.split(",") if s]
    return args


def dataset_name(canvas):
    return (
        "fashion_mnist_canvas"
        if canvas == 112
        else f"fashion_mnist_canvas/canvas{canvas}"
    )


def d2nn_point(model, x_test, y_test, positions, seconds):
    routes = model.route(x_test, labels=y_test)
    chosen = np.asarray(routes.decisions["look"])
    boxes = glimpse_baselines.region_boxes(model)
    return {
        "test_accuracy": float(routes.accuracy),
        "mean_flops": float(routes.mean_flops),
        "train_seconds": seconds,
        "region_rates": np.bincount(chosen, minlength=len(boxes)).tolist(),
        "holds_item": float(
            glimpse_baselines.holds_item(boxes, positions, chosen).mean()
        ),
    }


def run_seed(seed, args, x, y, x_test, y_test, positions):
    shape = x.shape[1:]
    keras.utils.set_random_seed(seed)
    model = architectures.attention(shape, 10)
    full = full_resolution_network(model)
    started = time.time()
    fit_static_first(
        model,
        full,
        x,
        y,
        loss=LOSS,
        epochs=args.epochs,
        gate_epochs=args.gate_epochs,
        metrics=["accuracy"],
        batch_size=args.batch_size,
        verbose=2,
        log=print,
    )
    seconds = time.time() - started
    points = {
        "d2nn_before_routes": d2nn_point(
            model, x_test, y_test, positions, seconds
        )
    }
    # The rules and the full-resolution network on the modules of phase
    # one (as the full-resolution network trained them) ...
    found = [
        glimpse_baselines.network_point("full_resolution", full, x_test, y_test)
    ]
    found += glimpse_baselines.rule_points(
        model, x_test, y_test, positions, seed
    )
    phase_one = [v.numpy() for v in full.variables]
    if args.route_epochs:
        print("Phase three: the modules on the controller's routes")
        started = time.time()
        fit_modules_on_routes(
            model,
            x,
            y,
            loss=LOSS,
            epochs=args.route_epochs,
            batch_size=args.batch_size,
            verbose=2,
        )
        seconds += time.time() - started
        points["d2nn"] = d2nn_point(model, x_test, y_test, positions, seconds)
        # ... and on the D2NN's final modules, named "... (final modules)".
        for point in glimpse_baselines.rule_points(
            model, x_test, y_test, positions, seed
        ):
            found.append(
                dataclasses.replace(point, name=f"{point.name} (final modules)")
            )
        # The full-resolution network trained as many epochs as the
        # D2NN's modules: phase one's, then `--route_epochs` more at
        # phase three's learning rate.
        for variable, value in zip(full.variables, phase_one):
            variable.assign(value)
        full.compile(
            keras.optimizers.Adam(DEFAULT_LEARNING_RATE),
            LOSS,
            metrics=["accuracy"],
        )
        full.fit(
            x,
            y,
            epochs=args.route_epochs,
            batch_size=args.batch_size,
            verbose=2,
        )
        found.append(
            glimpse_baselines.network_point(
                "full_resolution_same_epochs", full, x_test, y_test
            )
        )

    def fit(network):
        network.compile("adam", LOSS, metrics=["accuracy"])
        network.fit(
            x,
            y,
            epochs=args.epochs + args.route_epochs,
            batch_size=args.batch_size,
            verbose=2,
        )

    if not args.skip_static_networks:
        found += glimpse_baselines.trained_network_points(
            shape, 10, fit, x_test, y_test, seed
        )
    for point in found:
        points[point.name] = {
            "test_accuracy": point.test_accuracy,
            "mean_flops": point.mean_flops,
            **point.details,
        }
    full_flops = points["full_resolution"]["mean_flops"]
    for point in points.values():
        point["fraction_of_full_resolution"] = point["mean_flops"] / full_flops
    return points


def print_table(results):
    names = list(next(iter(results.values())))
    print(f"{'contender':36s}" + "".join(f"  seed {s:<12}" for s in results))
    for name in names:
        cells = "".join(
            "  {test_accuracy:.4f} @{fraction_of_full_resolution:.3f}".format(
                **r[name]
            )
            for r in results.values()
        )
        print(f"{name:36s}{cells}")


def main(argv=None):
    args = parse_args(argv)
    name = dataset_name(args.canvas)
    x, y = data.load_arrays(name, "train", take=args.train_examples)
    x_test, y_test = data.load_arrays(name, "test", take=args.test_examples)
    positions = data.load_positions(name, "test", take=args.test_examples)
    results = {}
    for seed in args.seeds:
        results[seed] = run_seed(seed, args, x, y, x_test, y_test, positions)
        print_table(results)
    output = pathlib.Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(
        json.dumps(
            {
                "settings": vars(args),
                "machine": platform.processor() or platform.machine(),
                "results": {str(s): r for s, r in results.items()},
            },
            indent=2,
        )
    )
    print(f"Saved {output}")


if __name__ == "__main__":
    main()
