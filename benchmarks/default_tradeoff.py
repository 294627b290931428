"""The default estimator against the target of the estimators issue.

Trains the high-low D2NN with the library's default recipe (REINFORCE with
a value baseline, one warm-up epoch of random routing, then `cost_weight`
ramped from 0 over `--ramp_epochs`) at several cost weights on all 60,000
Fashion-MNIST training images, and the full static network for the same
epochs, on which the confidence-threshold exit is swept. Everything is
measured on the 10,000 test images. Writes `--output` (JSON) and a PNG next
to it, and prints where the D2NN lands against the target: within 0.3
points of the full network at no more than 35% of its FLOPs, and at least
as accurate as the threshold exit at the same cost.

    python benchmarks/default_tradeoff.py
"""

import argparse
import json
import pathlib

import keras
import numpy as np

from keras_d2nn import architectures
from keras_d2nn import data
from keras_d2nn import schedules
from keras_d2nn.experiments import baselines
from keras_d2nn.inspection import tradeoff_plot

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cost_weights", default="0.05,0.1,0.15,0.2")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--warmup_epochs", type=int, default=1)
    parser.add_argument("--ramp_epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--output", default="benchmarks/results/default_tradeoff.json"
    )
    return parser.parse_args()


def compile_model(model, cost_weight=0.0):
    model.compile(
        keras.optimizers.Adam(1e-3),
        LOSS,
        metrics=["accuracy"],
        cost_weight=cost_weight,
    )


def train_d2nn(cost_weight, args, x, y):
    keras.utils.set_random_seed(args.seed)
    model = architectures.high_low(gate_input="features")
    compile_model(model, cost_weight)
    callbacks = [
        schedules.WarmUp(args.warmup_epochs),
        schedules.CostWeightSchedule(
            schedules.linear_ramp(
                0.0,
                cost_weight,
                epochs=args.ramp_epochs,
                delay=args.warmup_epochs,
            )
        ),
    ]
    model.fit(
        x, y, epochs=args.epochs, batch_size=128, verbose=2, callbacks=callbacks
    )
    return model


def verdict(d2nn, threshold, full):
    """Lines saying where each D2NN point lands against the target."""
    lines = []
    curve = sorted(threshold, key=lambda p: p.mean_flops)
    for p in d2nn:
        fraction = p.mean_flops / full.mean_flops
        # The threshold exit's accuracy at the same cost, interpolated.
        at_cost = float(
            np.interp(
                p.mean_flops,
                [q.mean_flops for q in curve],
                [q.test_accuracy for q in curve],
            )
        )
        lines.append(
            f"{p.name}: accuracy {p.test_accuracy:.4f} at {fraction:.3f} "
            f"of the full network's FLOPs; full network "
            f"{full.test_accuracy:.4f} (gap "
            f"{100 * (full.test_accuracy - p.test_accuracy):.2f} points); "
            f"threshold exit at the same cost {at_cost:.4f} "
            f"({100 * (p.test_accuracy - at_cost):+.2f} points)"
        )
    return lines


def main():
    args = parse_args()
    x, y = data.load_fashion_mnist("train")
    x_test, y_test = data.load_fashion_mnist("test")
    points = []
    for cost_weight in [float(c) for c in args.cost_weights.split(",")]:
        model = train_d2nn(cost_weight, args, x, y)
        accuracy, flops, _ = baselines.measure(model, x_test, y_test)
        points.append(
            baselines.Point(
                f"D2NN cost_weight {cost_weight}",
                "d2nn",
                accuracy,
                flops,
                {"cost_weight": cost_weight},
            )
        )
        print(points[-1])
    keras.utils.set_random_seed(args.seed)
    full_model = architectures.high_low(gate_input="features")
    compile_model(full_model)
    full_model.set_routing({"gate": "high"})
    full_model.fit(x, y, epochs=args.epochs, batch_size=128, verbose=2)
    accuracy, flops, _ = baselines.measure(
        full_model, x_test, y_test, count_controllers=False
    )
    full = baselines.Point(
        "static network gate=high", "static", accuracy, flops
    )
    threshold = baselines.threshold_exit_curve(full_model, x_test, y_test)
    lines = verdict(points, threshold, full)
    print("\n".join(lines))
    output = pathlib.Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    everything = points + [full] + threshold
    output.write_text(
        json.dumps(
            {
                "args": vars(args),
                "points": [p.as_dict() for p in everything],
                "verdict": lines,
            },
            indent=1,
        )
    )
    tradeoff_plot.tradeoff_plot(
        everything,
        output.with_suffix(".png"),
        full_model.full_flops,
        title="High-low D2NN, default estimator, 60k images",
    )
    print(f"wrote {output} and {output.with_suffix('.png')}")


if __name__ == "__main__":
    main()
