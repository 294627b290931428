"""FLOP cost against latency cost: the cascade on Fashion-MNIST, TF CPU.

Profiles every node of `keras_d2nn.architectures.cascade()` on TF CPU
(`keras_d2nn.profiling.profile_latency`), then trains two D2NNs for the
same budget, one paying for FLOPs and one for the profiled milliseconds
(`compile(cost="latency")`), and reports for each on the test images:
accuracy, FLOP fraction, predicted milliseconds per example (the
profile's sum over the nodes that ran) and measured milliseconds per
example (the routed model, compiled, at the profile's batch size).

Smoke run (a minute): `python benchmarks/latency_cost.py
--train_examples=512 --test_examples=256 --epochs=1`. The defaults are
the full run; results go to benchmarks/results/latency_cost.json. See
docs/latency_cost.md.
"""

import argparse
import json
import pathlib
import statistics
import time

import keras
import tensorflow as tf

import keras_d2nn
from keras_d2nn.data import pipelines

COSTS = ("flops", "latency")


def parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train_examples", type=int, default=20000)
    parser.add_argument("--test_examples", type=int, default=5000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--target_cost", type=float, default=0.4)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tfds_dir", default=None)
    parser.add_argument(
        "--output", default="benchmarks/results/latency_cost.json"
    )
    return parser.parse_args(argv)


def measured_ms(model, images, batch_size, repeats):
    """Median wall time of the routed model per example, over passes
    through `images` in batches of `batch_size` (a compiled inference
    call, as a server runs it)."""
    call = tf.function(lambda x: model(x, training=False))
    batches = [
        tf.constant(images[i : i + batch_size])
        for i in range(0, len(images) - batch_size + 1, batch_size)
    ]
    for batch in batches[:2]:
        call(batch)  # traced and warm
    times = []
    for _ in range(max(1, repeats // 5)):
        start = time.perf_counter()
        for batch in batches:
            call(batch).numpy()
        times.append(time.perf_counter() - start)
    return 1000.0 * statistics.median(times) / (len(batches) * batch_size)


def run(args):
    x, y = pipelines.load_arrays(
        "fashion_mnist", "train", data_dir=args.tfds_dir
    )
    x, y = x[: args.train_examples], y[: args.train_examples]
    x_test, y_test = pipelines.load_arrays(
        "fashion_mnist",
        "test",
        data_dir=args.tfds_dir,
        take=args.test_examples,
    )
    keras.utils.set_random_seed(args.seed)
    profile = keras_d2nn.profiling.profile_latency(
        keras_d2nn.architectures.cascade(),
        runtime="tf_cpu",
        batch_size=args.batch_size,
        repeats=args.repeats,
    )
    results = {"profile": profile.get_config(), "runs": {}}
    for cost in COSTS:
        keras.utils.set_random_seed(args.seed)
        model = keras_d2nn.architectures.cascade()
        model.compile(
            "adam",
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
            target_cost=args.target_cost,
            cost=cost,
            latency_profile=profile if cost == "latency" else None,
        )
        model.fit(x, y, epochs=args.epochs, batch_size=64, verbose=0)
        routes = model.route(x_test, labels=y_test)
        results["runs"][cost] = {
            "accuracy": routes.accuracy,
            "flop_fraction": routes.mean_flop_fraction,
            "latency_fraction": profile.predict(routes) / profile.full_ms(),
            "predicted_ms": profile.predict(routes),
            "measured_ms": measured_ms(
                model, x_test, args.batch_size, args.repeats
            ),
        }
    return results


def main(argv=None):
    args = parse(argv)
    results = run(args)
    results["settings"] = vars(args)
    print(
        f"{'cost':<8} {'accuracy':>8} {'FLOPs':>6} {'latency':>7} "
        f"{'predicted ms':>12} {'measured ms':>11}"
    )
    for cost, row in results["runs"].items():
        print(
            f"{cost:<8} {row['accuracy']:>8.4f} {row['flop_fraction']:>6.3f} "
            f"{row['latency_fraction']:>7.3f} {row['predicted_ms']:>12.4f} "
            f"{row['measured_ms']:>11.4f}"
        )
    path = pathlib.Path(args.output)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1, default=float))
    return results


if __name__ == "__main__":
    main()
