"""Early exits declared with `Graph.early_exit`: checked when the graph is
validated, kept by `get_config` and `.keras` files, and read by the recipe
and the baselines, which say clearly when a graph declares none."""

import warnings

import keras
import numpy as np
import pytest

import keras_d2nn
from keras_d2nn import Controller
from keras_d2nn import Graph
from keras_d2nn import architectures
from keras_d2nn.experiments import baselines
from keras_d2nn.graph import EarlyExit
from keras_d2nn.testing import LOSS
from keras_d2nn.testing import routing_data


def exit_graph(**exit_arguments):
    """x (6) -> cheap head; gate: "stop" (the head) or "more" (a Dense);
    the exit declared with `exit_arguments` (none: undeclared)."""
    graph = Graph()
    graph.input("x", shape=(6,))
    graph.f_node("cheap", keras.layers.Dense(3), inputs="x")
    graph.f_node("wide", keras.layers.Dense(5), inputs="x")
    graph.q_node(
        "gate",
        Controller(2, hidden_units=()),
        inputs="cheap",
        actions=("stop", "more"),
    )
    graph.dummy("stop", inputs="cheap", when=("gate", "stop"))
    graph.f_node(
        "expensive", keras.layers.Dense(3), inputs="x", when=("gate", "more")
    )
    graph.f_node("late", keras.layers.Dense(3), "x", when=("gate", "more"))
    graph.merge("logits", inputs=["stop", "expensive"])
    graph.output("logits")
    graph.supervise("cheap")
    if exit_arguments:
        graph.early_exit("gate", **exit_arguments)
    return graph


GOOD = dict(head="cheap", stop="stop", proceed="more")


def test_a_declared_exit_is_in_the_plan():
    model = keras_d2nn.D2NNModel(exit_graph(**GOOD))
    assert model.plan.exits == (EarlyExit("gate", "stop", "more", "cheap"),)
    assert architectures.high_low().plan.exits == (
        EarlyExit("gate", "stop", "high", "low_head"),
    )
    assert [e.head for e in architectures.cascade().plan.exits] == [
        "head1",
        "head2",
    ]
    assert architectures.chain().plan.exits == ()


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(stop="halt"), r"`stop` should be one of its actions"),
        (dict(proceed="stop"), "should be different"),
        (dict(head="nowhere"), "'nowhere' is not a node"),
        (dict(head="wide"), r"should predict what the output.*\(None, 5\)"),
        (dict(head="late"), "should run for every example"),
    ],
)
def test_a_wrong_exit_is_refused_when_validated(change, message):
    graph = exit_graph(**{**GOOD, **change})
    with pytest.raises(ValueError, match=message):
        graph.validate()


def test_an_exit_at_a_module_or_twice_is_refused():
    graph = exit_graph()
    graph.early_exit("cheap", **GOOD)
    with pytest.raises(ValueError, match=r"should be a controller.*f node"):
        graph.validate()
    graph = exit_graph(**GOOD)
    with pytest.raises(ValueError, match="already declared"):
        graph.early_exit("gate", **GOOD)
    with pytest.raises(ValueError, match=r"`head` should be a non-empty"):
        exit_graph().early_exit("gate", head="", stop="stop", proceed="more")


def test_exits_written_as_metadata_are_checked_too():
    graph = exit_graph()
    graph.metadata["exits"] = [{"controller": "gate", "stop": "stop"}]
    with pytest.raises(ValueError, match="keys"):
        graph.validate()


def test_exits_survive_config_and_keras_files(tmp_path):
    model = keras_d2nn.D2NNModel(exit_graph(**GOOD))
    rebuilt = Graph.from_config(model.graph.get_config())
    assert rebuilt.validate().exits == model.plan.exits
    model(np.zeros((1, 6), "float32"))
    model.save(tmp_path / "exit.keras")
    loaded = keras.saving.load_model(tmp_path / "exit.keras")
    assert loaded.plan.exits == model.plan.exits


def test_the_threshold_baseline_says_it_needs_exits():
    model = keras_d2nn.D2NNModel(exit_graph())
    x, y = routing_data(32)
    for baseline in (
        lambda: baselines.threshold_exit_curve(model, x, y),
        lambda: baselines.threshold_exit_at_cost(model, x, y, 1.0),
        lambda: baselines.exit_confidences(model, x),
    ):
        with pytest.raises(ValueError, match=r"declares none.*early_exit"):
            baseline()
    declared = keras_d2nn.D2NNModel(exit_graph(**GOOD))
    assert len(baselines.threshold_exit_curve(declared, x, y, [0.5])) == 1


def fit_two_phase_warnings(graph):
    model = keras_d2nn.D2NNModel(graph)
    x, y = routing_data(64)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        keras_d2nn.fit_two_phase(
            model, x, y, loss=LOSS, epochs=1, gate_epochs=0, verbose=0
        )
    return [str(w.message) for w in caught if "fit_two_phase" in str(w.message)]


def test_the_recipe_warns_when_a_graph_declares_no_exit():
    (message,) = fit_two_phase_warnings(exit_graph())
    assert "uniformly random" in message and "early_exit" in message
    assert fit_two_phase_warnings(exit_graph(**GOOD)) == []
    meant = exit_graph()
    meant.metadata["training_routing"] = "uniform"
    assert fit_two_phase_warnings(meant) == []
