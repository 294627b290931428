"""Landing a trained D2NN on an accuracy target: the cheapest routing that
loses at most `max_drop` against its own full network.

`calibrate_budget` answers "what is the best I get for this cost?". Users
of early-exit networks more often ask the reverse: "how cheap can it be
if I lose at most half a point?". Same knob: the price `delta` on cost
that `calibration.set_price` subtracts from the controllers' logits. A
high price sends examples down cheap routes, a very negative one down the
dearest: the D2NN's full network (every controller taking its costliest
action), whose accuracy is the reference. `calibrate_accuracy` searches
the highest price whose accuracy on labelled held-out data stays within
`max_drop` of that reference, and keeps it.

Accuracy is not a monotone function of the price (a few examples flip
either way), so the search keeps the cheapest passing price of every one
it tried, after bracketing the target and bisecting between the last
price that passed and the first that failed.

The promise holds on the data it was found on; on new data it holds up to
sampling error (about `sqrt(p (1 - p) / n)` of each accuracy). `train
--max_accuracy_drop` reports the test-set figure beside it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from keras_d2nn.models import calibration

# Bisection steps between the last passing and the first failing price.
BISECTION_STEPS = 14


@dataclasses.dataclass(frozen=True)
class AccuracyCalibration:
    """What `calibrate_accuracy` found, on the data it was given.

    Attributes:
        max_drop: the accuracy the routing may lose, asked for (0.005:
            half a point).
        reference_accuracy: the D2NN's full network's (every controller
            taking its costliest action).
        reference_cost: that network's cost fraction (about 1).
        accuracy: the routed accuracy at the price found.
        cost: its mean cost fraction.
        delta: the price on cost now set (`calibrate_budget`'s unit).
        steps: routing passes the search took.

    Example:

    ```python
    result = model.calibrate_accuracy(
        (test_images, test_labels), max_drop=0.005
    )
    result.reference_accuracy - result.accuracy <= 0.005  # True
    ```
    """

    max_drop: float
    reference_accuracy: float
    reference_cost: float
    accuracy: float
    cost: float
    delta: float
    steps: int

    @property
    def drop(self) -> float:
        """The accuracy lost against the reference (negative: gained)."""
        return self.reference_accuracy - self.accuracy


def _check_max_drop(max_drop):
    try:
        value = float(max_drop)
    except (TypeError, ValueError):
        value = float("nan")
    if not 0.0 <= value < 1.0:
        raise ValueError(
            "`max_drop` should be the accuracy the routing may lose, a "
            "fraction in [0, 1) (0.005: half a point). Received: "
            f"max_drop={max_drop!r}"
        )
    return value


def calibrate_accuracy(
    model,
    data: Any,
    max_drop: float,
    labels: Any = None,
    batch_size: int = 256,
) -> AccuracyCalibration:
    """Sets the price on cost that makes `model` as cheap as it gets on
    `data` while losing at most `max_drop` accuracy against its own full
    network, and returns what it found.

    Use labelled examples the model was not trained on (a validation
    split): on training images every route looks accurate.

    Args:
        model: a trained `D2NNModel`.
        data: `(inputs, labels)`, a labelled `tf.data.Dataset`, or inputs
            with `labels=`, as `model.route` takes them.
        max_drop: accuracy it may lose, a fraction (0.005: half a point).
        labels: the labels, when `data` holds inputs only.
        batch_size: of the routing passes.

    Returns:
        An `AccuracyCalibration`. The model keeps the price found
        (`calibration.set_price(model, 0.0)` restores its decisions).

    Example:

    ```python
    result = calibrate_accuracy(model, (x_val, y_val), max_drop=0.01)
    result.accuracy, result.cost  # within a point of the full network
    ```
    """
    max_drop = _check_max_drop(max_drop)
    if (
        labels is None
        and isinstance(data, tuple)
        and len(data) == 2
        and len(model.input_names) == 1
    ):
        data, labels = data
    steps = 0
    tried: dict[float, tuple[float, float]] = {}

    def measure(delta):
        nonlocal steps
        steps += 1
        calibration.set_price(model, delta)
        routes = model.route(data, labels=labels, batch_size=batch_size)
        tried[delta] = (routes.accuracy, routes.mean_cost_fraction)
        return tried[delta]

    reference, reference_cost = measure(-calibration.LIMIT)
    target = reference - max_drop

    def passes(delta):
        accuracy, _ = tried[delta] if delta in tried else measure(delta)
        # A hair of slack for float sums of equal accuracies.
        return accuracy >= target - 1e-9

    # Bracket: `good` passes, `bad` fails, `good < bad` (cost falls as
    # the price rises).
    good, bad = -calibration.LIMIT, None
    price = 0.0
    if passes(price):
        good, price = price, 1.0
        while price <= calibration.LIMIT and passes(price):
            good, price = price, price * 4.0
        bad = price if price <= calibration.LIMIT else None
    else:
        bad, price = price, -1.0
        while price > -calibration.LIMIT and not passes(price):
            bad, price = price, price * 4.0
        if price > -calibration.LIMIT:
            good = price
    if bad is not None:
        for _ in range(BISECTION_STEPS):
            middle = (good + bad) / 2.0
            if passes(middle):
                good = middle
            else:
                bad = middle
    # The cheapest passing price of all tried (accuracy is not monotone).
    delta = min(
        (d for d, (a, _) in tried.items() if a >= target - 1e-9),
        key=lambda d: (tried[d][1], -tried[d][0]),
    )
    calibration.set_price(model, delta)
    accuracy, cost = tried[delta]
    return AccuracyCalibration(
        max_drop=max_drop,
        reference_accuracy=float(reference),
        reference_cost=float(reference_cost),
        accuracy=float(accuracy),
        cost=float(cost),
        delta=float(delta),
        steps=steps,
    )
