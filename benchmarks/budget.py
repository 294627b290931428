"""Budgets on real Fashion-MNIST: the cost asked for and the cost landed.

Trains a D2NN (high-low by default) with `compile(target_cost=budget)` for
each budget, estimator and seed, on the same training data and epochs, read
as the main job reads them (`keras_d2nn.data.pipelines.load`; each run
loads them afresh, so that a seed gives every run the same batches), with
a warm-up of random routing first (during which the multiplier does not
move). On the full test split it measures where the cost landed (executed
FLOPs / full FLOPs of the greedy decisions) and the accuracy. Prints a
table (per budget: the landed cost of each seed, the means, and the
greedy cost on the last epoch's training batches, which the multiplier
steers) and writes `--output` (default
`benchmarks/results/budget_<arch>.json`).

    python benchmarks/budget.py --epochs=3 --train_examples=20000
"""

import argparse
import json
import pathlib
import time

import keras
import numpy as np

from keras_d2nn import architectures
from keras_d2nn import estimators
from keras_d2nn import schedules
from keras_d2nn.data import pipelines

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
RECIPES = (
    "full_information:none",
    "full_information:cosine",
    "reinforce_value:none",
)
TOLERANCE = 0.02


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="high_low")
    parser.add_argument("--budgets", default="0.2,0.3,0.5")
    parser.add_argument(
        "--recipes",
        default=",".join(RECIPES),
        help="comma-separated ESTIMATOR:DECAY, ESTIMATOR one of "
        f"{list(estimators.NAMED)}, DECAY none (a constant learning rate, "
        "as the main job) or cosine (decayed to 0 over the run)",
    )
    parser.add_argument(
        "--gate_input",
        default="features",
        choices=("features", "confidence"),
        help="high_low only: what the gate reads",
    )
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--warmup_epochs", type=int, default=1)
    parser.add_argument("--train_examples", type=int, default=20000)
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--learning_rate", type=float, default=1e-3)
    parser.add_argument(
        "--ema",
        type=float,
        default=0.0,
        help="if > 0: Adam keeps a moving average of the weights with "
        "this momentum, and the model ends with it (Keras's use_ema)",
    )
    parser.add_argument(
        "--budget_learning_rate",
        type=float,
        default=None,
        help="default: the estimator's (compile's default)",
    )
    parser.add_argument(
        "--cost_weight",
        type=float,
        default=0.0,
        help="where the multiplier starts",
    )
    parser.add_argument(
        "--seeds",
        default="0,1,2",
        help="comma-separated: each run once per seed (weights, data order)",
    )
    parser.add_argument("--tfds_dir", default=None)
    parser.add_argument("--data_dir", default=None)
    parser.add_argument(
        "--output", default=None, help="default: results/budget_<arch>.json"
    )
    return parser.parse_args()


def build(args):
    info = pipelines.DATASETS["fashion_mnist"]
    kwargs = dict(input_shape=info["shape"], num_classes=10)
    if args.arch == "high_low":
        kwargs["gate_input"] = args.gate_input
    return architectures.ARCHITECTURES[args.arch](**kwargs)


def learning_rate(args, decay, steps_per_epoch):
    if decay == "none":
        return args.learning_rate
    return keras.optimizers.schedules.CosineDecay(
        args.learning_rate, decay_steps=args.epochs * steps_per_epoch
    )


def training_data(args, seed):
    """The training batches, loaded afresh for each run: a dataset that
    was iterated before would shuffle in another order."""
    return pipelines.load(
        "fashion_mnist",
        "train",
        args.batch_size,
        data_dir=args.tfds_dir,
        manual_dir=args.data_dir,
        take=args.train_examples or None,
        seed=seed,
    )


def run_one(args, name, decay, budget, seed, x_test, y_test):
    keras.utils.set_random_seed(seed)
    train = training_data(args, seed)
    model = build(args)
    steps = int(train.cardinality())
    model.compile(
        keras.optimizers.Adam(
            learning_rate(args, decay, steps),
            use_ema=args.ema > 0,
            ema_momentum=args.ema or 0.99,
        ),
        LOSS,
        metrics=["accuracy"],
        cost_weight=args.cost_weight,
        target_cost=budget,
        budget_learning_rate=args.budget_learning_rate,
        estimator=estimators.by_name(name),
    )
    start = time.time()
    history = model.fit(
        train,
        epochs=args.epochs,
        verbose=0,
        shuffle=False,
        callbacks=schedules.d2nn_callbacks(
            args.cost_weight,
            args.epochs,
            warmup_epochs=args.warmup_epochs,
            target_cost=budget,
        ),
    )
    seconds = time.time() - start
    routes = model.route(x_test, labels=y_test)
    landed = routes.mean_cost_fraction
    return {
        "arch": args.arch,
        "estimator": name,
        "budget_learning_rate": model.cost_budget.learning_rate,
        "decay": decay,
        "seed": seed,
        "budget": budget,
        "landed_cost": landed,
        "within_tolerance": abs(landed - budget) <= TOLERANCE,
        "test_accuracy": routes.accuracy,
        # Per epoch: the multiplier at its end, and the mean cost of the
        # greedy decisions on the training batches.
        "cost_weights": [float(w) for w in history.history["cost_weight"]],
        "train_greedy_costs": [
            float(c) for c in history.history["greedy_cost"]
        ],
        "train_seconds": seconds,
    }


def summarize(rows):
    """Per estimator, decay and budget: the landed costs of the seeds and
    the means."""
    groups = {}
    for row in rows:
        key = (row["estimator"], row["decay"], row["budget"])
        groups.setdefault(key, []).append(row)
    summary = []
    for (name, decay, budget), group in groups.items():
        landed = [r["landed_cost"] for r in group]
        summary.append(
            {
                "estimator": name,
                "decay": decay,
                "budget": budget,
                "landed_costs": landed,
                "mean_landed_cost": float(np.mean(landed)),
                "mean_abs_error": float(
                    np.mean([abs(c - budget) for c in landed])
                ),
                "mean_train_greedy_cost": float(
                    np.mean([r["train_greedy_costs"][-1] for r in group])
                ),
                "mean_test_accuracy": float(
                    np.mean([r["test_accuracy"] for r in group])
                ),
                "mean_final_cost_weight": float(
                    np.mean([r["cost_weights"][-1] for r in group])
                ),
            }
        )
    return summary


def main():
    args = parse_args()
    output = pathlib.Path(
        args.output or f"benchmarks/results/budget_{args.arch}.json"
    )
    x_test, y_test = pipelines.load_arrays(
        "fashion_mnist",
        "test",
        data_dir=args.tfds_dir,
        manual_dir=args.data_dir,
    )
    rows = []
    for recipe in args.recipes.split(","):
        name, _, decay = recipe.partition(":")
        decay = decay or "none"
        if decay not in ("none", "cosine") or name not in estimators.NAMED:
            raise SystemExit(f"--recipes: unknown {recipe!r}")
        for budget in map(float, args.budgets.split(",")):
            for seed in map(int, args.seeds.split(",")):
                row = run_one(args, name, decay, budget, seed, x_test, y_test)
                print(json.dumps(row), flush=True)
                rows.append(row)
    summary = summarize(rows)
    print(
        f"\n{args.arch}, {args.epochs} epochs ({args.warmup_epochs} "
        f"warm-up), {args.train_examples or 60000} training images, seeds "
        f"{args.seeds}; landed: test cost of the final model (per seed); "
        "train: greedy cost on the last epoch's training batches (mean)"
    )
    print(
        f"{'estimator':<18} {'decay':<6} {'asked':>5} {'landed per seed':<22}"
        f" {'mean':>5} {'train':>5} {'accuracy':>8} {'cost_weight':>11}"
    )
    for entry in summary:
        landed = " ".join(f"{c:.3f}" for c in entry["landed_costs"])
        print(
            f"{entry['estimator']:<18} {entry['decay']:<6} "
            f"{entry['budget']:>5.2f} {landed:<22} "
            f"{entry['mean_landed_cost']:>5.3f} "
            f"{entry['mean_train_greedy_cost']:>5.3f} "
            f"{entry['mean_test_accuracy']:>8.4f} "
            f"{entry['mean_final_cost_weight']:>11.4f}"
        )
    within = sum(row["within_tolerance"] for row in rows)
    print(f"{within} of {len(rows)} landed within {TOLERANCE} of the budget")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(
        json.dumps(
            {"settings": vars(args), "summary": summary, "rows": rows},
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
