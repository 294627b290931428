"""Estimators that train controllers' discrete decisions.

- `Reinforce` (default): routed training, skipped branches cost nothing;
  learns from the reward of the decisions taken, minus a baseline.
- `QLearning`: routed training; regresses Q(state, action) to the reward
  or to the next decision's value.
- `FullInformation`: learns from the reward of every action (one more
  forward pass per action), by value regression or the exact expected
  reward; modules may train on every example (`module_routing`).
- `GumbelSoftmax`: masked training, every branch is computed; gradients
  flow through straight-through relaxed decisions.

What they learn from is in `rewards` (task reward per example or per
mini-bag, minus the weighted cost); `assignment` gives each controller its
estimator; `budget` (`CostBudget`, made by `compile(target_cost=...)`)
moves the cost weight, as a Lagrange multiplier, towards a budget;
`CostMeasure` is what the cost is: FLOPs, or milliseconds from a measured
`LatencyProfile` (`compile(cost="latency")`).
"""

from keras_d2nn.estimators.base import Estimator
from keras_d2nn.estimators.base import PolicyBatch
from keras_d2nn.estimators.budget import CostBudget
from keras_d2nn.estimators.cost import CostMeasure
from keras_d2nn.estimators.full_information import FullInformation
from keras_d2nn.estimators.gumbel import GumbelSoftmax
from keras_d2nn.estimators.q_learning import QLearning
from keras_d2nn.estimators.reinforce import Reinforce

# Estimators by name, for command lines and benchmarks.
NAMED = {
    "reinforce": lambda: Reinforce(),
    "reinforce_value": lambda: Reinforce(baseline="value"),
    "reinforce_self_critical": lambda: Reinforce(baseline="self_critical"),
    "q_learning": lambda: QLearning(epsilon=0.1),
    "gumbel": lambda: GumbelSoftmax(temperature=1.0),
    "full_information": lambda: FullInformation(objective="value"),
    "full_information_expected": lambda: FullInformation(objective="expected"),
}


def by_name(name):
    """A new estimator from its name in `NAMED`.

    Example:

    ```python
    from keras_d2nn.estimators import NAMED, by_name

    list(NAMED)  # ["reinforce", "reinforce_value", ...]
    model.compile("adam", loss, estimator=by_name("reinforce_value"))
    ```
    """
    if name not in NAMED:
        raise ValueError(
            f"unknown estimator {name!r}; expected one of {list(NAMED)}."
        )
    return NAMED[name]()


__all__ = [
    "NAMED",
    "CostBudget",
    "CostMeasure",
    "Estimator",
    "FullInformation",
    "GumbelSoftmax",
    "PolicyBatch",
    "QLearning",
    "Reinforce",
    "by_name",
]
