"""Property tests over random graphs (hypothesis): every valid graph runs
routed exactly as masked (inferred and sampled decisions alike) with every
output reached; every invalid one gets
a ValueError from graph construction, never an error from inside
TensorFlow."""

import keras
import numpy as np
import pytest
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

import keras_d2nn

CLASSES = 3
PROFILE = settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)


# A region is "head" (a Dense of CLASSES outputs) or a controller: a list
# with one entry per action, each "skip" (a head of its own) or
# (units, region) (a hidden Dense layer, then a region).
REGIONS = st.recursive(
    st.just("head"),
    lambda inner: st.lists(
        st.one_of(st.just("skip"), st.tuples(st.integers(2, 6), inner)),
        min_size=2,
        max_size=3,
    ),
    max_leaves=6,
)
# Layers are made from the drawn structure outside the strategy: building
# Keras layers draws Python random numbers, which hypothesis forbids there.
TOPS = st.lists(
    st.one_of(st.just("skip"), st.tuples(st.integers(2, 6), REGIONS)),
    min_size=2,
    max_size=3,
)


def build_region(graph, region, parent, counter):
    """Adds `region` below `parent`; returns its node of CLASSES outputs."""
    counter[0] += 1
    tag = counter[0]
    if region == "head":
        graph.f_node(f"head{tag}", keras.layers.Dense(CLASSES), inputs=parent)
        return f"head{tag}"
    names = tuple(f"a{i}" for i in range(len(region)))
    graph.q_node(
        f"q{tag}",
        keras_d2nn.Controller(len(names)),
        inputs=parent,
        actions=names,
    )
    ends = []
    for action, entry in zip(names, region):
        when = (f"q{tag}", action)
        if entry == "skip":
            graph.f_node(
                f"skip{tag}{action}",
                keras.layers.Dense(CLASSES),
                inputs=parent,
                when=when,
            )
            ends.append(f"skip{tag}{action}")
            continue
        units, inner = entry
        branch = f"b{tag}{action}"
        graph.f_node(
            branch,
            keras.layers.Dense(units, activation="relu"),
            inputs=parent,
            when=when,
        )
        ends.append(build_region(graph, inner, branch, counter))
    graph.merge(f"m{tag}", inputs=ends)
    return f"m{tag}"


def build_graph(top):
    graph = keras_d2nn.Graph()
    graph.input("x", shape=(5,))
    graph.f_node("stem", keras.layers.Dense(4, activation="relu"), inputs="x")
    graph.output(build_region(graph, top, "stem", [0]))
    return graph


@given(TOPS, st.integers(0, 2**16))
@PROFILE
def test_random_valid_graphs_route_as_they_mask(top, seed):
    model = keras_d2nn.D2NNModel(build_graph(top))
    x = np.random.default_rng(seed).normal(size=(16, 5)).astype("float32")
    routed = model.trace(x, training=False, mode="routed")
    masked = model.trace(x, training=False, mode="masked")
    for name, value in routed.outputs.items():
        value = np.asarray(value)
        assert value.shape == (16, CLASSES)
        assert np.all(np.isfinite(value)), "an output was not reached"
        np.testing.assert_allclose(
            value, np.asarray(masked.outputs[name]), atol=1e-5
        )
    for q, decision in routed.decisions.items():
        np.testing.assert_array_equal(decision, masked.decisions[q])
    np.testing.assert_allclose(routed.executed_flops, masked.executed_flops)
    # Every example reaches the output node.
    output_node = dict(model.plan.outputs)[next(iter(routed.outputs))]
    assert np.all(np.asarray(routed.executed[output_node]))

    # Sampled (training) decisions too: each example's exploration noise is
    # drawn for the whole batch before routing, so a nested controller
    # running on a gathered sub-batch samples what it samples on the batch.
    seeds = [
        model.plan.nodes[q].layer.seed_generator.state
        for q in model.plan.controllers
    ]
    start = [state.numpy() for state in seeds]
    routed = model.trace(x, training=True, mode="routed")
    for state, value in zip(seeds, start):
        state.assign(value)
    masked = model.trace(x, training=True, mode="masked")
    for q, decision in routed.decisions.items():
        np.testing.assert_array_equal(decision, masked.decisions[q])
        np.testing.assert_allclose(
            routed.log_probs[q], masked.log_probs[q], atol=1e-5
        )


# Each breaks a valid graph; the error must name the culprit.
MUTATIONS = {
    "dangling input": lambda g: g.f_node(
        "bad", keras.layers.Dense(2), inputs="nowhere"
    ),
    "cycle": lambda g: (
        g.f_node("c1", keras.layers.Dense(2), inputs="c2"),
        g.f_node("c2", keras.layers.Dense(2), inputs="c1"),
    ),
    "unknown controller": lambda g: g.f_node(
        "bad", keras.layers.Dense(2), inputs="stem", when=("ghost", "a0")
    ),
    "merge of non-alternatives": lambda g: (
        g.f_node("p1", keras.layers.Dense(CLASSES), inputs="stem"),
        g.f_node("p2", keras.layers.Dense(CLASSES), inputs="stem"),
        g.merge("both", inputs=["p1", "p2"]),
        g.output("both"),
    ),
    "shape mismatch": lambda g: g.f_node(
        "wide", keras.layers.Reshape((2, 2)), inputs="x"
    ),
}


CULPRITS = {
    "dangling input": "nowhere",
    "cycle": "c1",
    "unknown controller": "ghost",
    "merge of non-alternatives": "both",
    "shape mismatch": "wide",
}


@given(TOPS, st.sampled_from(sorted(MUTATIONS)))
@PROFILE
def test_random_invalid_graphs_get_a_clear_error(top, mutation):
    graph = build_graph(top)
    culprit = CULPRITS[mutation]
    try:
        MUTATIONS[mutation](graph)
    except ValueError as error:  # some are caught as they are added
        assert culprit in str(error)
        return
    with pytest.raises(ValueError, match=culprit):
        keras_d2nn.D2NNModel(graph)
