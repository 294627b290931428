"""Issue 17: what the second phase's gate gains from other rewards or more
epochs, on the same first-phase modules.

For one seed, trains the two-phase recipe's first phase once (as
`tradeoff.py`: high-low, gate on the low head's confidence,
`FullInformation(objective="value")`, every module on every example,
`--epochs` epochs on 55,000 images), saves it, and for each variant
`<reward>-<gate epochs>` trains the controllers alone on those frozen
modules, lands them on each budget with the 5,000 held-out images and
prints the accuracy minus the threshold exit's **on the same modules**
(points, at the landed test cost): a change of gate, not of modules.
Rewards: `correct` (the default: 1 if right), `neg_loss` (minus the
cross-entropy), `prob` (the probability of the true class).

    python benchmarks/gate_variants.py --seed=0 \\
        --variants=correct-3,prob-3,neg_loss-3,correct-6
"""

import argparse
import json
import pathlib

import keras
import tensorflow as tf
import tradeoff

from keras_d2nn.estimators import FullInformation
from keras_d2nn.experiments import baselines

BUDGETS = (0.1, 0.2, 0.3, 0.35, 0.4, 0.5)


def true_class_probability(y_true, logits):
    probabilities = tf.nn.softmax(logits)
    labels = tf.cast(tf.reshape(y_true, [-1]), tf.int32)
    return tf.gather(probabilities, labels, batch_dims=1)


REWARDS = {
    "correct": "correct",
    "neg_loss": "neg_loss",
    "prob": true_class_probability,
}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--variants", default="correct-3,prob-3,neg_loss-3,correct-6"
    )
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch_size", type=int, default=128)
    tradeoff.add_data_flag(parser)
    parser.add_argument("--work_dir", default="/tmp/gate_variants")
    parser.add_argument(
        "--output", default="benchmarks/results/gate_variants.json"
    )
    return parser.parse_args()


def first_phase(args, train):
    """The first phase's model, trained once per seed and saved."""
    path = pathlib.Path(args.work_dir) / f"phase1_seed{args.seed}.keras"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        keras.utils.set_random_seed(args.seed)
        model = tradeoff.build("high_low", "two_phase")
        tradeoff.compile_full_information(model)
        tradeoff.fit(model, train, args)
        model.save(path)
    return path


def run_variant(path, variant, args, data):
    train, held_out, test = data
    reward, epochs = variant.split("-")
    keras.utils.set_random_seed(args.seed)
    model = keras.models.load_model(path, compile=False)
    model.freeze_modules()
    model.compile(
        keras.optimizers.Adam(1e-3),
        tradeoff.LOSS,
        metrics=["accuracy"],
        cost_weight=0.0,
        task_reward=REWARDS[reward],
        estimator=FullInformation(objective="value"),
    )
    seconds = tradeoff.fit(model, train, args, epochs=int(epochs))
    model.set_routing(tradeoff.exit_routing(model, "continue"))
    full_flops = baselines.measure(model, *test, count_controllers=False)[1]
    full_accuracy = model.route(test[0], labels=test[1]).accuracy
    curve = tradeoff.threshold_curve(model, test, full_flops)
    model.set_routing(None)
    rows = {}
    for budget in BUDGETS:
        row = tradeoff.evaluate(model, budget, held_out, test, full_flops)
        reference = tradeoff.threshold_at(curve, row["cost"])
        rows[str(budget)] = {
            "accuracy": row["accuracy"],
            "cost": row["cost"],
            "minus_threshold_points": 100 * (row["accuracy"] - reference),
        }
    return {
        "full_network_accuracy": full_accuracy,
        "gate_seconds": seconds,
        "budgets": rows,
    }


def main():
    args = parse_args()
    data = tradeoff.load_data_of("high_low", args.data_args)
    path = first_phase(args, data[0])
    output = pathlib.Path(args.output)
    results = json.loads(output.read_text()) if output.exists() else {}
    seed = results.setdefault(str(args.seed), {})
    for variant in args.variants.split(","):
        seed[variant] = run_variant(path, variant, args, data)
        output.write_text(json.dumps(results, indent=1))
        cells = "  ".join(
            f"{b}: {r['minus_threshold_points']:+.2f}"
            for b, r in seed[variant]["budgets"].items()
        )
        print(f"seed {args.seed} {variant}: {cells}", flush=True)


if __name__ == "__main__":
    main()
