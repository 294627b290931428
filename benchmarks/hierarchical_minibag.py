"""The paper's set-level case on the hierarchical D2NN: F1 of a rare class
("Bag", class 8, 10% of the images) at matched FLOPs, with the mini-bag
reward against the per-example reward and against the coarse rules.

For each seed, on the images of `paper_experiments.py` (the same split
flags), every learned contender is `fit_two_phase` on the same images
for the same epochs, then landed on each budget with `calibrate_budget`
on the held-out images; F1 and cost on the test images:

- `per_example`: the job's recipe (each action's reward is minus the
  example's loss);
- `minibag_f1`: the paper's mini-bag reward (`reward_bag_size`, the F1
  of "Bag" per bag of `--bag_size` consecutive examples): each action's
  reward is the bag's F1 when the whole bag takes it;
- `rules`, on the `per_example` model's own modules: `argmax` and
  `argmax+second` swept over the coarse top-1 threshold (see
  `paper_experiments.coarse_rules`), their F1-versus-cost front
  interpolated at each learned contender's cost.

    python benchmarks/hierarchical_minibag.py --seeds=0,1
"""

import argparse
import functools
import json
import pathlib
import platform

import keras
import numpy as np
import paper_experiments

from keras_d2nn import architectures
from keras_d2nn.estimators import rewards
from keras_d2nn.recipes import fit_two_phase

BAG_CLASS = 8  # "Bag"
CONTENDERS = ("per_example", "minibag_f1")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--budgets", default="0.4,0.5,0.6,0.7,0.8")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--gate_epochs", type=int, default=2)
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--bag_size", type=int, default=16)
    parser.add_argument("--train_examples", type=int, default=20_000)
    parser.add_argument("--validation_examples", type=int, default=5000)
    parser.add_argument("--test_examples", type=int, default=0)
    parser.add_argument(
        "--output", default="benchmarks/results/hierarchical_minibag.json"
    )
    args = parser.parse_args(argv)
    args.seeds = [int(s) for s in args.seeds.split(",") if s]
    args.budgets = [float(b) for b in args.budgets.split(",")]
    return args


def f1_of_bag(labels, predictions):
    """F1 of the positive class "Bag" from integer labels and
    predictions."""
    truth, guess = labels == BAG_CLASS, predictions == BAG_CLASS
    true_positive = np.sum(truth & guess)
    denominator = np.sum(truth) + np.sum(guess)
    return float(2 * true_positive / denominator) if denominator else 1.0


def reward_options(contender, args):
    """The contender's task reward, as `compile` arguments."""
    if contender == "minibag_f1":
        return {
            "reward_bag_size": args.bag_size,
            "bag_metric": functools.partial(
                rewards.f1_score, positive_class=BAG_CLASS
            ),
        }
    return {"task_reward": "neg_loss"}


def train(contender, args, seed, train_split):
    keras.utils.set_random_seed(seed)
    model = architectures.hierarchical()
    fit_two_phase(
        model,
        *train_split,
        loss=paper_experiments.LOSS,
        epochs=args.epochs,
        gate_epochs=args.gate_epochs,
        batch_size=args.batch_size,
        verbose=2,
        compile_kwargs={"cost_weight": 0.0, **reward_options(contender, args)},
    )
    return model


def rule_points(model, x, y):
    """The coarse rules' `(cost, F1 of Bag)` points on `model`'s modules."""
    points = paper_experiments.coarse_rules(model, x, y, keep_predictions=True)
    return [(p["cost"], f1_of_bag(y, p.pop("predictions"))) for p in points]


def run_seed(args, seed, train_split, held_out, test):
    x_test, y_test = test
    rows, rules = [], None
    for contender in CONTENDERS:
        print(f"seed {seed}: {contender}", flush=True)
        model = train(contender, args, seed, train_split)
        if rules is None:  # the rules read the job's recipe's modules
            rules = rule_points(model, x_test, y_test)
        for budget in args.budgets:
            landing = model.calibrate_budget(held_out, target_cost=budget)
            routes = model.route(x_test, labels=y_test)
            rows.append(
                {
                    "seed": seed,
                    "contender": contender,
                    "budget": budget,
                    "price": landing.delta,
                    "cost": routes.mean_flop_fraction,
                    "accuracy": routes.accuracy,
                    "f1_bag": f1_of_bag(y_test, routes.predictions),
                }
            )
    front = paper_experiments.pareto(rules)
    for row in rows:
        row["rules_f1_bag"] = paper_experiments.interpolate(front, row["cost"])
        print(json.dumps(row), flush=True)
    return rows, [{"cost": c, "f1_bag": f} for c, f in rules]


def main(argv=None):
    args = parse_args(argv)
    data_args = argparse.Namespace(
        validation_examples=args.validation_examples,
        train_examples=args.train_examples,
        test_examples=args.test_examples,
    )
    train_split, held_out, test = paper_experiments.load_data(data_args)
    results = {
        "settings": {k: v for k, v in vars(args).items() if k != "output"},
        "machine": platform.platform(),
        "rows": [],
        "rules": {},
    }
    output = pathlib.Path(args.output)
    for seed in args.seeds:
        rows, rules = run_seed(args, seed, train_split, held_out, test)
        results["rows"] += rows
        results["rules"][str(seed)] = rules
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(results, indent=1))
    print(
        f"\n{'seed':>4} {'contender':<12}{'budget':>7}{'cost':>7}"
        f"{'F1 bag':>8}{'rules':>8}{'acc':>8}"
    )
    for r in results["rows"]:
        rule = r["rules_f1_bag"]
        print(
            f"{r['seed']:>4} {r['contender']:<12}{r['budget']:>7.2f}"
            f"{r['cost']:>7.3f}{r['f1_bag']:>8.4f}"
            f"{rule if rule is None else format(rule, '.4f'):>8}"
            f"{r['accuracy']:>8.4f}"
        )
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
