"""Layers used as D2NN nodes."""

from keras_d2nn.layers.confidence_features import ConfidenceFeatures
from keras_d2nn.layers.controller import Controller
from keras_d2nn.layers.fill_like import FillLike

__all__ = ["ConfidenceFeatures", "Controller", "FillLike"]
