"""Routed execution against the masked reference; skipped nodes do not run."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_d2nn import Controller
from keras_d2nn import D2NNModel
from keras_d2nn import Graph
from keras_d2nn import execute
from keras_d2nn.testing import random_graph


class CallCounter(keras.layers.Layer):
    """Identity layer counting how many times its computation really ran."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.calls = self.add_weight(
            shape=(),
            initializer="zeros",
            trainable=False,
            name="calls",
            dtype="int32",
        )

    def call(self, inputs):
        self.calls.assign_add(1)
        return inputs * 2.0


def cheap_or_expensive(add_expensive):
    """x -> q: "cheap" (a dummy passing x on) or "expensive" (the nodes
    `add_expensive(graph, when)` adds, returning the last one's name),
    merged into the output "m"."""
    graph = Graph()
    graph.input("x", shape=(3,))
    graph.q_node(
        "q",
        Controller(2, hidden_units=()),
        inputs="x",
        actions=("cheap", "expensive"),
    )
    graph.dummy("cheap", inputs="x", when=("q", "cheap"))
    last = add_expensive(graph, ("q", "expensive"))
    graph.merge("m", inputs=["cheap", last])
    graph.output("m")
    return D2NNModel(graph)


def counted_graph():
    return cheap_or_expensive(
        lambda graph, when: graph.f_node(
            "expensive", CallCounter(), inputs="x", when=when, cost=100
        )
    )


@pytest.mark.parametrize("seed", range(12))
def test_random_graphs_routed_equals_masked(seed):
    model = D2NNModel(random_graph(seed))
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(33, 6)).astype("float32")
    forced = {
        q: tf.constant(
            rng.integers(0, len(model.plan.nodes[q].actions), size=33),
            dtype=tf.int32,
        )
        for q in model.plan.controllers
    }
    routed = model.trace(x, decisions=forced, mode="routed")
    masked = model.trace(x, decisions=forced, mode="masked")
    np.testing.assert_allclose(
        routed.outputs["y"], masked.outputs["y"], atol=1e-5
    )
    for name in routed.executed:
        np.testing.assert_array_equal(
            routed.executed[name], masked.executed[name], err_msg=name
        )
    for q in model.plan.controllers:
        np.testing.assert_array_equal(routed.decisions[q], masked.decisions[q])
        np.testing.assert_allclose(
            routed.log_probs[q], masked.log_probs[q], atol=1e-5
        )
    np.testing.assert_allclose(routed.executed_flops, masked.executed_flops)
    # Greedy decisions (no forcing) agree too.
    greedy_routed = model.trace(x, mode="routed")
    greedy_masked = model.trace(x, mode="masked")
    np.testing.assert_allclose(
        greedy_routed.outputs["y"], greedy_masked.outputs["y"], atol=1e-5
    )


def test_executed_sets_follow_the_decisions():
    model = D2NNModel(random_graph(5))
    x = np.random.default_rng(1).normal(size=(64, 6)).astype("float32")
    trace = model.trace(x)
    space, conditions = model.plan.space, model.plan.conditions
    # Each example's executed set must be one the static analysis allows.
    allowed = {
        tuple(conditions[n.name][i] for n in model.plan.order)
        for i in range(space.size)
    }
    for i in range(64):
        observed = tuple(
            bool(trace.executed[n.name][i]) for n in model.plan.order
        )
        assert observed in allowed


def test_node_no_example_reaches_is_not_run_eager_and_graph():
    model = counted_graph()
    counter = model.plan.nodes["expensive"].layer
    x = np.ones((8, 3), dtype="float32")
    none = {"q": tf.zeros([8], tf.int32)}
    half = {"q": tf.constant([0, 1] * 4)}

    model.trace(x, decisions=none)
    assert int(counter.calls.numpy()) == 0
    graph_trace = tf.function(lambda x, d: model.trace(x, decisions=d))
    graph_trace(x, none)
    assert int(counter.calls.numpy()) == 0
    trace = graph_trace(x, half)
    assert int(counter.calls.numpy()) == 1
    np.testing.assert_allclose(trace.outputs["m"][1::2], 2.0)
    np.testing.assert_allclose(trace.outputs["m"][0::2], 1.0)
    # The masked reference runs it whatever the decisions.
    model.trace(x, decisions=none, mode="masked")
    assert int(counter.calls.numpy()) == 2


def test_empty_sub_batch_leaves_batch_norm_statistics_alone():
    graph = Graph()
    graph.input("x", shape=(4,))
    graph.q_node("q", Controller(2, hidden_units=()), inputs="x")
    graph.f_node(
        "bn", keras.layers.BatchNormalization(), inputs="x", when=("q", 1)
    )
    graph.dummy("skip", inputs="x", when=("q", 0))
    graph.merge("m", inputs=["skip", "bn"])
    graph.output("m")
    model = D2NNModel(graph)
    bn = model.plan.nodes["bn"].layer
    before = bn.moving_mean.numpy().copy()
    x = np.random.rand(16, 4).astype("float32") + 3.0
    trace = model.trace(
        x, training=True, decisions={"q": tf.zeros([16], tf.int32)}
    )
    np.testing.assert_array_equal(bn.moving_mean.numpy(), before)
    np.testing.assert_allclose(trace.outputs["m"], x)
    model.trace(x, training=True, decisions={"q": tf.ones([16], tf.int32)})
    assert np.all(np.isfinite(bn.moving_mean.numpy()))
    assert not np.allclose(bn.moving_mean.numpy(), before)


@pytest.mark.parametrize("batch", [0, 1, 2, 7])
def test_any_batch_size(batch):
    model = D2NNModel(random_graph(3))
    x = np.random.rand(batch, 6).astype("float32")
    trace = model.trace(x)
    assert trace.outputs["y"].shape[0] == batch
    assert trace.executed_flops.shape == (batch,)


def test_edge_defaults_replace_absent_values():
    graph = Graph()
    graph.input("x", shape=(2,))
    graph.q_node("q", Controller(2, hidden_units=()), inputs="x")
    graph.f_node("b", CallCounter(), inputs="x", when=("q", 1), cost=1)
    graph.merge(
        "m", inputs=["x", "b"], combine=keras.layers.Add(), defaults={"b": -5.0}
    )
    graph.output("m")
    model = D2NNModel(graph)
    x = np.array([[1.0, 2.0], [3.0, 4.0]], dtype="float32")
    trace = model.trace(x, decisions={"q": tf.constant([0, 1])})
    np.testing.assert_allclose(trace.outputs["m"], [[-4.0, -3.0], [9.0, 12.0]])


def test_execute_rejects_unknown_mode():
    model = counted_graph()
    with pytest.raises(ValueError, match="`mode` should be one of"):
        execute(model.plan, {"x": tf.ones([1, 3])}, mode="lazy")


def test_batch_of_one_uses_cond_without_gather_and_still_skips():
    model = counted_graph()
    counter = model.plan.nodes["expensive"].layer
    single = tf.function(lambda x, d: model.trace(x, decisions={"q": d}))
    x = np.ones((1, 3), dtype="float32")
    spec = (tf.TensorSpec([1, 3]), tf.TensorSpec([1], tf.int32))
    graph = single.get_concrete_function(*spec).graph
    ops = {op.type for op in graph.get_operations()}
    assert "ScatterNd" not in ops and "GatherV2" not in ops
    cheap = single(x, tf.constant([0]))
    assert int(counter.calls.numpy()) == 0
    np.testing.assert_allclose(cheap.outputs["m"], x)
    expensive = single(x, tf.constant([1]))
    assert int(counter.calls.numpy()) == 1
    np.testing.assert_allclose(expensive.outputs["m"], 2 * x)


def chained_graph():
    """The expensive branch is a chain e1 -> e2 -> e3 (e2, e3 ungated)."""

    def chain(graph, when):
        graph.f_node("e1", keras.layers.Dense(3), inputs="x", when=when)
        graph.f_node("e2", keras.layers.Dense(3, "relu"), inputs="e1")
        return graph.f_node("e3", keras.layers.Dense(3), inputs="e2")

    return cheap_or_expensive(chain)


def test_a_chain_carries_its_sub_batch_and_agrees_with_masked():
    # e2 and e3 run on e1's gathered examples: one gather from the full
    # batch for the whole chain, not one per node.
    model = chained_graph()
    run = tf.function(lambda x, d: model.trace(x, decisions={"q": d}).outputs)
    spec = (tf.TensorSpec([None, 3]), tf.TensorSpec([None], tf.int32))
    graph = run.get_concrete_function(*spec).graph
    gathers = [op for op in graph.get_operations() if op.type == "GatherV2"]
    assert len(gathers) == 1
    rng = np.random.default_rng(0)
    for decisions in ([0, 1, 1, 0, 1], [0] * 5, [1] * 5, []):
        d = tf.constant(decisions, tf.int32)
        x = rng.normal(size=(len(decisions), 3)).astype("float32")
        masked = model.trace(x, decisions={"q": d}, mode="masked").outputs
        np.testing.assert_allclose(run(x, d)["m"], masked["m"], atol=1e-5)


@pytest.mark.parametrize("seed", range(4))
def test_batch_of_one_equals_masked_on_random_graphs(seed):
    model = D2NNModel(random_graph(seed))
    rng = np.random.default_rng(seed)
    run = tf.function(lambda x, d, mode: model.trace(x, decisions=d, mode=mode))
    for _ in range(4):
        x = rng.normal(size=(1, 6)).astype("float32")
        forced = {
            q: tf.constant(
                rng.integers(0, len(model.plan.nodes[q].actions), size=1),
                tf.int32,
            )
            for q in model.plan.controllers
        }
        routed = run(x, forced, "routed")
        masked = run(x, forced, "masked")
        np.testing.assert_allclose(
            routed.outputs["y"], masked.outputs["y"], atol=1e-5
        )
        np.testing.assert_allclose(routed.executed_flops, masked.executed_flops)


def test_inference_without_statistics_takes_the_same_decisions():
    model = D2NNModel(random_graph(2))
    x = np.random.default_rng(0).normal(size=(32, 6)).astype("float32")
    full = model.trace(x)
    lean = model.trace(x, statistics=False)
    for q in model.plan.controllers:
        np.testing.assert_array_equal(full.decisions[q], lean.decisions[q])
        np.testing.assert_array_equal(lean.log_probs[q], 0.0)
    np.testing.assert_allclose(full.outputs["y"], lean.outputs["y"])
    # The serving graph has no TFP ops (they would need LiteRT's Flex).
    graph = (
        tf.function(lambda x: model(x))
        .get_concrete_function(tf.TensorSpec([None, 6]))
        .graph
    )
    assert not any(
        "Categorical" in op.name or "Bernoulli" in op.name
        for op in graph.get_operations()
    )
    with pytest.raises(ValueError, match="inference only"):
        model.trace(x, training=True, statistics=False)


def alternatives_graph(covered):
    """x -> q (three actions); one Dense per action in `covered`, merged
    into "m", read by "after"; the actions not covered pass x on (a dummy
    "rest"), merged with "after" into the output "out"."""
    graph = Graph()
    graph.input("x", shape=(3,))
    actions = ("a", "b", "c")
    graph.q_node(
        "q", Controller(3, hidden_units=()), inputs="x", actions=actions
    )
    for action in covered:
        graph.f_node(
            action, keras.layers.Dense(3), inputs="x", when=("q", action)
        )
    graph.merge("m", inputs=list(covered))
    graph.f_node("after", keras.layers.Dense(3), inputs="m")
    rest = [("q", a) for a in actions if a not in covered]
    if rest:
        graph.dummy("rest", inputs="x", when=rest)
        graph.merge("out", inputs=["after", "rest"])
    graph.output("out" if rest else "after")
    return D2NNModel(graph)


@pytest.mark.parametrize("covered", ["abc", "ab"])
def test_a_merge_of_every_action_reaches_every_example(covered):
    # Alternatives covering every action of a controller that decides for
    # every example: their merge, and what reads it, run on the whole
    # batch (no condition at batch 1); a partial cover stays conditional.
    model = alternatives_graph(covered)
    everything = covered == "abc"

    def conditions():
        run = tf.function(lambda x, d: model.trace(x, decisions={"q": d}))
        spec = (tf.TensorSpec([1, 3]), tf.TensorSpec([1], tf.int32))
        graph = run.get_concrete_function(*spec).graph
        return sum(
            op.type in ("If", "StatelessIf") and "Assert" not in op.name
            for op in graph.get_operations()
        )

    # One per alternative, and one for "after" where it is conditional.
    assert conditions() == len(covered) + (0 if everything else 1)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 3)).astype("float32")
    d = tf.constant([0, 1, 2, 0, 1, 1], tf.int32)
    trace = model.trace(x, decisions={"q": d})
    output = "after" if everything else "out"
    np.testing.assert_array_equal(
        trace.executed["after"], [True] * 6 if everything else d.numpy() < 2
    )
    masked = model.trace(x, decisions={"q": d}, mode="masked")
    np.testing.assert_allclose(
        trace.outputs[output], masked.outputs[output], atol=1e-5
    )


def test_route_refuses_forced_decisions_out_of_range():
    model = alternatives_graph("abc")
    x = np.zeros((2, 3), "float32")
    with pytest.raises(ValueError, match=r"decisions\['q'\].*\[0, 2\]"):
        model.route(x, decisions={"q": [0, 3]})
    with pytest.raises(ValueError, match="from -1 to 1"):
        model.route(x, decisions={"q": [-1, 1]})
