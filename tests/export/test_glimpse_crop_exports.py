"""The attention D2NN reads one crop per example, the chosen one, with one
glimpse network, in routed Keras and in every export.

Each region's crop is a conditional node; the crops are merged, so that
the glimpse network runs once, on the batch of chosen crops, and the
engine runs the merged crops as one crop at each example's chosen corner
(`execution.indexed_crop`). The glimpse
network under test joins a `BranchProbe` (the number of examples it ran
on) and a fixed linear map of the crop's pixels: the logits of every
export agree with the head applied to the chosen region's crop, read
once per example, and would not if an export read another region, the
whole canvas, or ran the glimpse once per region. The structural tests
show where the work lives: every glimpse convolution exists once, in the
main graph, and one gather cuts one crop per example, at batch 1 too;
no op cuts the other regions.
"""

import collections
import pathlib

import keras
import numpy as np
import onnx
import onnxruntime
import pytest
from tensorflow.lite.python import schema_py_generated as schema
from tensorflow.lite.tools import flatbuffer_utils

from keras_d2nn import architectures
from keras_d2nn import export
from keras_d2nn.testing import BranchProbe
from tests.export.skip_exports import ALL
from tests.export.skip_exports import load_every_export
from tests.export.skip_exports import run

CANVAS = 56
GLIMPSE = 32
REGIONS = ((0, 0), (0, 24), (24, 0), (24, 24))
# Two convolutions in the context pass, three in the controller (on the
# low-resolution view), three in the glimpse network.
CONTEXT_CONVOLUTIONS, GLIMPSE_CONVOLUTIONS = 2 + 3, 3


def probed_glimpse_network():
    """`[count, 7 fixed linear features of the crop]` per example."""
    crop = keras.Input((GLIMPSE, GLIMPSE, 1))
    flat = keras.layers.Flatten()(crop)
    features = keras.layers.Dense(7, name="pixels")(flat)
    return keras.Model(
        crop,
        keras.layers.Concatenate()([BranchProbe(1)(flat), features]),
        name="probed_glimpse",
    )


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    model = architectures.attention(
        (CANVAS, CANVAS, 1),
        regions=REGIONS,
        glimpse_size=GLIMPSE,
        glimpse_network=probed_glimpse_network(),
    )
    model(np.zeros((1, CANVAS, CANVAS, 1), "float32"))
    # Large random weights, so that the canvases take several regions.
    rng = np.random.default_rng(1)
    for weight in model.plan.nodes["look"].layer.network.trainable_weights:
        weight.assign(rng.normal(0, 1, weight.shape))
    return model


@pytest.fixture(scope="module")
def images(model):
    """Canvases, each a bright square somewhere on noise, that take
    several regions."""
    rng = np.random.default_rng(0)
    images = 0.1 * rng.random((16, CANVAS, CANVAS, 1), "float32")
    for image, (top, left) in zip(
        images, rng.integers(0, CANVAS - 16, (16, 2))
    ):
        image[top : top + 16, left : left + 16] = 1.0
    chosen = model.route(images).decisions["look"]
    assert len(set(chosen.tolist())) > 1, "the canvases should take several"
    return images


def logits_from_chosen_crops(model, images, chosen, batch):
    """The head's logits when the glimpse network reads, once, the crop of
    each example's chosen region, in batches of `batch`: computed from
    the layers, without the routing engine."""
    nodes = model.plan.nodes
    crops = np.stack(
        [
            image[top : top + GLIMPSE, left : left + GLIMPSE]
            for image, (top, left) in zip(images, np.array(REGIONS)[chosen])
        ]
    )
    glimpse = np.array(nodes["glimpse"].layer(crops))
    glimpse[:, 0] = batch  # the probe's count: the examples of one call
    context = nodes["context"].layer(
        nodes["context_map"].layer(nodes["lowres"].layer(images))
    )
    return np.asarray(nodes["head"].layer([glimpse, np.asarray(context)]))


def test_keras_reads_each_chosen_crop_once(model, images):
    routes = model.route(images, batch_size=len(images), values=["glimpse"])
    chosen = routes.decisions["look"]
    # One run of the glimpse network on the whole batch.
    np.testing.assert_array_equal(
        routes.node_values["glimpse"][:, 0], len(images)
    )
    np.testing.assert_allclose(
        model.trace(images).outputs["head"],
        logits_from_chosen_crops(model, images, chosen, len(images)),
        atol=1e-5,
    )
    assert model.plan.specs["crop_region0"].shape[1:] == (GLIMPSE, GLIMPSE, 1)
    assert model.plan.flops["crop_region0"] == 0  # a crop is a copy


@pytest.fixture(scope="module")
def exports(model, tmp_path_factory):
    return load_every_export(model, tmp_path_factory.mktemp("glimpse_exports"))


@pytest.mark.parametrize("name", ALL)
def test_each_export_reads_only_the_chosen_crop(name, model, images, exports):
    chosen = model.route(images).decisions["look"]
    outputs = run(exports[name], images)
    np.testing.assert_array_equal(outputs["decision_look"], chosen)
    batch = 1 if exports[name].batch_size == 1 else len(images)
    np.testing.assert_allclose(
        outputs["logits"],
        logits_from_chosen_crops(model, images, chosen, batch),
        atol=1e-4,
    )


@pytest.fixture(scope="module")
def convolutional_model():
    """The attention D2NN with its own glimpse network (three convolutions),
    the low-resolution context and the controller holding five."""
    model = architectures.attention(
        (CANVAS, CANVAS, 1), regions=REGIONS, glimpse_size=GLIMPSE
    )
    model(np.zeros((1, CANVAS, CANVAS, 1), "float32"))
    return model


def read_litert(path):
    return flatbuffer_utils.read_model_from_bytearray(
        bytearray(pathlib.Path(path).read_bytes())
    )


def litert_op_names(content):
    names = {
        value: key
        for key, value in vars(schema.BuiltinOperator).items()
        if not key.startswith("_")
    }
    return [
        names[max(c.builtinCode, c.deprecatedBuiltinCode)]
        for c in content.operatorCodes
    ]


def litert_ops(path):
    """`[Counter of builtin op names]` of each subgraph, the main first."""
    content = read_litert(path)
    codes = litert_op_names(content)
    return [
        collections.Counter(codes[op.opcodeIndex] for op in sub.operators)
        for sub in content.subgraphs
    ]


def litert_croppers(path):
    """`[(subgraph index, op name)]` of the ops, in every subgraph, whose
    output has a crop's shape `(batch, GLIMPSE, GLIMPSE, 1)`."""
    content = read_litert(path)
    codes = litert_op_names(content)
    found = []
    for index, sub in enumerate(content.subgraphs):
        for op in sub.operators:
            for output in op.outputs:
                tensor = sub.tensors[output]
                shape = (
                    tensor.shapeSignature
                    if tensor.shapeSignature is not None
                    else tensor.shape
                )
                if list(shape)[1:] == [GLIMPSE, GLIMPSE, 1]:
                    found.append((index, codes[op.opcodeIndex]))
    return found


@pytest.mark.parametrize("batch_size", [1, None])
def test_litert_holds_the_glimpse_network_once(
    convolutional_model, tmp_path, batch_size
):
    path = export.export_litert(
        convolutional_model, tmp_path / "model.tflite", batch_size=batch_size
    )
    main, *branches = litert_ops(path)
    # Every convolution in the main graph, once: one glimpse per example.
    assert main["CONV_2D"] == CONTEXT_CONVOLUTIONS + GLIMPSE_CONVOLUTIONS
    assert not any(sub["CONV_2D"] for sub in branches)


@pytest.mark.parametrize("batch_size", [1, None])
def test_litert_cuts_one_crop_per_example(
    convolutional_model, tmp_path, batch_size
):
    path = export.export_litert(
        convolutional_model, tmp_path / "model.tflite", batch_size=batch_size
    )
    # One op cuts a crop, in the main graph: no region's crop of its own
    # (in a branch or computed for every example and selected after).
    assert litert_croppers(path) == [(0, "GATHER")]


def _onnx_ops(graph):
    """Counter of op types in `graph` and every subgraph it holds."""
    ops = collections.Counter(node.op_type for node in graph.node)
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.g.node:
                ops += _onnx_ops(attribute.g)
    return ops


@pytest.mark.parametrize("batch_size", [1, None])
def test_onnx_holds_the_glimpse_network_once(
    convolutional_model, tmp_path, batch_size
):
    path = export.export_onnx(
        convolutional_model, tmp_path / "model.onnx", batch_size=batch_size
    )
    graph = onnx.load(path).graph
    top_level = collections.Counter(node.op_type for node in graph.node)
    assert top_level["Conv"] == CONTEXT_CONVOLUTIONS + GLIMPSE_CONVOLUTIONS
    assert _onnx_ops(graph)["Conv"] == top_level["Conv"]


def onnx_croppers(path, images):
    """Op types of the nodes whose output, on `images`, has a crop's shape
    (every node's output is made a graph output and read by
    onnxruntime: a dynamic slice's shape is known only when it runs)."""
    proto = onnx.load(path)
    graph = proto.graph
    producers = {
        out: node.op_type for node in graph.node for out in node.output
    }
    graph.output.extend(
        onnx.ValueInfoProto(name=name)
        for name in producers
        if name not in {out.name for out in graph.output}
    )
    session = onnxruntime.InferenceSession(proto.SerializeToString())
    values = session.run(None, {graph.input[0].name: images})
    return [
        producers[out.name]
        for out, value in zip(session.get_outputs(), values)
        if np.shape(value)[1:] == (GLIMPSE, GLIMPSE, 1)
        and out.name in producers
    ]


@pytest.mark.parametrize("batch_size", [1, None])
def test_onnx_cuts_one_crop_per_example(
    convolutional_model, images, tmp_path, batch_size
):
    path = export.export_onnx(
        convolutional_model, tmp_path / "model.onnx", batch_size=batch_size
    )
    batch = images[:1] if batch_size == 1 else images
    assert onnx_croppers(path, batch) == ["Gather"]
