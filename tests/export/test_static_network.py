"""The static network of a route equals the D2NN forced onto that route."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_d2nn
from keras_d2nn import architectures
from keras_d2nn.export import static_network
from keras_d2nn.graph.flops import layer_flops
from keras_d2nn.testing import TestCase


def inputs_of(model, batch, seed=0):
    rng = np.random.default_rng(seed)
    return {
        n.name: rng.random((batch,) + tuple(n.shape)).astype("float32")
        for n in model.plan.order
        if n.kind == "input"
    }


def test_static_routes_of_each_architecture():
    assert static_network.static_routes(
        architectures.high_low(gate_input="features").plan
    ) == [
        ("gate=stop", {"gate": 0}),
        ("gate=high", {"gate": 1}),
    ]
    names = [
        n
        for n, _ in static_network.static_routes(
            architectures.cascade(gate_input="logits").plan
        )
    ]
    assert names == [
        "exit1=stop",
        "exit1=continue, exit2=stop",
        "exit1=continue, exit2=continue",
    ]
    chain = static_network.static_routes(
        architectures.chain().plan, max_routes=8
    )
    names = [n for n, _ in chain]
    assert "choose1=skip, choose2=skip, choose3=skip" == names[0]
    assert "choose1=full, choose2=full, choose3=full" == names[-1]
    assert "choose1=half, choose2=half, choose3=half" in names
    assert len(chain) <= 8


@pytest.mark.parametrize("arch", sorted(architectures.ARCHITECTURES))
def test_every_static_route_equals_the_forced_d2nn(arch):
    model = architectures.ARCHITECTURES[arch]()
    x = inputs_of(model, 5)
    routes = static_network.static_routes(model.plan)
    for _, route in [routes[0], routes[-1]]:
        static = static_network.static_network(model, route)
        forced = {q: tf.fill([5], a) for q, a in route.items()}
        expected = model.trace(x, decisions=forced).outputs
        actual = static(x if len(x) > 1 else next(iter(x.values())))
        expected = (
            next(iter(expected.values())) if len(expected) == 1 else expected
        )
        np.testing.assert_allclose(actual, expected, atol=1e-5)
        # The FLOPs of the network built, counted layer by layer on it
        # (not from the plan's node list).
        inputs = static.inputs if len(static.inputs) > 1 else static.inputs[0]
        assert static_network.static_flops(model, route) == pytest.approx(
            layer_flops(static, inputs), rel=1e-12
        )


def test_default_route_is_the_full_network_and_shares_weights():
    model = architectures.high_low(gate_input="features")
    static = static_network.static_network(model)
    assert static_network.most_expensive_route(model.plan) == {"gate": 1}
    # The full route's output is the high network's: that alone remains.
    assert {layer.name for layer in static.layers} == {"image", "high_network"}
    shared = model.plan.nodes["high"].layer
    assert any(layer is shared for layer in static.layers)
    assert static_network.static_flops(model) == model.plan.flops["high"]
    cheap = static_network.static_network(model, {"gate": 0})
    assert {layer.name for layer in cheap.layers} == {
        "image",
        "low_network",
        "low_head",
    }


def test_unpruned_network_does_all_the_route_work():
    model = architectures.high_low(gate_input="features")
    equivalent = static_network.static_network(model, prune=False)
    names = {layer.name for layer in equivalent.layers}
    assert {"low_network", "low_head", "high_network"} <= names
    gate = model.plan.nodes["gate"].layer
    assert any(layer is gate for layer in equivalent.layers)
    x = inputs_of(model, 4)["image"]
    out = equivalent(x)
    assert set(out) == {"logits", "low_head", "gate"}
    forced = model.trace(x, decisions={"gate": tf.ones([4], tf.int32)})
    np.testing.assert_allclose(
        out["logits"], forced.outputs["logits"], atol=1e-5
    )
    np.testing.assert_allclose(out["gate"], forced.logits["gate"], atol=1e-5)


def test_unrouted_parent_reads_its_edge_default():
    graph = keras_d2nn.Graph()
    graph.input("x", shape=(3,))
    graph.q_node("q", keras_d2nn.Controller(2, hidden_units=()), inputs="x")
    graph.f_node("a", keras.layers.Dense(3), inputs="x", when=("q", 1))
    graph.merge(
        "m", inputs=["x", "a"], combine=keras.layers.Add(), defaults={"a": 0.5}
    )
    graph.output("m")
    model = keras_d2nn.D2NNModel(graph)
    x = np.ones((4, 3), "float32")
    static = static_network.static_network(model, {"q": 0})
    np.testing.assert_allclose(static(x), x + 0.5)
    forced = model.trace(x, decisions={"q": tf.zeros([4], tf.int32)})
    np.testing.assert_allclose(static(x), forced.outputs["m"])


def test_bad_routes_are_refused():
    model = architectures.cascade(gate_input="logits")
    with pytest.raises(ValueError, match="missing: \\['exit2'\\]"):
        static_network.route_nodes(model.plan, {"exit1": 1})
    with pytest.raises(ValueError, match="actions 0..1"):
        static_network.route_nodes(model.plan, {"exit1": 1, "exit2": 5})
    with pytest.raises(ValueError, match="not a controller"):
        static_network.route_nodes(
            model.plan, {"exit1": 1, "exit2": 0, "head1": 0}
        )


class StaticNetworkSavingTest(TestCase):
    def test_round_trip(self):
        model = architectures.cascade(gate_input="logits")
        static = static_network.static_network(model, {"exit1": 0, "exit2": 0})
        x = inputs_of(model, 3)["image"]
        path = self.get_temp_dir() + "/static.keras"
        static.save(path)
        loaded = keras.models.load_model(path)
        np.testing.assert_allclose(loaded(x), static(x), atol=1e-6)
