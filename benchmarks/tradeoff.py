"""Issue 17's benchmark: learned routing against the confidence threshold,
at FLOP budgets, every contender trained on the same data for the same
epochs.

For each seed, on Fashion-MNIST (the last `--validation_examples` of the
60,000 training images held out; every number on the 10,000 test images):

- `threshold`: the full static network (every stage and head trained on
  every example), its confidence-threshold exit swept densely on the test
  images: the reference curve, interpolated at each contender's cost;
- `random`: the same static network with every exit continuing at random,
  at the rate that costs the budget;
- `reinforce`: the library's default (REINFORCE with a value baseline,
  gate on features, one warm-up epoch of random routing), trained with
  `compile(target_cost=budget)`, one model per budget;
- `q_learning`: the paper's estimator, the same way;
- `full_information`: `FullInformation(objective="value")` with every
  module trained on every example and, on high_low and cascade, the
  controllers reading the exit heads' confidence
  (`gate_input="confidence"`). Its logits are
  per-action values of the task reward, so the cost weight only shifts
  them by a constant per action: one model per seed serves every budget;
- `two_phase`: the same, then `--gate_epochs` more epochs in which the
  controllers alone learn, on the frozen modules (`freeze_modules`); the
  modules, trained as the static network's, see `--epochs` epochs like
  every contender's.

Every learned model is then landed on the budget with
`model.calibrate_budget(held_out_images, budget)` (the price on cost that
makes its greedy decisions on the held-out images cost the budget); the
uncalibrated figures are saved too. The difference to the threshold is in
points of accuracy at the contender's own test cost. For single-exit
models it also prints issue 17's diagnostic: the gate against the
threshold on the model's own modules at equal shares, and the
within-class AUC (`keras_d2nn.experiments.gate_diagnostic`).

Results are saved after every trained model; a rerun with the same
`--output` skips what is there (`--fresh` starts over), so contenders and
seeds can be run in several invocations (`--summary_only` then prints and
plots all of them).

    python benchmarks/tradeoff.py --arch=high_low --seeds=0,1
"""

import argparse
import json
import pathlib
import platform
import time

import keras
import numpy as np
import tensorflow as tf

from keras_d2nn import architectures
from keras_d2nn import schedules
from keras_d2nn.data import pipelines
from keras_d2nn.estimators import FullInformation
from keras_d2nn.estimators import QLearning
from keras_d2nn.experiments import baselines
from keras_d2nn.experiments import gate_diagnostic
from keras_d2nn.models import calibration
from keras_d2nn.recipes import fit_two_phase

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
CONTENDERS = (
    "threshold",
    "random",
    "reinforce",
    "q_learning",
    "full_information",
    "two_phase",
)
LEARNED = ("reinforce", "q_learning", "full_information", "two_phase")
# Controllers that serve every budget from one trained model (their logits
# are values of the task reward; calibration prices the cost).
ONE_MODEL_PER_SEED = ("full_information", "two_phase")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--arch", default="high_low", choices=["high_low", "cascade", "chain"]
    )
    parser.add_argument("--budgets", default="0.1,0.2,0.3,0.4,0.5")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--contenders", default=",".join(CONTENDERS))
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument(
        "--gate_epochs",
        type=int,
        default=3,
        help="two_phase: epochs of controller training on frozen modules",
    )
    parser.add_argument("--validation_examples", type=int, default=5000)
    parser.add_argument(
        "--train_examples",
        type=int,
        default=0,
        help="first N training images, before the held-out ones (0: all)",
    )
    parser.add_argument(
        "--test_examples", type=int, default=0, help="0: all 10,000"
    )
    parser.add_argument("--tfds_dir", default=None, help="TFDS data directory")
    parser.add_argument("--output", default="")
    parser.add_argument("--fresh", action="store_true")
    parser.add_argument(
        "--refresh_baselines",
        action="store_true",
        help="train the static network again (same seed) and redo the "
        "threshold and random rows of the seeds already there",
    )
    parser.add_argument(
        "--summary_only",
        action="store_true",
        help="train nothing: summarise and plot what --output holds",
    )
    args = parser.parse_args(argv)
    args.budgets = [float(b) for b in args.budgets.split(",") if b]
    args.seeds = [int(s) for s in args.seeds.split(",") if s]
    args.contenders = [c for c in args.contenders.split(",") if c]
    unknown = [c for c in args.contenders if c not in CONTENDERS]
    if unknown:
        parser.error(f"unknown contenders {unknown}; expected {CONTENDERS}")
    if not args.output:
        args.output = f"benchmarks/results/tradeoff_{args.arch}.json"
    return args


def load_data(args):
    x, y = pipelines.load_arrays(
        "fashion_mnist", "train", data_dir=args.tfds_dir
    )
    held = args.validation_examples
    x_train, y_train = x[:-held], y[:-held]
    if args.train_examples:
        x_train = x_train[: args.train_examples]
        y_train = y_train[: args.train_examples]
    x_test, y_test = pipelines.load_arrays(
        "fashion_mnist",
        "test",
        data_dir=args.tfds_dir,
        take=args.test_examples or None,
    )
    return (x_train, y_train), (x[-held:], y[-held:]), (x_test, y_test)


def add_data_flag(parser):
    """`--data_args`, for the scripts that train on this benchmark's data
    (`gate_variants.py`, `latency_cost.py`, `minibag.py`)."""
    parser.add_argument(
        "--data_args",
        default="",
        help="flags of tradeoff.py's data, e.g. '--train_examples=2000 "
        "--test_examples=1000 --validation_examples=500' (a smoke run)",
    )


def load_data_of(arch, data_args):
    """(train, held out, test) as this benchmark splits them, with the
    data flags `data_args` (a string of tradeoff.py's flags)."""
    return load_data(parse_args([f"--arch={arch}"] + data_args.split()))


def build(arch, contender):
    if arch in ("high_low", "cascade") and contender in ONE_MODEL_PER_SEED:
        return architectures.ARCHITECTURES[arch](gate_input="confidence")
    return architectures.ARCHITECTURES[arch]()


def exit_routing(model, action):
    """`{exit controller: the index of its `action` ("stop"/"continue")}`;
    every controller continues for a graph without declared exits."""
    exits = model.plan.exits
    if not exits:
        return {q: 1 for q in model.plan.controllers}
    return {
        e.controller: model.plan.nodes[e.controller].actions.index(
            e.stop if action == "stop" else e.proceed
        )
        for e in exits
    }


def fit(model, train, args, callbacks=(), epochs=None):
    """Trains for `epochs` (default `--epochs`); returns the seconds."""
    start = time.time()
    model.fit(
        *train,
        epochs=epochs or args.epochs,
        batch_size=args.batch_size,
        shuffle=True,
        verbose=2,
        callbacks=list(callbacks),
    )
    return time.time() - start


def train_static(train, args, seed):
    keras.utils.set_random_seed(seed)
    model = build(args.arch, "static")
    model.compile(keras.optimizers.Adam(1e-3), LOSS, metrics=["accuracy"])
    model.set_routing(exit_routing(model, "continue"))
    seconds = fit(model, train, args)
    return model, seconds


def train_learned(contender, budget, train, args, seed):
    keras.utils.set_random_seed(seed)
    model = build(args.arch, contender)
    if contender in ONE_MODEL_PER_SEED:
        # Values of the task reward alone: the budget is the price that
        # calibration puts on cost (the same decisions as training with
        # that cost weight, whose part of each value is a constant).
        start = time.time()
        fit_two_phase(
            model,
            *train,
            loss=LOSS,
            optimizer=keras.optimizers.Adam(1e-3),
            metrics=["accuracy"],
            compile_kwargs={"cost_weight": 0.0},
            epochs=args.epochs,
            gate_epochs=args.gate_epochs if contender == "two_phase" else 0,
            batch_size=args.batch_size,
            shuffle=True,
            verbose=2,
        )
        return model, time.time() - start
    estimator = QLearning(epsilon=0.1) if contender == "q_learning" else None
    model.compile(
        keras.optimizers.Adam(1e-3),
        LOSS,
        metrics=["accuracy"],
        target_cost=budget,
        estimator=estimator,
    )
    callbacks = schedules.d2nn_schedule(
        0.0, args.epochs, target_cost=budget
    ).callbacks()
    return model, fit(model, train, args, callbacks)


def compile_full_information(model):
    model.compile(
        keras.optimizers.Adam(1e-3),
        LOSS,
        metrics=["accuracy"],
        cost_weight=0.0,
        estimator=FullInformation(objective="value"),
    )


def threshold_curve(static, test, full_flops):
    """(cost fractions, accuracies) of the threshold exit, by cost."""
    x, y = test
    exits = static.plan.exits
    if not exits:
        return None
    # Every percentile of the heads' confidences: points about 0.01 apart
    # in exit rate, so that reading the curve between two of them (a
    # chord, below the concave curve) flatters no contender.
    pooled = np.concatenate(
        list(baselines.exit_confidences(static, x).values())
    )
    thresholds = np.unique(
        np.concatenate([np.quantile(pooled, np.linspace(0, 1, 101)), [1.01]])
    )
    points = baselines.threshold_exit_curve(static, x, y, thresholds)
    points = sorted(points, key=lambda p: p.mean_flops)
    return {
        "cost": [p.mean_flops / full_flops for p in points],
        "accuracy": [p.test_accuracy for p in points],
    }


def threshold_at(curve, cost):
    return float(np.interp(cost, curve["cost"], curve["accuracy"]))


def random_point(static, test, budget, full_flops, seed):
    """Every exit continues with one probability, bisected (on the first
    2,000 test images) so that the test cost is the budget."""
    x, y = test
    rng = np.random.default_rng(seed)
    draws = {q: rng.random(len(x)) for q in static.plan.controllers}
    go_on = exit_routing(static, "continue")
    stop = exit_routing(static, "stop")

    def run(p, n):
        decisions = {
            q: np.where(draws[q][:n] < p, go_on[q], stop[q]).astype(np.int32)
            for q in go_on
        }
        accuracy, flops, _ = baselines.measure(
            static, x[:n], y[:n], decisions, count_controllers=False
        )
        return accuracy, flops / full_flops

    low, high = 0.0, 1.0
    for _ in range(10):
        middle = (low + high) / 2
        _, cost = run(middle, 2000)
        low, high = (middle, high) if cost < budget else (low, middle)
    accuracy, cost = run((low + high) / 2, len(x))
    return {"accuracy": accuracy, "cost": cost}


def evaluate(model, budget, held_out, test, full_flops):
    """The model on the test images before and after calibration."""
    x, y = test
    calibration.set_price(model, 0.0)  # a model serving several budgets
    before = model.route(x, labels=y)
    landed = model.calibrate_budget(held_out[0], target_cost=budget)
    after = model.route(x, labels=y)
    row = {
        "accuracy": after.accuracy,
        "cost": after.mean_flops / full_flops,
        "uncalibrated_accuracy": before.accuracy,
        "uncalibrated_cost": before.mean_flops / full_flops,
        "price": landed.delta,
        "held_out_cost": landed.cost,
    }
    if len(model.plan.exits) == 1:
        diagnostic = gate_diagnostic.diagnose(
            gate_diagnostic.gate_scores(model, x, y)
        )
        row["diagnostic"] = {
            "gate_minus_threshold_points": [
                r["difference_points"] for r in diagnostic["shares"]
            ],
            "auc_within_class": diagnostic["auc_within_class"],
        }
    return row


def load_results(args):
    path = pathlib.Path(args.output)
    if path.exists() and not args.fresh:
        return json.loads(path.read_text())
    return {"seeds": {}}


def save(results, args):
    path = pathlib.Path(args.output)
    path.parent.mkdir(parents=True, exist_ok=True)
    results["settings"] = {
        "arch": args.arch,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "validation_examples": args.validation_examples,
        "train_examples": args.train_examples,
        "test_examples": args.test_examples,
        "machine": platform.machine(),
        "tensorflow": tf.__version__,
        "command": "python benchmarks/tradeoff.py --arch=" + args.arch,
    }
    path.write_text(json.dumps(results, indent=1))


def run_seed(seed, results, args, data):
    train, held_out, test = data
    rows = results["seeds"].setdefault(str(seed), {})
    if "flops" not in rows.get("full_network", {}) or args.refresh_baselines:
        static, seconds = train_static(train, args, seed)
        full_flops = baselines.measure(static, *test, count_controllers=False)[
            1
        ]
        accuracy = static.route(test[0], labels=test[1]).accuracy
        if "full_network" in rows:
            print(
                f"seed {seed}: static network trained again: test accuracy "
                f"{rows['full_network']['accuracy']:.4f} before, "
                f"{accuracy:.4f} now"
            )
        rows["full_network"] = {
            "accuracy": accuracy,
            "flops": full_flops,
            "train_seconds": seconds,
        }
        rows["threshold"] = threshold_curve(static, test, full_flops)
        rows["random"] = {
            str(b): random_point(static, test, b, full_flops, seed)
            for b in args.budgets
        }
        save(results, args)
    full_flops = rows["full_network"]["flops"]
    for contender in [c for c in args.contenders if c in LEARNED]:
        done = rows.setdefault(contender, {})
        model = None
        for budget in args.budgets:
            if str(budget) in done:
                continue
            if model is None or contender not in ONE_MODEL_PER_SEED:
                print(f"seed {seed}: training {contender} at {budget}")
                model, seconds = train_learned(
                    contender, budget, train, args, seed
                )
            row = evaluate(model, budget, held_out, test, full_flops)
            row["train_seconds"] = seconds
            done[str(budget)] = row
            save(results, args)
            print(f"seed {seed} {contender} {budget}: {row}", flush=True)


def summary(results, args):
    """Rows: contender, budget, mean cost, mean accuracy, mean difference
    to the threshold (points), over the seeds that have it."""
    lines = []
    for contender in [c for c in args.contenders if c != "threshold"]:
        for budget in args.budgets:
            diffs, costs, accs = [], [], []
            for rows in results["seeds"].values():
                row = rows.get(contender, {}).get(str(budget))
                if row is None:
                    continue
                costs.append(row["cost"])
                accs.append(row["accuracy"])
                if rows.get("threshold"):
                    reference = threshold_at(rows["threshold"], row["cost"])
                    diffs.append(100 * (row["accuracy"] - reference))
            if costs:
                lines.append(
                    {
                        "contender": contender,
                        "budget": budget,
                        "seeds": len(costs),
                        "cost": float(np.mean(costs)),
                        "accuracy": float(np.mean(accs)),
                        "minus_threshold_points": float(np.mean(diffs))
                        if diffs
                        else None,
                    }
                )
    return lines


def print_summary(lines, results):
    print(
        f"\n{'contender':<18}{'budget':>7}{'seeds':>6}{'cost':>8}"
        f"{'accuracy':>10}{'- threshold':>13}"
    )
    for line in lines:
        diff = line["minus_threshold_points"]
        print(
            f"{line['contender']:<18}{line['budget']:>7.2f}{line['seeds']:>6}"
            f"{line['cost']:>8.3f}{line['accuracy']:>10.4f}"
            + (f"{diff:>+13.2f}" if diff is not None else f"{'n/a':>13}")
        )
    for seed, rows in results["seeds"].items():
        for contender in ONE_MODEL_PER_SEED:
            print_diagnostic(seed, contender, rows.get(contender, {}))


def print_diagnostic(seed, contender, rows):
    """The diagnostic line of one model serving every budget."""
    for row in rows.values():
        if "diagnostic" not in row:
            continue
        d = row["diagnostic"]
        print(
            f"seed {seed} {contender} diagnostic (own modules, gate minus "
            "threshold at shares 0.1..0.5): "
            + " ".join(f"{v:+.2f}" for v in d["gate_minus_threshold_points"])
            + f"; within-class AUC gate {d['auc_within_class']['gate']:.3f}"
            f" vs confidence {d['auc_within_class']['confidence']:.3f}"
        )
        return


def plot(results, lines, args):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4.5))
    for seed, rows in results["seeds"].items():
        if rows.get("threshold"):
            axis.plot(
                rows["threshold"]["cost"],
                rows["threshold"]["accuracy"],
                color="grey",
                alpha=0.6,
                label="threshold exit" if seed == "0" else None,
            )
    markers = {
        "random": "x",
        "reinforce": "s",
        "q_learning": "^",
        "full_information": "o",
        "two_phase": "*",
    }
    for contender, marker in markers.items():
        points = [
            (row["cost"], row["accuracy"])
            for rows in results["seeds"].values()
            for row in rows.get(contender, {}).values()
        ]
        if points:
            cost, accuracy = zip(*points)
            axis.scatter(cost, accuracy, marker=marker, label=contender)
    axis.set_xlim(0, 0.6)
    accuracies = [line["accuracy"] for line in lines] or [0.8]
    axis.set_ylim(min(accuracies) - 0.01, None)
    axis.set_xlabel("cost (fraction of the full network's FLOPs)")
    axis.set_ylabel("test accuracy")
    axis.set_title(f"{args.arch}: learned routing vs threshold exit")
    axis.legend()
    axis.grid(alpha=0.3)
    path = pathlib.Path(args.output).with_suffix(".png")
    figure.savefig(path, dpi=120, bbox_inches="tight")
    print(f"wrote {path}")


def main(argv=None):
    args = parse_args(argv)
    results = load_results(args)
    if not args.summary_only:
        data = load_data(args)
        for seed in args.seeds:
            run_seed(seed, results, args, data)
    lines = summary(results, args)
    results["summary"] = lines
    save(results, args)
    print_summary(lines, results)
    plot(results, lines, args)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
