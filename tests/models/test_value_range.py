"""An input's declared value range is a contract: data far outside it is
refused by the model's entry points and refused or flagged by the exports,
while data inside it (rounding included) passes."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

import keras_d2nn
from keras_d2nn import export
from keras_d2nn.export import runtime
from keras_d2nn.export import serving
from keras_d2nn.models import value_range
from keras_d2nn.testing import LOSS


def pixels_model(declared=(0.0, 1.0)):
    """A small gated D2NN on 16 values: a cheap head, a gate, a dear one."""
    graph = keras_d2nn.Graph()
    graph.input("pixels", shape=(16,), value_range=declared)
    graph.f_node("low", keras.layers.Dense(8, activation="relu"), "pixels")
    graph.q_node(
        "gate", keras_d2nn.Controller(2), "low", actions=["stop", "high"]
    )
    graph.f_node(
        "low_head", keras.layers.Dense(3), "low", when=("gate", "stop")
    )
    graph.f_node(
        "high",
        keras.layers.Dense(3),
        "low",
        when=("gate", "high"),
    )
    graph.merge("out", ["low_head", "high"])
    graph.output("out", "logits")
    model = keras_d2nn.D2NNModel(graph)
    model.compile(optimizer="adam", loss=LOSS)
    return model


@pytest.fixture(scope="module")
def model():
    return pixels_model()


def scaled(n, seed=0):
    return np.random.default_rng(seed).random((n, 16), dtype="float32")


def test_declared_range_is_validated_where_the_input_is_declared():
    for bad in [(1.0, 0.0), (0.0, float("inf")), (0.0,), "wide", (0, 0)]:
        with pytest.raises(ValueError, match="value_range"):
            keras_d2nn.Graph().input("x", shape=(2,), value_range=bad)
    with pytest.raises(ValueError, match="bools"):
        keras_d2nn.Graph().input(
            "x", shape=(2,), dtype="bool", value_range=(0, 1)
        )


@pytest.mark.parametrize("entry", ["predict", "evaluate", "fit", "call"])
def test_arrays_outside_the_range_are_refused_naming_the_examples(model, entry):
    x = scaled(6)
    x[[1, 4]] *= 16  # raw values, as if never scaled
    y = np.zeros(6, "int64")
    run = {
        "predict": lambda: model.predict(x, verbose=0),
        "evaluate": lambda: model.evaluate(x, y, verbose=0),
        "fit": lambda: model.fit(x, y, epochs=1, verbose=0),
        "call": lambda: model(x),
    }[entry]
    with pytest.raises(
        ValueError,
        match=r"2 of 6 examples hold values outside the range of input "
        r"'pixels' \(at indices \[1, 4\].* in \[0, 1\]",
    ):
        run()


def test_a_dataset_outside_the_range_is_refused_inside_the_step(model):
    x = scaled(8)
    x[5, 3] = -2.0
    data = tf.data.Dataset.from_tensor_slices((x, np.zeros(8, "int64")))
    with pytest.raises(
        ValueError,
        match=r"evaluate: a batch held examples with values outside the "
        r"range of input 'pixels', at positions \[5\]",
    ):
        model.evaluate(data.batch(8), verbose=0)


def test_data_inside_the_range_and_rounding_past_its_ends_pass(model):
    x = scaled(4)
    x[0] = 1.0 + 0.5 * value_range.SLACK
    x[1] = -0.5 * value_range.SLACK
    assert model.predict(x, verbose=0).shape == (4, 3)
    model.evaluate(
        tf.data.Dataset.from_tensor_slices((x, np.zeros(4, "int64"))).batch(4),
        verbose=0,
    )


def test_the_range_survives_get_config_and_keras_files(model, tmp_path):
    config = json.loads(json.dumps(model.graph.get_config()))
    assert keras_d2nn.Graph.from_config(config).validate().nodes[
        "pixels"
    ].value_range == (0.0, 1.0)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    with pytest.raises(ValueError, match="outside the range"):
        loaded.predict(scaled(2) * 16, verbose=0)


def test_a_graph_saved_before_ranges_existed_loads_unchecked(model):
    config = model.graph.get_config()
    for node in config["nodes"]:
        node.pop("value_range", None)
    graph = keras_d2nn.Graph.from_config(config)
    assert graph.validate().nodes["pixels"].value_range is None


def test_the_served_function_flags_or_refuses_examples_outside(model):
    x = scaled(3)
    x[2] *= 16
    flagged = serving.serving_function(model, "flag")(tf.constant(x))
    assert flagged["valid"].numpy().tolist() == [True, True, False]
    assert np.isnan(flagged["probabilities"].numpy()[2]).all()
    assert flagged["decision_gate"].numpy()[2] == -1
    assert np.isfinite(flagged["probabilities"].numpy()[:2]).all()
    with pytest.raises(
        tf.errors.InvalidArgumentError,
        match=r"1 of 3 examples hold values outside \[0, 1\], its declared "
        r"value_range \(at indices \[2\]\)",
    ):
        serving.serving_function(model, "raise")(tf.constant(x))


@pytest.mark.parametrize(
    "fmt, quantization",
    [("litert", None), ("litert", "int8"), ("onnx", None)],
)
def test_litert_and_onnx_flag_examples_outside_even_when_quantised(
    model, fmt, quantization, tmp_path
):
    # An int8 comparison would clamp 16 to the calibrated [0, 1] and find
    # it inside: LiteRT's check reads the float bits (`bitwise`).
    if fmt == "onnx":
        path = export.export_onnx(model, tmp_path / "m.onnx")
    else:
        path = export.export_litert(
            model,
            tmp_path / "m.tflite",
            batch_size=None,
            quantization=quantization,
            representative_images=scaled(64, seed=1),
        )
    x = scaled(4)
    x[1, 0] = 16.0
    x[3, 5] = -1.0
    outputs = runtime.load_exported(path)(x)
    assert outputs["valid"].tolist() == [True, False, True, False]
    assert outputs["decision_gate"][[1, 3]].tolist() == [-1, -1]


def test_a_saved_model_refuses_raw_integers_that_tensorflow_converts(
    model, tmp_path
):
    # TensorFlow's Python call (and TF Serving's JSON) converts integers
    # to the signature's float32 before the graph: the dtype check cannot
    # see them, the range check sees the values.
    path = export.export_saved_model(model, tmp_path / "sm")
    serve = tf.saved_model.load(path).signatures["serving_default"]
    raw = (scaled(2) * 255).astype("uint8")
    with pytest.raises(
        tf.errors.InvalidArgumentError,
        match=r"2 of 2 examples hold values outside \[0, 1\], its declared "
        r"value_range \(at indices \[0, 1\]\); scale them",
    ):
        serve(pixels=raw.tolist())
    ok = serve(pixels=tf.constant(scaled(2)))
    assert ok["valid"].numpy().tolist() == [True, True]


@settings(max_examples=300, deadline=None)
@given(
    st.floats(-0.1, 1.1, allow_subnormal=False),
    st.floats(-3, 3, allow_subnormal=False),
    st.floats(0.125, 10, allow_subnormal=False),
    st.sampled_from([1.0, -1.0, 1e6]),
)
def test_the_bitwise_check_agrees_with_the_float_one(where, low, width, far):
    # `where` 0..1 spans the range; near 0 and 1 its ends and the slack.
    declared = (low, low + width)
    value = np.float32(low + where * width)
    rows = tf.constant([[value], [value * far]], tf.float32)
    bitwise = value_range.in_range_rows(rows, declared, bitwise=True)
    assert bitwise.numpy().tolist() == (
        value_range.in_range_rows(rows, declared).numpy().tolist()
    )
