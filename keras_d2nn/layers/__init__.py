"""Layers used as D2NN nodes."""

from keras_d2nn.layers.controller import Controller

__all__ = ["Controller"]
