"""`D2NNModel`, the Keras model that runs and trains a D2NN, and the checks
of what its entry points receive."""

from keras_d2nn.models.d2nn_model import D2NNModel

__all__ = ["D2NNModel"]
