"""FLOP counting against hand-computed figures; per-example cost."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_d2nn import Controller
from keras_d2nn import D2NNModel
from keras_d2nn import Graph
from keras_d2nn import UncountableLayerError
from keras_d2nn import layer_flops

L = keras.layers


def flops(layer, shape):
    spec = keras.KerasTensor((None,) + shape)
    layer(spec)  # build
    return layer_flops(layer, spec)


@pytest.mark.parametrize(
    "layer, shape, expected",
    [
        # Dense: 2 * in * out (multiply-adds) + out (bias) + out (relu).
        (L.Dense(4, activation="relu"), (8,), 2 * 8 * 4 + 4 + 4),
        (L.Dense(4, use_bias=False), (8,), 2 * 8 * 4),
        # Applied at 3 positions.
        (L.Dense(4), (3, 8), 3 * (2 * 8 * 4 + 4)),
        # Conv2D 3x3, 1 -> 16 channels, valid: 26x26 outputs.
        (L.Conv2D(16, 3), (28, 28, 1), 2 * 9 * 1 * 26 * 26 * 16 + 26 * 26 * 16),
        # Strided, same padding: 14x14 outputs, relu.
        (
            L.Conv2D(8, 3, strides=2, padding="same", activation="relu"),
            (28, 28, 2),
            2 * 9 * 2 * 14 * 14 * 8 + 2 * 14 * 14 * 8,
        ),
        # Grouped convolution: each output sees in/groups channels.
        (
            L.Conv2D(6, 3, groups=2, padding="same"),
            (8, 8, 4),
            2 * 9 * 2 * 8 * 8 * 6 + 8 * 8 * 6,
        ),
        (L.Conv1D(8, 5), (100, 4), 2 * 5 * 4 * 96 * 8 + 96 * 8),
        # Depthwise: 3x3 per input channel, multiplier 2: 8x8x6 outputs.
        (
            L.DepthwiseConv2D(3, depth_multiplier=2),
            (10, 10, 3),
            2 * 9 * 8 * 8 * 6 + 8 * 8 * 6,
        ),
        # Separable: depthwise 3x3x3 then pointwise 3 -> 5, at 8x8 positions.
        (
            L.SeparableConv2D(5, 3),
            (10, 10, 3),
            2 * (9 * 3 + 3 * 5) * 64 + 5 * 64,
        ),
        (L.MaxPooling2D(2), (28, 28, 16), 4 * 14 * 14 * 16),
        (L.AveragePooling1D(3), (9, 2), 3 * 3 * 2),
        (L.GlobalAveragePooling2D(), (7, 7, 32), 7 * 7 * 32),
        (L.BatchNormalization(), (10, 10, 3), 2 * 300),
        (L.ReLU(), (10,), 10),
        (L.Activation("softmax"), (10,), 10),
        (L.Flatten(), (4, 4), 0),
        (L.Dropout(0.5), (4,), 0),
    ],
)
def test_layer_flops_by_hand(layer, shape, expected):
    assert flops(layer, shape) == expected


def test_nested_sequential_inside_functional():
    inner = keras.Sequential([L.Conv2D(4, 3), L.Flatten()], name="inner")
    inputs = keras.Input((6, 6, 1))
    features = inner(inputs)
    outputs = L.Dense(2)(L.Dense(3, activation="relu")(features))
    model = keras.Model(inputs, outputs)
    conv = 2 * 9 * 1 * 4 * 4 * 4 + 4 * 4 * 4
    dense1 = 2 * 64 * 3 + 3 + 3
    dense2 = 2 * 3 * 2 + 2
    assert layer_flops(model, keras.KerasTensor((None, 6, 6, 1))) == (
        conv + dense1 + dense2
    )


def test_functional_layer_called_twice_counts_twice():
    shared = L.Dense(4)
    inputs = keras.Input((4,))
    model = keras.Model(inputs, shared(shared(inputs)))
    assert layer_flops(model, keras.KerasTensor((None, 4))) == 2 * (32 + 4)


def test_unknown_layer_with_weights_asks_for_a_cost():
    layer = L.LSTM(4)
    layer(keras.KerasTensor((None, 5, 3)))
    with pytest.raises(UncountableLayerError, match=r"LSTM.*explicit cost"):
        layer_flops(layer, keras.KerasTensor((None, 5, 3)), node_name="rnn")


def test_graph_uses_overrides_and_reports_per_example_cost():
    graph = Graph()
    graph.input("x", shape=(5, 3))
    graph.f_node("rnn", L.LSTM(4), inputs="x", cost=1000)
    graph.q_node("q", Controller(2, hidden_units=()), inputs="rnn")
    graph.f_node("big", L.Dense(4), inputs="rnn", when=("q", 1))
    graph.dummy("skip", inputs="rnn", when=("q", 0))
    graph.merge("m", inputs=["skip", "big"])
    graph.output("m")
    model = D2NNModel(graph)
    q_flops = 2 * 4 * 2 + 2
    big_flops = 2 * 4 * 4 + 4
    assert model.plan.flops["rnn"] == 1000
    assert model.plan.flops["q"] == q_flops
    assert model.full_flops == 1000 + q_flops + big_flops
    x = np.random.rand(4, 5, 3).astype("float32")
    trace = model.trace(x, decisions={"q": tf.constant([0, 1, 1, 0])})
    np.testing.assert_allclose(
        trace.executed_flops,
        [
            1000 + q_flops,
            1000 + q_flops + big_flops,
            1000 + q_flops + big_flops,
            1000 + q_flops,
        ],
    )


def test_cost_report_counts_runs(capsys):
    graph = Graph()
    graph.input("x", shape=(4,))
    graph.q_node("q", Controller(2, hidden_units=()), inputs="x")
    graph.f_node("a", L.Dense(4), inputs="x", when=("q", 0), cost=10)
    graph.f_node("b", L.Dense(4), inputs="x", when=("q", 1), cost=30)
    graph.merge("m", inputs=["a", "b"])
    graph.output("m")
    model = D2NNModel(graph)
    x = np.random.rand(50, 4).astype("float32")
    decisions = model.route(x, batch_size=16)["decisions"]["q"]
    rows = model.cost_report(x, batch_size=16)
    by_node = {row["node"]: row for row in rows}
    share_b = np.mean(decisions == 1)
    assert by_node["b"]["run_rate"] == pytest.approx(share_b)
    assert by_node["a"]["run_rate"] == pytest.approx(1 - share_b)
    q_flops = model.plan.flops["q"]
    assert by_node["total"]["mean_flops"] == pytest.approx(
        q_flops + 10 * (1 - share_b) + 30 * share_b, rel=1e-5
    )
    printed = capsys.readouterr().out
    assert "run rate" in printed and "total" in printed
