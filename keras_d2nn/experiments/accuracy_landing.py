"""`train --max_accuracy_drop`: landing the trained D2NN on an accuracy
target on held-out training images, and the test-set figure beside the
promise (`D2NNModel.calibrate_accuracy`).

The promise is kept on the held-out images by construction; on the test
images it holds up to sampling error, which the report shows rather than
hides.
"""

import math

from keras_d2nn.models import calibration


def land(model, x_val, y_val, max_drop, log=print):
    """Sets the cheapest price whose accuracy on `(x_val, y_val)` is at
    most `max_drop` below the model's full network's; returns the
    `AccuracyCalibration`.

    Example: `land(model, x_val, y_val, 0.005)`.
    """
    result = model.calibrate_accuracy(x_val, max_drop, labels=y_val)
    log(
        f"Landed on at most {max_drop:g} accuracy below the full network "
        f"with {len(y_val)} held-out images: {result.accuracy:.4f} against "
        f"{result.reference_accuracy:.4f} ({result.drop:+.4f} lost) at "
        f"{result.cost:.3f} of its cost (price on cost {result.delta:+.4g})."
    )
    return result


def test_figures(model, result, held_out, x_test, y_test, routes):
    """The report's `accuracy_target` entry: the promise, what the
    `held_out` images gave, and the test split's figures (`routes`: the
    test routes at the price found; the full network is routed here, and
    the price put back).

    Example: `test_figures(model, result, 5000, x_test, y_test, routes)`.
    """
    calibration.set_price(model, -calibration.LIMIT)
    try:
        full = model.route(x_test, labels=y_test)
    finally:
        calibration.set_price(model, result.delta)
    drop = full.accuracy - routes.accuracy
    # One standard error of the difference of two accuracies on n images
    # (an upper bound: the two share the examples).
    error = math.sqrt(
        (
            full.accuracy * (1 - full.accuracy)
            + routes.accuracy * (1 - routes.accuracy)
        )
        / routes.examples
    )
    return {
        "max_drop": result.max_drop,
        "price": result.delta,
        "held_out": {
            "examples": held_out,
            "full_accuracy": result.reference_accuracy,
            "accuracy": result.accuracy,
            "drop": result.drop,
            "cost": result.cost,
        },
        "test": {
            "full_accuracy": full.accuracy,
            "accuracy": routes.accuracy,
            "drop": drop,
            "cost": routes.mean_cost_fraction,
            "kept": drop <= result.max_drop + 1e-9,
            "standard_error": error,
        },
    }


def summary_line(entry):
    """The report summary's line for `test_figures`' entry.

    Example: `summary_line(report["accuracy_target"])`.
    """
    test = entry["test"]
    verdict = (
        "kept"
        if test["kept"]
        else f"missed by {test['drop'] - entry['max_drop']:.4f} (one "
        f"standard error of the difference: {test['standard_error']:.4f})"
    )
    return (
        f"accuracy target: at most {entry['max_drop']:g} below the full "
        f"network; on the test split {test['accuracy']:.4f} against "
        f"{test['full_accuracy']:.4f} ({test['drop']:+.4f} lost) at "
        f"{test['cost']:.3f} of its cost: {verdict}"
    )
