"""A controller costing a large share of the network is warned about at
`compile`; the built-in architectures' are not."""

import keras
import pytest

import keras_d2nn
from keras_d2nn import architectures
from keras_d2nn.models import controller_size
from keras_d2nn.testing import LOSS


def digits_like(gate_units):
    graph = keras_d2nn.Graph()
    graph.input("pixels", shape=(64,))
    graph.f_node("cheap", keras.layers.Dense(16, activation="relu"), "pixels")
    graph.f_node("head", keras.layers.Dense(10), "cheap")
    graph.q_node(
        "gate",
        keras_d2nn.Controller(2, hidden_units=gate_units),
        "head",
        actions=("stop", "deep"),
    )
    graph.dummy("stop", inputs="head", when=("gate", "stop"))
    graph.f_node(
        "deep", keras.layers.Dense(10), "pixels", when=("gate", "deep")
    )
    graph.merge("logits", ["stop", "deep"])
    graph.output("logits")
    return keras_d2nn.D2NNModel(graph)


def test_a_gate_larger_than_the_network_it_routes_is_warned_about():
    model = digits_like((64, 64))
    share = controller_size.oversized(model.plan)["gate"]
    assert share > 0.5
    with pytest.warns(UserWarning, match=r"Controller 'gate' costs .* FLOPs"):
        model.compile("adam", LOSS)


def test_a_gate_sized_to_what_it_reads_is_not():
    assert controller_size.oversized(digits_like((4,)).plan) == {}


@pytest.mark.parametrize("arch", sorted(architectures.ARCHITECTURES))
def test_no_built_in_architecture_has_an_oversized_controller(arch):
    model = architectures.ARCHITECTURES[arch]()
    assert controller_size.oversized(model.plan) == {}
