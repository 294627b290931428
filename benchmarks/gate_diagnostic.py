"""Issue 17's gate diagnostic: today's REINFORCE recipe against full
information with a gate on the cheap head's confidence.

Trains the high-low D2NN on Fashion-MNIST with each recipe (same data,
same epochs, same seed), then, on the 10,000 test images and each model's
own modules (every branch computed with forced decisions), compares
ranking examples by the gate's score with ranking them by the cheap
head's max softmax (a threshold exit) at shares 0.1..0.5 sent to `high`,
and the within-predicted-class AUC of each score for finding the images
the expensive branch fixes (`keras_d2nn.experiments.gate_diagnostic`).

Recipes (`--recipes`, comma-separated):

- `reinforce`: the library default: gate on the low features,
  `Reinforce(baseline="value")`, one warm-up epoch of random routing,
  cost weight ramped over one epoch (`schedules.d2nn_schedule`);
- `full_information`: gate on `ConfidenceFeatures` of the low head,
  `FullInformation(objective="value")` with every module trained on
  every example (`module_routing="continue"`), constant cost weight;
- `full_information_features`: the same estimator, gate on the low
  features (ablation);
- `full_information_expected`: confidence gate, `objective="expected"`;
- `full_information_uncentered`: confidence gate, `objective="value"`
  regressing each action's value to its reward (`centered=False`).

    python benchmarks/gate_diagnostic.py --epochs=5
"""

import argparse
import json
import pathlib
import platform
import time

import keras
import tensorflow as tf

from keras_d2nn import architectures
from keras_d2nn import schedules
from keras_d2nn.data import pipelines
from keras_d2nn.estimators import FullInformation
from keras_d2nn.experiments import gate_diagnostic

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
RECIPES = (
    "reinforce",
    "full_information",
    "full_information_features",
    "full_information_expected",
    "full_information_uncentered",
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", default="reinforce,full_information")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument(
        "--train_examples",
        type=int,
        default=0,
        help="first N training images (0: all 60,000)",
    )
    parser.add_argument(
        "--test_examples",
        type=int,
        default=0,
        help="first N test images (0: all 10,000)",
    )
    parser.add_argument("--cost_weight", type=float, default=0.1)
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--output", default="benchmarks/results/gate_diagnostic.json"
    )
    args = parser.parse_args(argv)
    args.recipes = [r for r in args.recipes.split(",") if r]
    unknown = [r for r in args.recipes if r not in RECIPES]
    if unknown:
        parser.error(
            f"unknown recipes {unknown}; expected some of {list(RECIPES)}"
        )
    return args


def build(recipe, args):
    """The compiled model of `recipe` and its training callbacks."""
    keras.utils.set_random_seed(args.seed)
    optimizer = keras.optimizers.Adam(1e-3)
    if recipe == "reinforce":
        model = architectures.high_low(gate_input="features")
        model.compile(
            optimizer, LOSS, metrics=["accuracy"], cost_weight=args.cost_weight
        )
        callbacks = schedules.d2nn_schedule(
            args.cost_weight, args.epochs
        ).callbacks()
        return model, callbacks
    gate_input = (
        "features" if recipe == "full_information_features" else "confidence"
    )
    objective = "expected" if recipe == "full_information_expected" else "value"
    model = architectures.high_low(gate_input=gate_input)
    estimator = FullInformation(
        objective=objective,
        module_routing="continue",
        centered=recipe != "full_information_uncentered",
    )
    model.compile(
        optimizer,
        LOSS,
        metrics=["accuracy"],
        cost_weight=args.cost_weight,
        estimator=estimator,
    )
    return model, []


def main(argv=None):
    args = parse_args(argv)
    train = pipelines.load(
        "fashion_mnist",
        "train",
        args.batch_size,
        take=args.train_examples or None,
        seed=args.seed,
    )
    x_test, y_test = pipelines.load_arrays(
        "fashion_mnist", "test", take=args.test_examples or None
    )
    results = {}
    for recipe in args.recipes:
        model, callbacks = build(recipe, args)
        start = time.time()
        model.fit(
            train,
            epochs=args.epochs,
            verbose=2,
            shuffle=False,
            callbacks=callbacks,
        )
        seconds = time.time() - start
        routes = model.route(x_test, labels=y_test)
        result = gate_diagnostic.diagnose(
            gate_diagnostic.gate_scores(model, x_test, y_test)
        )
        result.update(
            {
                "train_seconds": seconds,
                "test_accuracy": routes.accuracy,
                "mean_cost_fraction": routes.mean_cost_fraction,
            }
        )
        results[recipe] = result
        print(gate_diagnostic.format_diagnostic(recipe, result))
        print(
            f"learned routing: accuracy {routes.accuracy:.4f} at "
            f"{routes.mean_cost_fraction:.3f} of the full FLOPs; "
            f"trained in {seconds:.0f} s",
            flush=True,
        )
    print("\ngate minus threshold (points) at each share sent to high:")
    shares = gate_diagnostic.SHARES
    print(
        f"{'recipe':<28}"
        + "".join(f"{s:>8.1f}" for s in shares)
        + f"{'AUC gate':>10}{'AUC conf':>10}"
    )
    for recipe, result in results.items():
        print(
            f"{recipe:<28}"
            + "".join(
                f"{row['difference_points']:>+8.2f}" for row in result["shares"]
            )
            + f"{result['auc_within_class']['gate']:>10.3f}"
            + f"{result['auc_within_class']['confidence']:>10.3f}"
        )
    output = pathlib.Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(
        json.dumps(
            {
                "args": vars(args),
                "machine": {
                    "processor": platform.machine(),
                    "tensorflow": tf.__version__,
                },
                "results": results,
            },
            indent=1,
        )
    )
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
