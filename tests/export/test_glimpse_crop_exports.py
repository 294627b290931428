"""The attention D2NN computes one crop per example, the chosen one, and
nothing of the other regions: in routed Keras and in every export.

The glimpse network under test is a `BranchProbe` on the flattened crop:
it reads the crop's top-left pixel as its "first feature", so marking the
top-left corner of region r makes the run fail if region r's crop is
computed for that example, and only region r's (the regions' corners
differ). Each image below has the corner of a region it is not routed to
marked: computing every region and keeping the chosen one (masking) gives
the same answers, but trips the probe. The probe's output, the size of
the sub-batch it ran on, reaches the head, so the exports agreeing with
Keras also shows each region ran on the examples routed to it alone.
"""

import collections
import pathlib

import keras
import numpy as np
import onnx
import pytest
import tensorflow as tf

from keras_d2nn import architectures
from keras_d2nn import export
from keras_d2nn.export import litert
from keras_d2nn.testing import BranchProbe
from keras_d2nn.testing.branch_probe import TRIPWIRE
from tests.export.skip_exports import ALL
from tests.export.skip_exports import load_every_export
from tests.export.skip_exports import run

CANVAS = 56
GLIMPSE = 32
REGIONS = ((0, 0), (0, 24), (24, 0), (24, 24))


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    model = architectures.attention(
        (CANVAS, CANVAS, 1),
        regions=REGIONS,
        glimpse_size=GLIMPSE,
        glimpse_network=keras.Sequential(
            [keras.layers.Flatten(), BranchProbe(8)]
        ),
    )
    model(np.zeros((1, CANVAS, CANVAS, 1), "float32"))
    return model


def controller_choice(model, images):
    """The regions `look` chooses, computed from the low-resolution path
    alone (no crop runs)."""
    nodes = model.plan.nodes
    features = nodes["context_map"].layer(nodes["lowres"].layer(images))
    look = nodes["look"].layer
    return np.asarray(look.greedy_action(look(features)))


@pytest.fixture(scope="module")
def marked(model):
    """`(images, chosen, marked_regions)`: each image with the corner of a
    region other than the one it is routed to marked."""
    rng = np.random.default_rng(0)
    images = rng.random((12, CANVAS, CANVAS, 1), "float32")
    chosen, marked_regions = [], []
    for image in images:
        for region in rng.permutation(len(REGIONS)):
            trial = image.copy()
            top, left = REGIONS[region]
            trial[top, left, 0] = 10 * TRIPWIRE
            choice = int(controller_choice(model, trial[None])[0])
            if choice != region:
                image[...] = trial
                chosen.append(choice)
                marked_regions.append(int(region))
                break
    assert len(set(chosen)) > 1, "the images should take several regions"
    return images, np.array(chosen), np.array(marked_regions)


@pytest.fixture(scope="module")
def exports(model, tmp_path_factory):
    return load_every_export(model, tmp_path_factory.mktemp("glimpse_exports"))


def logits_if_each_crop_ran_alone(model, images, chosen, one_at_a_time):
    """The head's logits when each region's probe ran on the examples
    routed to it alone (one at a time at batch 1), computed from the
    layers without the routing engine."""
    nodes = model.plan.nodes
    counts = np.bincount(chosen, minlength=len(REGIONS))[chosen]
    if one_at_a_time:
        counts = np.ones_like(counts)
    glimpse = tf.constant(np.tile(counts[:, None].astype("float32"), (1, 8)))
    context = nodes["context"].layer(
        nodes["context_map"].layer(nodes["lowres"].layer(images))
    )
    return np.asarray(nodes["head"].layer([glimpse, context]))


def test_forcing_the_marked_region_trips_the_probe(model, marked):
    # The tripwire is live: the tests below would fail if a marked crop
    # ran.
    images, _, marked_regions = marked
    with pytest.raises(Exception, match="(?i)index|indices"):
        model.route(images[:1], decisions={"look": marked_regions[:1]})


def test_keras_runs_each_crop_on_the_examples_routed_to_it(model, marked):
    images, chosen, _ = marked
    routes = model.route(images, values=["glimpse"])
    np.testing.assert_array_equal(routes.decisions["look"], chosen)
    counts = np.bincount(chosen, minlength=len(REGIONS))
    np.testing.assert_array_equal(
        routes.node_values["glimpse"][:, 0], counts[chosen]
    )
    np.testing.assert_allclose(
        model.trace(images).outputs["head"],
        logits_if_each_crop_ran_alone(model, images, chosen, False),
        atol=1e-5,
    )
    assert model.plan.specs["crop_region0"].shape[1:] == (GLIMPSE, GLIMPSE, 1)


@pytest.mark.parametrize("name", ALL)
def test_each_export_computes_only_the_chosen_crop(
    name, model, marked, exports
):
    images, chosen, _ = marked
    outputs = run(exports[name], images)
    np.testing.assert_array_equal(outputs["decision_look"], chosen)
    one_at_a_time = exports[name].batch_size == 1
    np.testing.assert_allclose(
        outputs["logits"],
        logits_if_each_crop_ran_alone(model, images, chosen, one_at_a_time),
        atol=1e-4,
    )


@pytest.fixture(scope="module")
def convolutional_model():
    """The attention D2NN with its own glimpse network (three convolutions),
    the low-resolution context holding two."""
    model = architectures.attention(
        (CANVAS, CANVAS, 1), regions=REGIONS, glimpse_size=GLIMPSE
    )
    model(np.zeros((1, CANVAS, CANVAS, 1), "float32"))
    return model


def test_batch_one_litert_keeps_every_glimpse_inside_a_condition(
    convolutional_model, tmp_path
):
    # At batch 1 the probe above cannot tell a skipped region from one
    # computed and discarded (each would run on one example): the
    # structure can. The main graph runs the context's two convolutions;
    # each region's crop and glimpse are the branches of their own IF.
    path = export.export_litert(
        convolutional_model, tmp_path / "one.tflite", batch_size=1
    )
    ops = collections.Counter(
        op["op_name"]
        for op in litert.interpreter(
            pathlib.Path(path).read_bytes(), xnnpack=False
        )._get_ops_details()
    )
    assert ops["CONV_2D"] == 2
    assert ops["IF"] == 2 * len(REGIONS)


def test_batch_one_onnx_keeps_every_glimpse_inside_an_if(
    convolutional_model, tmp_path
):
    path = export.export_onnx(
        convolutional_model, tmp_path / "one.onnx", batch_size=1
    )
    top_level = collections.Counter(
        node.op_type for node in onnx.load(path).graph.node
    )
    assert top_level["Conv"] == 2
    assert top_level["If"] == 2 * len(REGIONS)
