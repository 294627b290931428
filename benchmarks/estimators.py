"""Compare controller estimators on real Fashion-MNIST.

Trains the high-low and cascade D2NNs with each estimator at several cost
weights (one warm-up epoch of random routing first), measures test accuracy
and mean executed FLOPs, and adds the confidence-threshold exit on each
architecture's full static network trained for the same epochs. A second
part builds a binary, imbalanced task ("bag" vs rest, 10% positives) and
compares the per-example reward with the mini-bag F1 reward over the same
cost weights.

Writes `--output` (JSON: `rows` and `imbalanced` lists) and a PNG next to
it. Example (the figures in docs/estimators_and_schedules.md came from this):

    python benchmarks/estimators.py --train_examples=20000 --epochs=3
"""

import argparse
import functools
import json
import pathlib
import time

import keras
import numpy as np
import tensorflow as tf

from keras_d2nn import architectures
from keras_d2nn import data
from keras_d2nn import estimators
from keras_d2nn import schedules
from keras_d2nn.estimators import rewards
from keras_d2nn.experiments import baselines
from keras_d2nn.export import static_network

ESTIMATORS = estimators.NAMED
LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
BAG_CLASS = 8  # "Bag": 10% of Fashion-MNIST


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", default="high_low,cascade")
    parser.add_argument("--estimators", default=",".join(ESTIMATORS))
    parser.add_argument("--cost_weights", default="0.02,0.1,0.3")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--warmup_epochs", type=int, default=1)
    parser.add_argument("--train_examples", type=int, default=20000)
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--bag_size", type=int, default=16)
    parser.add_argument("--skip_imbalanced", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--output", default="benchmarks/results/estimators.json"
    )
    return parser.parse_args()


def train(model, x, y, args, **compile_kwargs):
    model.compile(
        keras.optimizers.Adam(1e-3),
        LOSS,
        metrics=["accuracy"],
        **compile_kwargs,
    )
    start = time.time()
    model.fit(
        x,
        y,
        epochs=args.epochs,
        batch_size=args.batch_size,
        verbose=0,
        callbacks=[schedules.WarmUp(args.warmup_epochs)],
    )
    return time.time() - start


def compare_estimators(args, x, y, x_test, y_test):
    rows, thresholds = [], {}
    for arch in args.archs.split(","):
        for name in args.estimators.split(","):
            for cost_weight in map(float, args.cost_weights.split(",")):
                keras.utils.set_random_seed(args.seed)
                model = architectures.ARCHITECTURES[arch]()
                seconds = train(
                    model,
                    x,
                    y,
                    args,
                    cost_weight=cost_weight,
                    estimator=ESTIMATORS[name](),
                )
                accuracy, flops, _ = baselines.measure(model, x_test, y_test)
                row = {
                    "arch": arch,
                    "estimator": name,
                    "cost_weight": cost_weight,
                    "test_accuracy": accuracy,
                    "mean_flops": flops,
                    "cost_fraction": flops / model.full_flops,
                    "full_flops": model.full_flops,
                    "train_seconds": seconds,
                }
                print(json.dumps(row), flush=True)
                rows.append(row)
        thresholds[arch] = threshold_curve(arch, args, x, y, x_test, y_test)
    return rows, thresholds


def threshold_curve(arch, args, x, y, x_test, y_test):
    """The threshold exit on the full static network of `arch`, trained for
    the same epochs on every example (so every head is trained)."""
    build = architectures.ARCHITECTURES[arch]
    _, route = static_network.static_routes(build().plan)[-1]
    train_ds = (
        tf.data.Dataset.from_tensor_slices((x, y))
        .shuffle(10_000, seed=args.seed)
        .batch(args.batch_size)
    )
    keras.utils.set_random_seed(args.seed)
    full = baselines.train_with_routing(
        build,
        route,
        train_ds,
        args.epochs,
        lambda m: m.compile(keras.optimizers.Adam(1e-3), LOSS),
    )
    return [
        p.as_dict()
        for p in baselines.threshold_exit_curve(full, x_test, y_test)
    ]


def compare_bag_rewards(args, x, y, x_test, y_test):
    """'Bag' vs rest: per-example reward against the mini-bag F1 reward."""
    y_binary = (y == BAG_CLASS).astype("int32")
    y_test_binary = (y_test == BAG_CLASS).astype("int32")
    f1_positive = functools.partial(rewards.f1_score, positive_class=1)
    rows = []
    for reward in ("per_example", "minibag_f1"):
        for cost_weight in map(float, args.cost_weights.split(",")):
            keras.utils.set_random_seed(args.seed)
            model = architectures.high_low(num_classes=2, gate_input="features")
            extra = (
                {"reward_bag_size": args.bag_size, "bag_metric": f1_positive}
                if reward == "minibag_f1"
                else {}
            )
            train(model, x, y_binary, args, cost_weight=cost_weight, **extra)
            logits = model.predict(x_test, batch_size=500, verbose=0)
            f1 = float(f1_positive(y_test_binary, logits))
            _, flops, _ = baselines.measure(model, x_test, y_test_binary)
            row = {
                "reward": reward,
                "cost_weight": cost_weight,
                "test_f1": f1,
                "mean_flops": flops,
                "cost_fraction": flops / model.full_flops,
            }
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def plot(rows, thresholds, imbalanced, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    archs = sorted({r["arch"] for r in rows})
    panels = len(archs) + (1 if imbalanced else 0)
    fig, axes = plt.subplots(1, panels, figsize=(6 * panels, 4.5))
    axes = np.atleast_1d(axes)
    for ax, arch in zip(axes, archs):
        for name in ESTIMATORS:
            mine = sorted(
                (
                    r
                    for r in rows
                    if r["arch"] == arch and r["estimator"] == name
                ),
                key=lambda r: r["cost_fraction"],
            )
            if mine:
                ax.plot(
                    [r["cost_fraction"] for r in mine],
                    [r["test_accuracy"] for r in mine],
                    "o-",
                    label=name,
                )
        curve = sorted(thresholds.get(arch, []), key=lambda p: p["mean_flops"])
        if curve:
            full = next(r["full_flops"] for r in rows if r["arch"] == arch)
            ax.plot(
                [p["mean_flops"] / full for p in curve],
                [p["test_accuracy"] for p in curve],
                "k--",
                label="threshold exit",
            )
        ax.set_title(f"{arch} on Fashion-MNIST")
        ax.set_xlabel("mean FLOPs / full network")
        ax.set_ylabel("test accuracy")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    if imbalanced:
        ax = axes[-1]
        for reward in ("per_example", "minibag_f1"):
            mine = sorted(
                (r for r in imbalanced if r["reward"] == reward),
                key=lambda r: r["cost_fraction"],
            )
            ax.plot(
                [r["cost_fraction"] for r in mine],
                [r["test_f1"] for r in mine],
                "o-",
                label=reward,
            )
        ax.set_title("'Bag' vs rest (10% positives), high-low")
        ax.set_xlabel("mean FLOPs / full network")
        ax.set_ylabel("test F1 of 'Bag'")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    args = parse_args()
    x, y = data.load_arrays(
        "fashion_mnist", "train", take=args.train_examples or None
    )
    x_test, y_test = data.load_arrays("fashion_mnist", "test")
    rows, thresholds = compare_estimators(args, x, y, x_test, y_test)
    imbalanced = (
        []
        if args.skip_imbalanced
        else compare_bag_rewards(args, x, y, x_test, y_test)
    )
    output = pathlib.Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(
        json.dumps(
            {
                "settings": vars(args),
                "rows": rows,
                "thresholds": thresholds,
                "imbalanced": imbalanced,
            },
            indent=2,
        )
    )
    plot(rows, thresholds, imbalanced, output.with_suffix(".png"))
    print(f"wrote {output} and {output.with_suffix('.png')}")


if __name__ == "__main__":
    main()
