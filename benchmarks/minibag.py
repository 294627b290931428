"""Issue 17's mini-bag comparison with the two-phase recipe: "Bag" vs rest
(Fashion-MNIST class 8, 10% of the images), F1 of the positive class at
matched cost.

Contenders (high-low, two classes, gate reading the low head's
confidence; every model landed on each budget with the held-out images,
`calibrate_budget`):

- `two_phase`: the default recipe, per-example reward (1 if right):
  `--epochs` of every module on every example (`FullInformation`), then
  `--gate_epochs` of the gate alone; one model serves every budget;
- `two_phase_minibag`: the same with the paper's mini-bag reward
  (`reward_bag_size`, F1 of the positive class per bag): each action's
  reward is the bag's F1 when the whole bag takes it;
- `reinforce_minibag`: the paper's setting, REINFORCE with the mini-bag
  F1 reward, trained to each budget (`target_cost`), `--epochs` epochs
  plus `--gate_epochs` more (the same number of epochs as the others).

    python benchmarks/minibag.py
"""

import argparse
import functools
import json
import pathlib

import keras
import tradeoff

from keras_d2nn import architectures
from keras_d2nn.estimators import rewards
from keras_d2nn.models import calibration
from keras_d2nn.recipes import fit_two_phase

BAG_CLASS = 8  # "Bag"
CONTENDERS = ("two_phase", "two_phase_minibag", "reinforce_minibag")
F1_POSITIVE = functools.partial(rewards.f1_score, positive_class=1)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", default="0.1,0.3")
    parser.add_argument("--contenders", default=",".join(CONTENDERS))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--gate_epochs", type=int, default=2)
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--bag_size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    tradeoff.add_data_flag(parser)
    parser.add_argument("--output", default="benchmarks/results/minibag.json")
    return parser.parse_args(argv)


def binary(data):
    """The splits with labels 1 for "Bag", 0 for the rest."""
    return [(x, (y == BAG_CLASS).astype("int32")) for x, y in data]


def bag_options(contender, args):
    """The mini-bag reward's `compile` arguments, for its contenders."""
    if contender.endswith("minibag"):
        return {"reward_bag_size": args.bag_size, "bag_metric": F1_POSITIVE}
    return {}


def train(contender, args, train_split, budget=None):
    keras.utils.set_random_seed(args.seed)
    model = architectures.high_low(num_classes=2, gate_input="confidence")
    fit = dict(
        batch_size=args.batch_size,
        shuffle=True,
        verbose=2,
    )
    if contender.startswith("two_phase"):
        fit_two_phase(
            model,
            *train_split,
            loss=tradeoff.LOSS,
            optimizer=keras.optimizers.Adam(1e-3),
            metrics=["accuracy"],
            compile_kwargs={"cost_weight": 0.0, **bag_options(contender, args)},
            epochs=args.epochs,
            gate_epochs=args.gate_epochs,
            **fit,
        )
    else:
        model.compile(
            keras.optimizers.Adam(1e-3),
            tradeoff.LOSS,
            metrics=["accuracy"],
            target_cost=budget,
            **bag_options(contender, args),
        )
        model.fit(*train_split, epochs=args.epochs + args.gate_epochs, **fit)
    return model


def evaluate(model, budget, held_out, test):
    x, y = test
    calibration.set_price(model, 0.0)
    landed = model.calibrate_budget(held_out[0], target_cost=budget)
    routes = model.route(x, labels=y)
    logits = model.predict(x, batch_size=500, verbose=0)
    return {
        "f1_positive": float(F1_POSITIVE(y, logits)),
        "accuracy": routes.accuracy,
        "cost": routes.mean_cost_fraction,
        "price": landed.delta,
    }


def main(argv=None):
    args = parse_args(argv)
    data = binary(tradeoff.load_data_of("high_low", args.data_args))
    train_split, held_out, test = data
    budgets = [float(b) for b in args.budgets.split(",")]
    rows = []
    for contender in args.contenders.split(","):
        model = None
        for budget in budgets:
            if model is None or contender == "reinforce_minibag":
                model = train(contender, args, train_split, budget)
            row = {"contender": contender, "budget": budget}
            row.update(evaluate(model, budget, held_out, test))
            print(json.dumps(row), flush=True)
            rows.append(row)
    print(f"\n{'contender':<20}{'budget':>7}{'cost':>7}{'F1':>8}{'acc':>8}")
    for r in rows:
        print(
            f"{r['contender']:<20}{r['budget']:>7.2f}{r['cost']:>7.3f}"
            f"{r['f1_positive']:>8.4f}{r['accuracy']:>8.4f}"
        )
    path = pathlib.Path(args.output)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps({"settings": vars(args), "rows": rows}, indent=1)
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
