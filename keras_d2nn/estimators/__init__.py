"""Estimators that train controllers' discrete decisions.

| estimator | training execution | learns from |
| --- | --- | --- |
| `Reinforce` (default) | routed: skipped branches cost nothing | reward of the decisions taken, minus a baseline |
| `QLearning` | routed | regression of Q(state, action) to the reward or the next decision's value |
| `GumbelSoftmax` | masked: every branch is computed in training | gradients through straight-through relaxed decisions |
"""

from keras_d2nn.estimators.base import Estimator
from keras_d2nn.estimators.base import PolicyBatch
from keras_d2nn.estimators.q_learning import QLearning
from keras_d2nn.estimators.reinforce import Reinforce

__all__ = ["Estimator", "PolicyBatch", "QLearning", "Reinforce"]
