"""Landing a trained D2NN on a FLOP budget: an inference-time price on cost.

Training with a budget (`compile(target_cost=...)`) brings the cost of the
controllers' decisions near the budget, but where the trained model lands
on new data depends on how far the multiplier had settled and on the gap
between training and test images (benchmarks/budget.py: 6 runs of 9
within 0.02). After training, one scalar fixes that: a price `delta` per
unit of cost fraction, subtracted from every controller's logits in
proportion to what each action commits to,

    logits[a] -= delta * committed_cost(controller, a)

(for a Bernoulli gate, its one logit by `delta * (cost(open) -
cost(closed))`). For controllers whose logits are values of the reward
(`FullInformation(objective="value")`, Q-learning) this is exactly the
decision they would take had they been trained with a cost weight larger
by `delta`; for policies (REINFORCE) it moves every gate's threshold
together. `calibrate_budget` searches `delta` by bisection so that the
mean cost of the greedy decisions on held-out examples equals the
budget. The offsets are a non-trainable weight of each `Controller`
(`logit_offset`), so they are saved with the model and exported with it
(SavedModel, LiteRT, ONNX).

Example:

```python
model.fit(images, labels, epochs=1, verbose=0)
result = model.calibrate_budget(held_out_images, target_cost=0.3)
result.cost  # ~0.3 on held_out_images
```
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

import numpy as np

from keras_d2nn.estimators import budget as budget_lib
from keras_d2nn.estimators.cost import CostMeasure

# Bisection stops when the cost is this close to the budget, or after
# MAX_STEPS steps (the cost is a step function of `delta`: on n examples
# it cannot come closer than about one example's cost / n).
TOLERANCE = 0.002
MAX_STEPS = 40
# `delta` is searched in [-LIMIT, LIMIT]: logits are at most a few tens
# in size, and costs are fractions, so a larger price changes nothing.
LIMIT = 1e4
# Farther than this from the budget, calibration warns.
LANDING_WARNING = 0.02


@dataclasses.dataclass(frozen=True)
class Calibration:
    """What `calibrate_budget` found.

    Attributes:
        target_cost: the budget asked for.
        delta: the price per unit of cost fraction now subtracted from the
            controllers' logits (0: the trained decisions).
        cost: the mean cost fraction of the greedy decisions on the
            calibration examples with that price.
        uncalibrated_cost: the same with the previous offsets.
        steps: the number of routing passes the search took.

    Example:

    ```python
    result = model.calibrate_budget(test_images, target_cost=0.3)
    result.delta, result.cost  # (..., 0.30): the price, the cost
    ```
    """

    target_cost: float
    delta: float
    cost: float
    uncalibrated_cost: float
    steps: int


def committed_costs(plan, measure=None) -> dict[str, np.ndarray]:
    """Per controller, the cost fraction each action commits to: the
    cheapest route on which the controller runs and takes that action,
    less the cheapest over its actions (so the cheapest action is 0).
    Costs are `measure`'s (a `CostMeasure`: the model's training cost),
    FLOPs by default.

    Example:

    ```python
    committed_costs(model.plan)  # {"gate": array([0.0, 0.994])}
    ```
    """
    measure = measure or CostMeasure.flops(plan)
    route_costs = measure.route_costs
    full = measure.full or 1.0
    costs = {}
    for q in plan.controllers:
        runs = plan.conditions[q]
        per_action = np.array(
            [
                route_costs[runs & plan.space.chooses(q, a)].min()
                for a in range(len(plan.nodes[q].actions))
            ]
        )
        costs[q] = (per_action - per_action.min()) / full
    return costs


def logit_offsets(plan, delta: float, measure=None) -> dict[str, np.ndarray]:
    """Per controller, the offsets `-delta * committed cost` of its logits
    (one value for a Bernoulli gate: its open action's extra cost).

    Example: `logit_offsets(model.plan, 0.5)  # {"gate": array([0, -0.497])}`.
    """
    offsets = {}
    for q, costs in committed_costs(plan, measure).items():
        layer = plan.nodes[q].layer
        if layer.distribution == "bernoulli":
            costs = np.array([costs[1] - costs[0]])
        offsets[q] = (-delta * costs).astype(np.float32)
    return offsets


def set_price(model, delta: float) -> None:
    """Sets every controller's `logit_offset` for the price `delta`
    (`delta=0` restores the trained decisions).

    Example: `set_price(model, 0.0)`.
    """
    for q, offset in logit_offsets(
        model.plan, delta, model.cost_measure
    ).items():
        model.plan.nodes[q].layer.logit_offset.assign(offset)


def calibrate_budget(
    model,
    data: Any,
    target_cost: float,
    batch_size: int = 256,
    tolerance: float = TOLERANCE,
) -> Calibration:
    """Sets the price on cost that lands `model`'s greedy decisions on
    `data` at `target_cost` (a fraction of the full network's cost, in
    the unit the model trains on: FLOPs, or latency with
    `compile(cost="latency")`).

    Use examples the model was not trained on (a validation split): the
    cheap heads are more confident on training images, so a price found
    there lands test images above the budget.

    Args:
        model: a trained `D2NNModel`.
        data: inputs, as `model.route` takes them.
        target_cost: the budget, in (0, 1], at least the cost of the
            graph's cheapest route.
        batch_size: of the routing passes.
        tolerance: the search stops when the cost is this close.

    Returns:
        A `Calibration`. The model keeps the price found.

    Example:

    ```python
    result = calibrate_budget(model, validation_images, target_cost=0.3)
    result.delta, result.cost
    ```
    """
    target_cost = budget_lib.check_target_cost(target_cost)
    cheapest = budget_lib.cheapest_cost(model.plan, model.cost_measure)
    if target_cost < cheapest:
        full = "FLOPs" if model.cost_measure.kind == "flops" else "latency"
        raise ValueError(
            "`target_cost` should be at least the cost of the graph's "
            f"cheapest route ({cheapest:.4g} of the full {full}): no price "
            f"on cost lands below it. Received: target_cost={target_cost!r}"
        )
    steps = 0

    def cost_at(delta):
        nonlocal steps
        steps += 1
        set_price(model, delta)
        return model.route(data, batch_size=batch_size).mean_cost_fraction

    uncalibrated = model.route(data, batch_size=batch_size).mean_cost_fraction
    steps += 1
    # Cost falls as the price rises: bracket the budget, then bisect.
    low, high = -1.0, 1.0
    cost_low, cost_high = cost_at(low), cost_at(high)
    while cost_high > target_cost + tolerance and high < LIMIT:
        low, cost_low = high, cost_high
        high *= 4.0
        cost_high = cost_at(high)
    while cost_low < target_cost - tolerance and low > -LIMIT:
        high, cost_high = low, cost_low
        low *= 4.0
        cost_low = cost_at(low)
    best = min(
        (abs(cost_low - target_cost), low, cost_low),
        (abs(cost_high - target_cost), high, cost_high),
    )
    while best[0] > tolerance and steps < MAX_STEPS:
        middle = (low + high) / 2.0
        cost = cost_at(middle)
        best = min(best, (abs(cost - target_cost), middle, cost))
        if cost > target_cost:
            low = middle
        else:
            high = middle
    _, delta, cost = best
    set_price(model, delta)
    if abs(cost - target_cost) > LANDING_WARNING:
        warnings.warn(
            f"calibrate_budget: the nearest cost to target_cost="
            f"{target_cost:g} the controllers reach on these examples is "
            f"{cost:.4g} (price {delta:.4g}): their decisions change "
            "together (few examples, or logits tied across examples).",
            stacklevel=2,
        )
    return Calibration(
        target_cost=target_cost,
        delta=float(delta),
        cost=float(cost),
        uncalibrated_cost=float(uncalibrated),
        steps=steps,
    )
