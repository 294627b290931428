"""`fit_two_phase`: both phases on a graph with exits and on one without
(random routes in phase one), the modules still in phase two, and clear
refusals."""

import warnings

import keras
import numpy as np
import pytest

import keras_d2nn
from keras_d2nn import Controller
from keras_d2nn import Graph
from keras_d2nn.recipes import fit_two_phase
from keras_d2nn.testing import LOSS
from keras_d2nn.testing import routing_data


def custom_graph(declare_exit=True):
    """A graph no builder made: a cheap path with its head, a gate, an
    expensive path (the README's quick start)."""
    graph = Graph()
    graph.input("x", shape=(6,))
    graph.f_node("low", keras.layers.Dense(8, activation="relu"), inputs="x")
    graph.f_node("low_head", keras.layers.Dense(3), inputs="low")
    graph.q_node(
        "gate",
        Controller(2, hidden_units=()),
        inputs="low",
        actions=("stop", "high"),
    )
    graph.dummy("stop", inputs="low_head", when=("gate", "stop"))
    graph.f_node(
        "high",
        keras.Sequential(
            [keras.layers.Dense(64, activation="relu"), keras.layers.Dense(3)]
        ),
        inputs="x",
        when=("gate", "high"),
    )
    graph.merge("logits", inputs=["stop", "high"])
    graph.output("logits")
    graph.supervise("low_head")
    if declare_exit:
        graph.early_exit("gate", head="low_head", stop="stop", proceed="high")
    return keras_d2nn.D2NNModel(graph)


def module_weights(model):
    return [
        np.array(w)
        for node in model.plan.order
        if node.kind == "f" and node.layer is not None
        for w in node.layer.weights
    ]


def controller_weights(model):
    return [
        np.array(w) for w in model.plan.nodes["gate"].layer.trainable_weights
    ]


def test_both_phases_on_a_custom_graph_modules_still_in_phase_two():
    model = custom_graph()
    x, y = routing_data(512)
    seen = {}

    def log(line):
        # Called as phase two starts: the state phase one left.
        seen["line"] = line
        seen["modules"] = module_weights(model)
        seen["gate"] = controller_weights(model)

    optimizer = keras.optimizers.Adam(1e-2)
    history = fit_two_phase(
        model,
        x,
        y,
        loss=LOSS,
        epochs=2,
        gate_epochs=1,
        optimizer=optimizer,
        metrics=["accuracy"],
        batch_size=64,
        verbose=0,
        log=log,
    )
    assert len(history.history["loss"]) == 3  # 2 epochs, then 1
    assert len(history.history["accuracy"]) == 3
    assert seen["line"].startswith("Training the controllers alone for 1")
    # Phase two trains the controllers alone.
    for before, after in zip(seen["modules"], module_weights(model)):
        np.testing.assert_array_equal(before, after)
    assert any(
        not np.array_equal(b, a)
        for b, a in zip(seen["gate"], controller_weights(model))
    )
    # Modules trainable again; the optimizer given was copied, not used.
    assert all(
        n.layer.trainable
        for n in model.plan.order
        if n.kind == "f" and n.layer is not None
    )
    assert int(optimizer.iterations) == 0
    # Phase one trained every module on every example: the expensive
    # branch learned the task though the gate could send it nothing.
    trace = model.trace(x, decisions={"gate": np.ones(len(x), "int32")})
    high = np.argmax(np.asarray(trace.outputs["logits"]), axis=-1)
    assert np.mean(high == y) > 0.6  # chance is about 0.4 (class 1)


def versions_graph():
    """A graph without exits: a controller picks a wide or a narrow version
    of a stage, or skips it (a one-stage chain)."""
    graph = Graph()
    graph.input("x", shape=(6,))
    graph.q_node(
        "pick",
        Controller(3, hidden_units=()),
        inputs="x",
        actions=("wide", "narrow", "skip"),
    )
    for version, width in (("wide", 32), ("narrow", 4)):
        graph.f_node(
            version,
            keras.Sequential(
                [
                    keras.layers.Dense(width, activation="relu"),
                    keras.layers.Dense(6),
                ]
            ),
            inputs="x",
            when=("pick", version),
        )
    graph.dummy("skip", inputs="x", when=("pick", "skip"))
    graph.merge("stage", inputs=["wide", "narrow", "skip"])
    graph.f_node("head", keras.layers.Dense(3), inputs="stage")
    graph.output("head")
    return keras_d2nn.D2NNModel(graph)


def test_a_graph_without_exits_trains_every_version_on_random_routes():
    model = versions_graph()
    x, y = routing_data(256)
    before = {
        v: [np.array(w) for w in model.plan.nodes[v].layer.weights]
        for v in ("wide", "narrow")
    }
    fit_two_phase(
        model,
        x,
        y,
        loss=LOSS,
        epochs=3,
        gate_epochs=0,
        optimizer=keras.optimizers.Adam(1e-2),
        batch_size=64,
        verbose=0,
    )
    # Phase one drew each example's version at random: both versions
    # trained, whatever the controller would have picked.
    assert model._training_routing == {"pick": [1 / 3] * 3}
    for version, weights in before.items():
        after = model.plan.nodes[version].layer.weights
        assert any(
            not np.array_equal(b, np.array(a)) for b, a in zip(weights, after)
        ), version


def test_a_two_phase_model_reloads_without_an_optimizer_mismatch(tmp_path):
    # Phase two's optimizer knew the controllers alone; the model leaves
    # the recipe compiled for every trainable variable, so its file
    # loads without Keras's "Skipping variable loading for optimizer".
    model = custom_graph()
    x, y = routing_data(256)
    fit_two_phase(
        model,
        x,
        y,
        loss=LOSS,
        epochs=1,
        gate_epochs=1,
        batch_size=64,
        verbose=0,
    )
    assert len(model.optimizer._trainable_variables) == len(
        model.trainable_variables
    )
    model.save(tmp_path / "two_phase.keras")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = keras.saving.load_model(tmp_path / "two_phase.keras")
    assert not [w for w in caught if "Skipping variable" in str(w.message)]
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6
    )
    assert loaded.cost_weight == pytest.approx(model.cost_weight)


def test_a_graph_without_controllers_is_refused():
    graph = Graph()
    graph.input("x", shape=(6,))
    graph.f_node("head", keras.layers.Dense(3), inputs="x")
    graph.output("head")
    x, y = routing_data(16)
    with pytest.raises(ValueError, match="has none"):
        fit_two_phase(keras_d2nn.D2NNModel(graph), x, y, loss=LOSS)


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"epochs": 0}, "`epochs` should be an int >= 1. Received: epochs=0"),
        ({"gate_epochs": -1}, "`gate_epochs` should be an int >= 0"),
        ({"epochs": 1.5}, "`epochs` should be an int >= 1"),
    ],
)
def test_bad_epochs_are_refused(arguments, message):
    x, y = routing_data(16)
    with pytest.raises(ValueError, match=message.replace("`", ".")):
        fit_two_phase(custom_graph(), x, y, loss=LOSS, **arguments)
