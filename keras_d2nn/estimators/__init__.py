"""Estimators that train controllers' discrete decisions.

- `Reinforce` (default): routed training, skipped branches cost nothing;
  learns from the reward of the decisions taken, minus a baseline.
- `QLearning`: routed training; regresses Q(state, action) to the reward
  or to the next decision's value.
- `GumbelSoftmax`: masked training, every branch is computed; gradients
  flow through straight-through relaxed decisions.
"""

from keras_d2nn.estimators.base import Estimator
from keras_d2nn.estimators.base import PolicyBatch
from keras_d2nn.estimators.gumbel import GumbelSoftmax
from keras_d2nn.estimators.q_learning import QLearning
from keras_d2nn.estimators.reinforce import Reinforce

__all__ = ["Estimator", "GumbelSoftmax", "PolicyBatch", "QLearning",
           "Reinforce"]
