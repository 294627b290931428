"""`D2NNModel`, the Keras model that runs and trains a D2NN; `Routes`,
what one inference pass over a dataset recorded; `Calibration`, what
`D2NNModel.calibrate_budget` found; `AccuracyCalibration`, what
`D2NNModel.calibrate_accuracy` found; and the checks of what
the model's entry points receive."""

from keras_d2nn.models.accuracy_target import AccuracyCalibration
from keras_d2nn.models.calibration import Calibration
from keras_d2nn.models.d2nn_model import D2NNModel
from keras_d2nn.models.routing_pass import Routes

__all__ = ["AccuracyCalibration", "Calibration", "D2NNModel", "Routes"]
