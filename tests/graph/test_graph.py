"""Graph construction and validation errors."""

import keras
import pytest

import keras_d2nn
from keras_d2nn import Controller
from keras_d2nn import Graph


def dense(units=4):
    return keras.layers.Dense(units)


def gated_graph():
    """x -> a -> q; b under q=0, c under q=1; merge(b, c)."""
    graph = Graph()
    graph.input("x", shape=(6,))
    graph.f_node("a", dense(), inputs="x")
    graph.q_node("q", Controller(2), inputs="a", actions=("left", "right"))
    graph.f_node("b", dense(), inputs="a", when=("q", "left"))
    graph.f_node("c", dense(), inputs="a", when=("q", 1))
    graph.merge("m", inputs=["b", "c"])
    graph.output("m")
    return graph


def test_valid_graph_plan():
    plan = gated_graph().validate()
    assert [n.name for n in plan.order] == ["x", "a", "q", "b", "c", "m"]
    assert plan.controllers == ("q",)
    assert plan.nodes["b"].control == {"q": (0,)}
    assert plan.nodes["c"].control == {"q": (1,)}
    assert tuple(plan.specs["m"].shape) == (None, 4)
    # Dense(6 -> 4): 2*6*4 + 4 bias.
    assert plan.flops["a"] == 52
    assert plan.conditions["b"].tolist() == [True, False]
    assert plan.conditions["m"].tolist() == [True, True]


def test_cycle_is_reported_with_its_path():
    graph = Graph()
    graph.input("x", shape=(6,))
    graph.f_node("a", dense(), inputs=["x", "c"])
    graph.f_node("b", dense(), inputs="a")
    graph.f_node("c", dense(), inputs="b")
    graph.output("c")
    with pytest.raises(ValueError, match=r"cycle: a -> b -> c -> a"):
        graph.validate()


def test_cycle_through_a_control_edge():
    graph = Graph()
    graph.input("x", shape=(6,))
    graph.f_node("a", dense(), inputs="x", when=("q", 0))
    graph.q_node("q", Controller(2), inputs="a")
    graph.output("a")
    with pytest.raises(ValueError, match=r"cycle: a -> q -> a"):
        graph.validate()


def test_q_node_needs_two_actions():
    graph = Graph()
    graph.input("x", shape=(6,))
    with pytest.raises(ValueError, match="at least 2 actions"):
        graph.q_node("q", Controller(2), inputs="x", actions=("only",))
    with pytest.raises(ValueError, match="num_actions"):
        Controller(1)


def test_action_count_must_match_controller():
    graph = Graph()
    graph.input("x", shape=(6,))
    with pytest.raises(
        ValueError, match="names 3 actions but its controller has num_actions=2"
    ):
        graph.q_node("q", Controller(2), inputs="x", actions=3)


def test_control_edge_to_unreachable_node():
    # "c" is selected by q=1 but its data input "b" runs only when q=0.
    graph = Graph()
    graph.input("x", shape=(6,))
    graph.q_node("q", Controller(2), inputs="x")
    graph.f_node("b", dense(), inputs="x", when=("q", 0))
    graph.f_node("c", dense(), inputs="b", when=("q", 1))
    graph.merge("m", inputs=["b", "c"])
    graph.output("m")
    with pytest.raises(ValueError, match="Node 'c' can never execute"):
        graph.validate()


def test_output_not_reached_by_every_example():
    graph = Graph()
    graph.input("x", shape=(6,))
    graph.q_node("q", Controller(2), inputs="x", actions=("skip", "run"))
    graph.f_node("b", dense(), inputs="x", when=("q", "run"))
    graph.output("b")
    with pytest.raises(
        ValueError, match="Output 'b' is not produced for every example.*q=skip"
    ):
        graph.validate()


def test_merge_inputs_must_be_alternatives():
    graph = Graph()
    graph.input("x", shape=(6,))
    graph.f_node("a", dense(), inputs="x")
    graph.q_node("q", Controller(2), inputs="x")
    graph.f_node("b", dense(), inputs="x", when=("q", 1))
    graph.merge("m", inputs=["a", "b"])
    graph.output("m")
    with pytest.raises(
        ValueError,
        match="'a' and 'b' are not alternatives: both execute when q=1",
    ):
        graph.validate()


def test_merge_with_combine_accepts_coexisting_inputs():
    graph = Graph()
    graph.input("x", shape=(6,))
    graph.f_node("a", dense(), inputs="x")
    graph.q_node("q", Controller(2), inputs="x")
    graph.f_node("b", dense(), inputs="x", when=("q", 1))
    graph.merge("m", inputs=["a", "b"], combine=keras.layers.Add())
    graph.output("m")
    plan = graph.validate()
    assert plan.flops["m"] == 4  # one add per element


def test_mismatched_merge_shapes():
    graph = Graph()
    graph.input("x", shape=(6,))
    graph.q_node("q", Controller(2), inputs="x")
    graph.f_node("b", dense(4), inputs="x", when=("q", 0))
    graph.f_node("c", dense(5), inputs="x", when=("q", 1))
    graph.merge("m", inputs=["b", "c"])
    graph.output("m")
    with pytest.raises(
        ValueError,
        match=r"mismatched shapes: 'b' is "
        r"\(None, 4\).*'c' is \(None, 5\)",
    ):
        graph.validate()


def test_layer_that_cannot_take_its_input_shape():
    graph = Graph()
    graph.input("x", shape=(6,))
    graph.f_node("conv", keras.layers.Conv2D(3, 3), inputs="x")
    graph.output("conv")
    with pytest.raises(
        ValueError,
        match=r"Node 'conv' \(Conv2D\) cannot be "
        r"applied to its inputs \['x'\] of "
        r"shapes \[\(None, 6\)\]",
    ):
        graph.validate()


@pytest.mark.parametrize(
    "build, message",
    [
        (
            lambda g: g.f_node("a", dense(), inputs="nope"),
            "takes input 'nope', which is not a node",
        ),
        (
            lambda g: g.f_node("a", dense(), inputs="x", when=("nope", 0)),
            "control edge from 'nope', which is not a node",
        ),
        (
            lambda g: g.f_node("a", dense(), inputs="x", when=("x", 0)),
            "'x', which is a input-node, not a Q-node",
        ),
        (
            lambda g: g.f_node("a", dense(), inputs="x", when=("q", 5)),
            "has actions 0..1; received action 5",
        ),
        (
            lambda g: g.f_node("a", dense(), inputs="x", when=("q", "up")),
            "has no action 'up'",
        ),
        (
            lambda g: g.f_node("a", dense(), inputs="q"),
            "takes data from Q-node 'q'",
        ),
    ],
)
def test_dangling_or_wrong_references(build, message):
    graph = Graph()
    graph.input("x", shape=(6,))
    graph.q_node("q", Controller(2), inputs="x")
    build(graph)
    graph.output("x")
    with pytest.raises(ValueError, match=message):
        graph.validate()


def test_construction_time_errors():
    graph = Graph()
    graph.input("x", shape=(6,))
    with pytest.raises(ValueError, match="already in the graph"):
        graph.input("x", shape=(6,))
    with pytest.raises(TypeError, match="needs a keras.layers.Layer"):
        graph.f_node("a", lambda t: t, inputs="x")
    with pytest.raises(TypeError, match="needs a keras_d2nn.Controller"):
        graph.q_node("q", dense(), inputs="x")
    with pytest.raises(ValueError, match="`cost` should be a finite number"):
        graph.f_node("a", dense(), inputs="x", cost=-1)
    with pytest.raises(ValueError, match="has no input node"):
        Graph().validate()
    with pytest.raises(ValueError, match="has no output"):
        graph.validate()


def test_dummy_without_input_has_no_value():
    graph = Graph()
    graph.input("x", shape=(6,))
    graph.q_node("q", Controller(2), inputs="x")
    graph.dummy("nothing", when=("q", 0))
    graph.f_node("b", dense(), inputs="nothing")
    graph.output("x")
    with pytest.raises(
        ValueError, match="dummy node 'nothing', which has no input"
    ):
        graph.validate()


def test_nested_controllers_are_analysed_exactly():
    # q2 runs only when q1=1; output merges the three leaves.
    graph = Graph()
    graph.input("x", shape=(6,))
    graph.q_node("q1", Controller(2), inputs="x")
    graph.f_node("a", dense(), inputs="x", when=("q1", 0))
    graph.q_node("q2", Controller(2), inputs="x", when=("q1", 1))
    graph.f_node("b", dense(), inputs="x", when=("q2", 0))
    graph.f_node("c", dense(), inputs="x", when=("q2", 1))
    graph.merge("m", inputs=["a", "b", "c"])
    graph.output("m")
    plan = graph.validate()
    # Joint decisions (q1, q2): (0,0) (0,1) (1,0) (1,1).
    assert plan.conditions["q2"].tolist() == [False, False, True, True]
    assert plan.conditions["b"].tolist() == [False, False, True, False]


def test_graph_config_round_trip_keeps_shared_layers():
    graph = gated_graph()
    shared = dense()
    graph.f_node("s1", shared, inputs="m")
    graph.f_node("s2", shared, inputs="s1")
    graph.supervise("b")
    config = graph.get_config()
    rebuilt = Graph.from_config(config)
    assert rebuilt.get_config() == config
    nodes = {n.name: n for n in rebuilt.nodes}
    assert nodes["s1"].layer is nodes["s2"].layer
    assert [(s.node, s.weight) for s in rebuilt.supervised] == [("b", 1.0)]


def test_public_api_exports():
    for name in ("Graph", "Controller", "D2NNModel", "execute", "Reinforce"):
        assert hasattr(keras_d2nn, name)
