"""docs/own_model.md's D2NN on scikit-learn's digits, measured: the learned
gate against the confidence-threshold exit at the same cost, for two gate
sizes, several budgets and seeds; and the accuracy-target landing.

The model and the recipe are the guide's (`build` below is its graph): a
cheap path (Dense 16) with an exit head, a gate on the head's confidence
(`ConfidenceFeatures`), a deep path (Dense 128, 128); two-phase training
(every module on every example, then the gate alone; phase one stopped
early on the validation accuracy at a budget of 0.4); each trained model
is landed on each budget on the validation split (`calibrate_budget`) and
compared on the test split with the threshold exit on its own modules at
its own test FLOPs (`threshold_exit_at_cost`). The splits are the guide's
(sklearn `train_test_split`, `random_state=0`: 942 training, 315
validation, 540 test digits). Prints a table and writes `--output`
(default `benchmarks/results/own_model_digits.json`).

    python benchmarks/own_model_digits.py --seeds=0,1
"""

import argparse
import json
import pathlib

import keras
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import keras_d2nn
from keras_d2nn.callbacks import AccuracyAtBudget
from keras_d2nn.experiments import baselines
from keras_d2nn.layers import ConfidenceFeatures
from keras_d2nn.models import calibration

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--gates", default="8;64,64")
    parser.add_argument("--budgets", default="0.3,0.4,0.5")
    parser.add_argument("--max_drop", type=float, default=0.005)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--gate_epochs", type=int, default=10)
    parser.add_argument(
        "--output",
        default=str(
            pathlib.Path(__file__).parent / "results" / "own_model_digits.json"
        ),
    )
    return parser.parse_args()


def splits():
    """The guide's splits of the digits, scaled to [0, 1]."""
    digits = load_digits()
    x = (digits.data / 16).astype("float32")
    x_train, x_test, y_train, y_test = train_test_split(
        x, digits.target, test_size=0.3, random_state=0, stratify=digits.target
    )
    x_train, x_val, y_train, y_val = train_test_split(
        x_train, y_train, test_size=0.25, random_state=0, stratify=y_train
    )
    return (x_train, y_train), (x_val, y_val), (x_test, y_test)


def build(gate_units):
    """The guide's graph, with the gate's hidden layers `gate_units`."""
    graph = keras_d2nn.Graph()
    graph.input("pixels", shape=(64,), value_range=(0.0, 1.0))
    graph.f_node(
        "cheap", keras.layers.Dense(16, activation="relu"), inputs="pixels"
    )
    graph.f_node("cheap_head", keras.layers.Dense(10), inputs="cheap")
    graph.f_node("confidence", ConfidenceFeatures(), inputs="cheap_head")
    graph.q_node(
        "gate",
        keras_d2nn.Controller(2, hidden_units=gate_units),
        inputs="confidence",
        actions=("stop", "deep"),
    )
    graph.dummy("stop", inputs="cheap_head", when=("gate", "stop"))
    deep = keras.Sequential(
        [
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dense(10),
        ]
    )
    graph.f_node("deep", deep, inputs="pixels", when=("gate", "deep"))
    graph.merge("logits", inputs=["stop", "deep"])
    graph.output("logits")
    graph.supervise("cheap_head")
    graph.early_exit("gate", head="cheap_head", stop="stop", proceed="deep")
    return keras_d2nn.D2NNModel(graph)


def run_one(gate_units, seed, budgets, max_drop, epochs, gate_epochs):
    train, val, test = splits()
    keras.utils.set_random_seed(seed)
    model = build(gate_units)
    with np.errstate(all="ignore"):
        keras_d2nn.fit_two_phase(
            model,
            *train,
            loss=LOSS,
            epochs=epochs,
            gate_epochs=gate_epochs,
            batch_size=32,
            verbose=0,
            # The guide's: the epoch chosen by the accuracy at a budget.
            callbacks=[
                AccuracyAtBudget(val, budget=0.4),
                keras.callbacks.EarlyStopping(
                    monitor="val_accuracy_at_budget",
                    mode="max",
                    patience=5,
                    restore_best_weights=True,
                ),
            ],
        )
    rows = []
    for budget in budgets:
        model.calibrate_budget(val[0], budget)
        routes = model.route(test[0], labels=test[1])
        threshold = baselines.threshold_exit_at_cost(
            model, *test, routes.mean_flops
        )
        rows.append(
            {
                "budget": budget,
                "d2nn_accuracy": routes.accuracy,
                "d2nn_cost": routes.mean_cost_fraction,
                "threshold_accuracy": threshold.test_accuracy,
                "threshold_cost": threshold.mean_flops / model.full_flops,
                "difference_points": 100
                * (routes.accuracy - threshold.test_accuracy),
            }
        )
    target = model.calibrate_accuracy(val[0], max_drop, labels=val[1])
    routes = model.route(test[0], labels=test[1])
    calibration.set_price(model, -calibration.LIMIT)  # the full network
    full = model.route(test[0], labels=test[1])
    return {
        "gate_units": list(gate_units),
        "seed": seed,
        "gate_flops": model.plan.flops["gate"],
        "cheap_path_flops": model.plan.flops["cheap"]
        + model.plan.flops["cheap_head"],
        "full_flops": model.full_flops,
        "budgets": rows,
        "accuracy_target": {
            "max_drop": max_drop,
            "validation_drop": target.drop,
            "validation_cost": target.cost,
            "test_full_accuracy": full.accuracy,
            "test_accuracy": routes.accuracy,
            "test_drop": full.accuracy - routes.accuracy,
            "test_cost": routes.mean_cost_fraction,
        },
    }


def main():
    args = parse_args()
    gates = [
        tuple(int(u) for u in gate.split(",") if u)
        for gate in args.gates.split(";")
    ]
    budgets = [float(b) for b in args.budgets.split(",")]
    runs = []
    for gate_units in gates:
        for seed in (int(s) for s in args.seeds.split(",")):
            run = run_one(
                gate_units,
                seed,
                budgets,
                args.max_drop,
                args.epochs,
                args.gate_epochs,
            )
            runs.append(run)
            print(
                f"gate {gate_units} ({run['gate_flops']:,.0f} FLOPs, cheap "
                f"path {run['cheap_path_flops']:,.0f}, full "
                f"{run['full_flops']:,.0f}), seed {seed}:"
            )
            for row in run["budgets"]:
                print(
                    f"  budget {row['budget']:.1f}: D2NN "
                    f"{row['d2nn_accuracy']:.4f} at {row['d2nn_cost']:.3f}, "
                    f"threshold {row['threshold_accuracy']:.4f} at "
                    f"{row['threshold_cost']:.3f}: "
                    f"{row['difference_points']:+.2f} points"
                )
            t = run["accuracy_target"]
            print(
                f"  at most {t['max_drop']:g} below the full network: "
                f"validation {t['validation_drop']:+.4f} at "
                f"{t['validation_cost']:.3f}; test {t['test_accuracy']:.4f} "
                f"vs {t['test_full_accuracy']:.4f} ({t['test_drop']:+.4f}) "
                f"at {t['test_cost']:.3f}"
            )
    pathlib.Path(args.output).write_text(
        json.dumps(
            {
                "epochs": args.epochs,
                "gate_epochs": args.gate_epochs,
                "runs": runs,
            },
            indent=2,
        )
    )
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
