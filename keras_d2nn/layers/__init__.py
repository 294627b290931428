"""Layers used as D2NN nodes."""

from keras_d2nn.layers.block_average import BlockAverage
from keras_d2nn.layers.confidence_features import ConfidenceFeatures
from keras_d2nn.layers.controller import Controller
from keras_d2nn.layers.fill_like import FillLike

__all__ = ["BlockAverage", "ConfidenceFeatures", "Controller", "FillLike"]
