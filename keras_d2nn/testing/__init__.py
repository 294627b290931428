"""Helpers shared by the test suite (and by users testing their own nodes)."""

from keras_d2nn.testing.random_graphs import random_graph
from keras_d2nn.testing.test_case import TestCase

__all__ = ["TestCase", "random_graph"]
