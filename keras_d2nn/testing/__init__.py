"""Helpers shared by the test suite (and by users testing their own nodes)."""

from keras_d2nn.testing.branch_probe import HIGH
from keras_d2nn.testing.branch_probe import STOP
from keras_d2nn.testing.branch_probe import BranchProbe
from keras_d2nn.testing.branch_probe import probe_inputs
from keras_d2nn.testing.branch_probe import probe_model
from keras_d2nn.testing.exports import DEFAULT_FORMATS
from keras_d2nn.testing.exports import EXPORT_FORMATS
from keras_d2nn.testing.exports import ExportRun
from keras_d2nn.testing.exports import assert_exports_agree
from keras_d2nn.testing.exports import example_inputs
from keras_d2nn.testing.exports import run_export_test
from keras_d2nn.testing.exports import write_every_export
from keras_d2nn.testing.images import shape_images
from keras_d2nn.testing.random_graphs import random_graph
from keras_d2nn.testing.routing_spy import RoutingSpy
from keras_d2nn.testing.test_case import TestCase
from keras_d2nn.testing.toy_problem import LOSS
from keras_d2nn.testing.toy_problem import routing_data
from keras_d2nn.testing.toy_problem import small_high_low
from keras_d2nn.testing.toy_problem import toy_data

__all__ = [
    "BranchProbe",
    "DEFAULT_FORMATS",
    "EXPORT_FORMATS",
    "ExportRun",
    "HIGH",
    "LOSS",
    "RoutingSpy",
    "STOP",
    "TestCase",
    "assert_exports_agree",
    "example_inputs",
    "probe_inputs",
    "probe_model",
    "random_graph",
    "routing_data",
    "run_export_test",
    "shape_images",
    "small_high_low",
    "toy_data",
    "write_every_export",
]
