"""Estimators that train controllers' discrete decisions.

- `Reinforce` (default): routed training, skipped branches cost nothing;
  learns from the reward of the decisions taken, minus a baseline.
- `QLearning`: routed training; regresses Q(state, action) to the reward
  or to the next decision's value.
- `GumbelSoftmax`: masked training, every branch is computed; gradients
  flow through straight-through relaxed decisions.

What they learn from is in `rewards` (task reward per example or per
mini-bag, minus the weighted cost); `assignment` gives each controller its
estimator.
"""

from keras_d2nn.estimators.base import Estimator
from keras_d2nn.estimators.base import PolicyBatch
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
}


def by_name(name):
    """A new estimator from its name in `NAMED`.

    Example: `model.compile(..., estimator=by_name("reinforce_value"))`.
    """
    if name not in NAMED:
        raise ValueError(
            f"unknown estimator {name!r}; expected one of {list(NAMED)}."
        )
    return NAMED[name]()


__all__ = [
    "NAMED",
    "Estimator",
    "GumbelSoftmax",
    "PolicyBatch",
    "QLearning",
    "Reinforce",
    "by_name",
]
