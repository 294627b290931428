"""Keras callbacks for D2NNs: training schedules (warm-up routing,
cost-weight ramps), TensorBoard logging of the decisions, a backup of
each epoch that a killed run resumes from, and the validation accuracy
at a budget (what EarlyStopping and ModelCheckpoint should watch)."""

from keras_d2nn.callbacks.accuracy_at_budget import AccuracyAtBudget
from keras_d2nn.callbacks.epoch_backup import EpochBackup
from keras_d2nn.callbacks.routing_tensorboard import RoutingTensorBoard
from keras_d2nn.callbacks.schedules import CostWeightSchedule
from keras_d2nn.callbacks.schedules import D2NNSchedule
from keras_d2nn.callbacks.schedules import VariableSchedule
from keras_d2nn.callbacks.schedules import WarmUp
from keras_d2nn.callbacks.schedules import constant
from keras_d2nn.callbacks.schedules import d2nn_callbacks
from keras_d2nn.callbacks.schedules import d2nn_schedule
from keras_d2nn.callbacks.schedules import linear_ramp

__all__ = [
    "AccuracyAtBudget",
    "CostWeightSchedule",
    "D2NNSchedule",
    "EpochBackup",
    "RoutingTensorBoard",
    "VariableSchedule",
    "WarmUp",
    "constant",
    "d2nn_callbacks",
    "d2nn_schedule",
    "linear_ramp",
]
