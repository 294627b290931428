"""Alternative crops merged: one crop at each example's chosen corner,
the same values as cropping region by region, and no other region cut."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_d2nn import Controller
from keras_d2nn import D2NNModel
from keras_d2nn import Graph
from keras_d2nn import architectures
from keras_d2nn.execution import indexed_crop

CORNERS = ((0, 0), (0, 4), (5, 2))
SIZE = 6


def crops_graph(covered="abc", gated=False, extra_reader=False):
    """image (12x12) -> q (three regions): a `Cropping2D` per region,
    merged into "crop", read by "out" (`covered`: the regions that have
    a crop; the others a Dense, merged with "out"). `gated`: a gate
    decides whether q and the crops run at all (q then decides only
    where the gate let it). `extra_reader`: another node also reads the
    first crop."""
    graph = Graph()
    graph.input("image", shape=(12, 12, 1))
    graph.f_node("flat", keras.layers.Flatten(), inputs="image")
    when = ()
    if gated:
        graph.q_node(
            "gate",
            Controller(2, hidden_units=()),
            inputs="flat",
            actions=("skip", "look"),
        )
        when = (("gate", "look"),)
    graph.q_node(
        "q",
        Controller(3, hidden_units=()),
        inputs="flat",
        actions=("a", "b", "c"),
        when=when,
    )
    for (top, left), action in zip(CORNERS, "abc"):
        if action not in covered:
            continue
        layer = keras.layers.Cropping2D(
            ((top, 12 - SIZE - top), (left, 12 - SIZE - left))
        )
        graph.f_node(
            f"crop_{action}", layer, inputs="image", when=("q", action)
        )
    graph.merge("crop", inputs=[f"crop_{a}" for a in covered])
    graph.f_node("out", keras.layers.Flatten(), inputs="crop")
    outputs = ["out"]
    # Every example's answer: "out", or a Dense where q chose a region
    # without a crop or the gate skipped q.
    others = [("q", a) for a in "abc" if a not in covered]
    others += [("gate", "skip")] if gated else []
    for index, when in enumerate(others):
        graph.f_node(
            f"instead{index}",
            keras.layers.Dense(SIZE * SIZE),
            inputs="flat",
            when=when,
        )
    if others:
        graph.merge(
            "answer",
            inputs=["out"] + [f"instead{i}" for i in range(len(others))],
        )
        outputs = ["answer"]
    if extra_reader:
        graph.f_node("peek", keras.layers.Flatten(), inputs="crop_a")
        others = [("q", "b"), ("q", "c")]
        graph.f_node(
            "other", keras.layers.Dense(SIZE * SIZE), "flat", when=others
        )
        graph.merge("peeked", inputs=["peek", "other"])
        outputs.append("peeked")
    for name in outputs:
        graph.output(name)
    return D2NNModel(graph)


def test_the_merged_crops_form_one_group():
    group = indexed_crop.crop_groups(crops_graph().plan)["crop"]
    assert group.controller == "q" and group.source == "image"
    assert group.corners == CORNERS and group.size == (SIZE, SIZE)
    assert group.members == ("crop_a", "crop_b", "crop_c")
    assert indexed_crop.branch_nodes(crops_graph().plan) == []


def test_the_attention_crops_form_one_group():
    model = architectures.attention(input_shape=(112, 112, 1))
    group = indexed_crop.crop_groups(model.plan)["crop"]
    assert len(group.corners) == 25 and group.size == (48, 48)
    assert group.corners[6] == (21, 21)


@pytest.mark.parametrize(
    "model",
    [
        pytest.param(crops_graph(covered="ab"), id="an_action_without_crop"),
        pytest.param(crops_graph(extra_reader=True), id="crop_read_twice"),
    ],
)
def test_other_merges_are_no_group(model):
    assert indexed_crop.crop_groups(model.plan) == {}
    assert "crop_a" in indexed_crop.branch_nodes(model.plan)


def numpy_crops(images, actions):
    return np.stack(
        [
            image[top : top + SIZE, left : left + SIZE]
            for image, (top, left) in zip(images, np.array(CORNERS)[actions])
        ]
    )


@pytest.mark.parametrize("batch", [1, 7])
def test_crop_cuts_each_example_at_its_corner(batch):
    group = indexed_crop.CropGroup("q", "image", (), CORNERS, (SIZE, SIZE))
    rng = np.random.default_rng(batch)
    images = rng.random((batch, 12, 12, 2), "float32")
    actions = rng.integers(0, 3, batch)
    crops = indexed_crop.crop(tf.constant(images), actions, group)
    assert crops.shape == (batch, SIZE, SIZE, 2)
    np.testing.assert_array_equal(crops, numpy_crops(images, actions))


@pytest.mark.parametrize("gated", [False, True])
@pytest.mark.parametrize("batch", [1, 9])
def test_routed_crops_equal_the_masked_reference(gated, batch):
    model = crops_graph(gated=gated)
    rng = np.random.default_rng(batch)
    images = rng.random((batch, 12, 12, 1), "float32")
    decisions = {"q": rng.integers(0, 3, batch).astype("int32")}
    if gated:
        decisions["gate"] = rng.integers(0, 2, batch).astype("int32")
    routed = model.trace(images, decisions=decisions)
    masked = model.trace(images, decisions=decisions, mode="masked")
    for name in ("crop", "crop_a", "crop_b", "crop_c", "out"):
        np.testing.assert_array_equal(routed.values[name], masked.values[name])
        np.testing.assert_array_equal(
            routed.executed[name], masked.executed[name]
        )
    np.testing.assert_array_equal(routed.executed_flops, masked.executed_flops)
    looked = np.ones(batch, bool) if not gated else decisions["gate"] == 1
    np.testing.assert_array_equal(
        np.asarray(routed.values["crop"])[looked],
        numpy_crops(images, decisions["q"])[looked],
    )


def traced_ops(model, batch):
    """`(conditions, cutters)` of the traced routed execution: the
    conditions (`If` ops, but the input checks' assertion), and the types
    of the ops that cut a crop-shaped tensor (slice or gather)."""
    run = tf.function(
        lambda x, d: model.trace(x, decisions={"q": d}, statistics=False)
    )
    spec = (tf.TensorSpec([batch, 12, 12, 1]), tf.TensorSpec([batch], tf.int32))
    operations = run.get_concrete_function(*spec).graph.get_operations()
    conditions = [
        op.name
        for op in operations
        if op.type in ("If", "StatelessIf") and "Assert" not in op.name
    ]
    cutters = [
        op.type
        for op in operations
        if op.type in ("Slice", "StridedSlice", "GatherV2")
        and op.outputs[0].shape[1:] == (SIZE, SIZE, 1)
    ]
    return conditions, cutters


@pytest.mark.parametrize("batch", [1, 4])
def test_one_op_cuts_the_crops(batch):
    # No condition, no per-region StridedSlice (Cropping2D): one gather
    # of the crops' pixels, at batch 1 too.
    assert traced_ops(crops_graph(), batch) == ([], ["GatherV2"])


def test_a_gated_controller_keeps_the_crops_conditional():
    # q decides only where the gate let it: a condition each for q, the
    # three crops, "out" and the skip's Dense (three fewer if the crops
    # were one indexed crop).
    conditions, _ = traced_ops(crops_graph(gated=True), 1)
    assert len(conditions) == 6
