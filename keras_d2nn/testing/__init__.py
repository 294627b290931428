"""Helpers shared by the test suite (and by users testing their own nodes)."""

from keras_d2nn.testing.random_graphs import random_graph
from keras_d2nn.testing.routing_spy import RoutingSpy
from keras_d2nn.testing.test_case import TestCase

__all__ = ["RoutingSpy", "TestCase", "random_graph"]
