"""FLOP budgets: the cost weight as a Lagrange multiplier.

Training a D2NN for a budget means maximising the task reward subject to
`E[cost] <= target_cost` (cost: executed FLOPs / full FLOPs, or predicted
milliseconds / full milliseconds with `compile(cost="latency")`). Its
Lagrangian, `task - lambda * (cost - target_cost)`, gives each example the
reward the controllers already learn from, `task - cost_weight * cost`,
with the multiplier `lambda` as the cost weight (the constant
`lambda * target_cost` changes no decision). Dual ascent moves the
multiplier after each training step, up while the controllers overspend
and down (not below 0) while they underspend:

    lambda <- max(0, lambda + learning_rate * (cost - target_cost))

where `cost` is the mean cost fraction of the greedy (inference)
decisions on the step's global batch: the decisions the trained model
will take, whatever the training pass samples or forces.

`D2NNModel.compile(target_cost=...)` sets it up; see
docs/estimators_and_schedules.md, "Budgets".
"""

import math
import warnings

import keras
import tensorflow as tf

from keras_d2nn.estimators.cost import CostMeasure

# The multiplier's step per training step and unit of overspending (cost
# fraction above the target), for estimators whose controllers follow a
# change of the reward gradually (REINFORCE: the policy moves by the
# optimizer's steps). On Fashion-MNIST's high-low D2NN, whose cost falls
# from 0.9 to 0.07 of the full FLOPs as the cost weight goes from 0.05 to
# 0.15, 0.02 made REINFORCE overshoot and collapse to the cheap path in
# most runs, 0.005 in fewer (benchmarks/budget.py).
DEFAULT_LEARNING_RATE = 0.005
# For estimators whose controllers follow the reward within a few steps
# (`FullInformation` regresses to every action's current reward): there
# 0.02 brought the cost of the greedy decisions to the budget within an
# epoch of 157 steps, where 0.005 was still 0.02 to 0.04 above it at the
# end of the run.
FAST_LEARNING_RATE = 0.02


def check_target_cost(value):
    """`value` as a float, or a ValueError in the library's dialect: a
    budget is a fraction of the full network's cost (FLOPs, or latency
    with `compile(cost="latency")`), in (0, 1].

    Example: `check_target_cost(0.3)  # 0.3`.
    """
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not 0.0 < number <= 1.0:
        raise ValueError(
            "`target_cost` should be a fraction of the full network's "
            f"FLOPs, in (0, 1]. Received: target_cost={value!r}"
        )
    return number


def check_budget_learning_rate(value):
    """`value` as a float, or a ValueError: a finite number > 0.

    Example: `check_budget_learning_rate(0.01)  # 0.01`.
    """
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not (math.isfinite(number) and number > 0):
        raise ValueError(
            "`budget_learning_rate` should be a finite number > 0. "
            f"Received: budget_learning_rate={value!r}"
        )
    return number


def _full_name(measure):
    """How messages name the full network's cost in `measure`'s unit."""
    return "FLOPs" if measure.kind == "flops" else "latency"


def cheapest_cost(plan, measure=None):
    """The cost fraction (executed cost / full cost, controllers
    included) of the cheapest route of `plan`: no budget below it can be
    met, whatever the controllers learn. The cost is `measure`'s (a
    `cost.CostMeasure`), FLOPs by default.

    Example: `cheapest_cost(model.plan)  # 0.0067 for high_low()`.
    """
    measure = measure or CostMeasure.flops(plan)
    if not measure.full:
        return 0.0
    return float(measure.route_costs.min() / measure.full)


def out_of_reach(plan, target_cost, measure=None):
    """A sentence saying why `target_cost` cannot be met by `plan` (below
    the cost of its cheapest route), or None when it can.

    Example: `out_of_reach(model.plan, 0.001)`.
    """
    measure = measure or CostMeasure.flops(plan)
    cheapest = cheapest_cost(plan, measure)
    if target_cost >= cheapest:
        return None
    return (
        f"the budget {target_cost:g} is below the cost of the cheapest "
        f"route of this graph ({cheapest:.4g} of the full "
        f"{_full_name(measure)}): no "
        "routing meets it, and the cost weight rises for as long as "
        "training runs, pushing every controller to its cheapest action"
    )


def warn_if_out_of_reach(plan, target_cost, measure=None):
    """Warns when `target_cost` is below the cost of `plan`'s cheapest
    route (see `out_of_reach`)."""
    reason = out_of_reach(plan, target_cost, measure)
    if reason is not None:
        warnings.warn(f"target_cost={target_cost:g}: {reason}.", stacklevel=3)


class LatestValue(keras.metrics.Metric):
    """A metric whose result is the last value it was given (the cost
    weight after the last step).

    Kept as a total and a count of 1 per replica, so that the sum of the
    replicas' copies, which `tf.distribute` reads, divides back to it.

    Example: `LatestValue("cost_weight").update_state(0.2)`.
    """

    def __init__(self, name, dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.total = self.add_variable(
            shape=(), initializer="zeros", name="total"
        )
        self.count = self.add_variable(
            shape=(), initializer="zeros", name="count"
        )

    def update_state(self, value):
        self.total.assign(tf.cast(value, self.total.dtype))
        self.count.assign(1.0)

    def result(self):
        return tf.math.divide_no_nan(self.total, self.count)


class CostBudget(keras.layers.Layer):
    """Moves a model's cost weight (the multiplier) towards a FLOP budget.

    `D2NNModel.compile(target_cost=...)` makes one; the model calls
    `update` in each training step in which some controller learns. The
    multiplier itself is the model's cost weight, saved with it. Under
    `tf.distribute` every replica computes the same update from the cost
    of the global batch. Its metrics, shown by `fit`: `cost_weight` (the
    multiplier after the last step) and `greedy_cost` (the mean cost of
    the greedy decisions it steers).

    Args:
        target_cost: the budget, a fraction of the full network's FLOPs in
            (0, 1].
        learning_rate: the multiplier's step per training step and unit
            of overspending (> 0).

    Example:

    ```python
    budget = keras_d2nn.estimators.CostBudget(0.3)
    multiplier = keras.Variable(0.0)
    budget.update(multiplier, cost=0.5)  # a step of 0.005 x (0.5 - 0.3)
    multiplier.numpy()  # 0.001
    ```
    """

    def __init__(
        self, target_cost, learning_rate=DEFAULT_LEARNING_RATE, **kwargs
    ):
        super().__init__(**kwargs)
        self.target_cost = check_target_cost(target_cost)
        self.learning_rate = check_budget_learning_rate(learning_rate)
        self.cost_weight_metric = LatestValue("cost_weight")
        self.greedy_cost_metric = keras.metrics.Mean(name="greedy_cost")
        self.built = True

    def update(self, cost_weight, cost):
        """One dual-ascent step: moves `cost_weight` (the model's scalar
        variable) by `learning_rate * (cost - target_cost)`, not below 0,
        for `cost` the step's mean cost fraction (a scalar). Graph-safe:
        one variable assignment.

        Example:

        ```python
        budget = keras_d2nn.estimators.CostBudget(0.3, learning_rate=0.1)
        multiplier = keras.Variable(0.05)
        budget.update(multiplier, cost=0.1)
        multiplier.numpy()  # 0.03: 0.05 + 0.1 x (0.1 - 0.3)
        budget.update(multiplier, cost=0.0)
        multiplier.numpy()  # 0.0: not below 0
        ```
        """
        step = self.learning_rate * (
            tf.cast(cost, tf.float32) - self.target_cost
        )
        cost_weight.assign(tf.maximum(0.0, cost_weight + step))

    def track(self, cost_weight, cost_fraction):
        """Updates the metrics: the multiplier `cost_weight` and the
        per-example `cost_fraction` `(batch,)` of the greedy decisions.

        Example:

        ```python
        budget = keras_d2nn.estimators.CostBudget(0.3)
        budget.track(0.2, tf.constant([0.1, 0.5]))
        budget.greedy_cost_metric.result()  # 0.3
        ```
        """
        self.cost_weight_metric.update_state(cost_weight)
        self.greedy_cost_metric.update_state(cost_fraction)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "target_cost": self.target_cost,
                "learning_rate": self.learning_rate,
            }
        )
        return config
