"""Exporting a D2NN whose input node is an integer input (token ids).

The exports take the dtype the graph declares for its input node: an
int32 input is exported as int32 (SavedModel, LiteRT, ONNX), accepted by
`serving_function` and `load_exported`, never flagged as non-finite, and
answered as Keras answers. A float input still refuses integers.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_d2nn import Controller
from keras_d2nn import D2NNModel
from keras_d2nn import Graph
from keras_d2nn.export import runtime
from keras_d2nn.export import serving
from keras_d2nn.testing import assert_exports_agree
from keras_d2nn.testing import write_every_export

VOCABULARY = 50
LENGTH = 6
CLASSES = 3


def routed_model(dtype):
    """A controller choosing between a small and a larger Dense head, over
    an embedding of int ids (`dtype` integer) or a Dense of floats."""
    keras.utils.set_random_seed(0)
    graph = Graph()
    graph.input("ids", shape=(LENGTH,), dtype=dtype)
    if tf.as_dtype(dtype).is_integer:
        features = keras.Sequential(
            [keras.layers.Embedding(VOCABULARY, 4), keras.layers.Flatten()]
        )
    else:
        features = keras.layers.Dense(24, activation="relu")
    graph.f_node("features", features, inputs="ids")
    graph.f_node("small", keras.layers.Dense(CLASSES), inputs="features")
    graph.q_node(
        "gate",
        Controller(2, hidden_units=(), seed=0),
        inputs="features",
        actions=("stop", "large"),
    )
    graph.dummy("stop", inputs="small", when=("gate", "stop"))
    graph.f_node(
        "large",
        keras.Sequential(
            [
                keras.layers.Dense(16, activation="relu"),
                keras.layers.Dense(CLASSES),
            ]
        ),
        inputs="features",
        when=("gate", "large"),
    )
    graph.merge("logits", inputs=["stop", "large"])
    graph.output("logits")
    return D2NNModel(graph)


@pytest.fixture(scope="module")
def model():
    return routed_model("int32")


@pytest.fixture(scope="module")
def ids(model):
    values = (
        np.random.default_rng(0)
        .integers(0, VOCABULARY, (16, LENGTH))
        .astype("int32")
    )
    decisions = np.asarray(model.trace(values).decisions["gate"])
    assert set(decisions) == {0, 1}, "both branches should be taken"
    return values


@pytest.fixture(scope="module")
def keras_answer(model, ids):
    """What Keras itself computes: logits, decisions, FLOPs."""
    trace = model.trace(ids)
    logits = np.asarray(model(ids))
    return {
        "probabilities": np.asarray(tf.nn.softmax(logits, axis=-1)),
        "logits": logits,
        "decision_gate": np.asarray(trace.decisions["gate"]),
        "executed_flops": np.asarray(trace.executed_flops),
    }


@pytest.fixture(scope="module")
def exports(model, tmp_path_factory):
    return write_every_export(model, tmp_path_factory.mktemp("integer_exports"))


def assert_agrees(outputs, want):
    np.testing.assert_allclose(
        outputs["probabilities"], want["probabilities"], atol=1e-5
    )
    np.testing.assert_array_equal(
        outputs["decision_gate"], want["decision_gate"]
    )
    np.testing.assert_allclose(
        outputs["executed_flops"], want["executed_flops"], rtol=1e-6
    )
    assert np.asarray(outputs["valid"]).dtype == bool
    assert np.asarray(outputs["valid"]).all()


def test_signatures_declare_the_integer_input(model):
    (spec,) = serving.input_signature(model)
    assert spec.dtype == tf.int32 and spec.name == "ids"
    (spec,) = serving.saved_model_signature(model)
    assert spec.dtype == tf.int32


@pytest.mark.parametrize("on_invalid", serving.ON_INVALID)
def test_serving_function_takes_ids_and_agrees_with_keras(
    model, ids, keras_answer, on_invalid
):
    outputs = serving.serving_function(model, on_invalid)(ids)
    assert_agrees({k: np.asarray(v) for k, v in outputs.items()}, keras_answer)
    # Ids of another integer width are ids too (Keras casts them).
    wide = serving.serving_function(model, on_invalid)(ids.astype("int64"))
    np.testing.assert_array_equal(
        wide["decision_gate"], keras_answer["decision_gate"]
    )


@pytest.mark.parametrize("bitwise", [False, True])
def test_integers_are_always_finite(bitwise):
    rows = serving._finite_rows(
        tf.constant(np.full((3, 2, 2), np.iinfo(np.int32).max, "int32")),
        bitwise,
    )
    assert rows.dtype == tf.bool
    np.testing.assert_array_equal(rows.numpy(), [True, True, True])
    rows = serving._finite_rows(
        tf.constant([[1.0], [np.nan], [np.inf]]), bitwise
    )
    np.testing.assert_array_equal(rows.numpy(), [True, False, False])


def test_serving_function_refuses_floats_for_ids(model, ids):
    with pytest.raises(
        ValueError,
        match=r"Input 'ids' should hold int32 .*"
        r"received dtype float32, which "
        r"casting would truncate",
    ):
        serving.serving_function(model, "raise")(ids.astype("float32"))


@pytest.mark.parametrize(
    "name", ["saved_model", "litert", "litert_batched", "onnx"]
)
def test_exports_take_int32_ids_and_agree_with_keras(
    name, model, exports, ids, keras_answer
):
    loaded = runtime.load_exported(exports[name])
    assert loaded.input_dtype == np.int32
    assert loaded.input_shape == (LENGTH,)
    outputs = assert_exports_agree(model, {name: loaded}, ids)[name].outputs
    # Keras' own answer (not through the serving function) too.
    assert_agrees(outputs, keras_answer)
    # int64 ids within int32's range (NumPy's default integers) convert.
    assert_exports_agree(model, {name: loaded}, ids.astype("int64"))
    with pytest.raises(
        ValueError,
        match=r"takes int32 values \(its input "
        r"'ids' is declared int32\); "
        r"received an array of dtype "
        r"float32, which converting would "
        r"truncate",
    ):
        loaded.run(ids.astype("float32"))
    with pytest.raises(
        ValueError,
        match=r"received int64 values from 0 to "
        r"4294967296, outside int32's "
        r"range",
    ):
        loaded.run(np.where(ids == ids.max(), 2**32, 0).astype("int64"))


def test_saved_model_signature_is_int32_and_checks_the_shape(
    exports, ids, keras_answer
):
    serve = tf.saved_model.load(exports["saved_model"]).signatures[
        "serving_default"
    ]
    outputs = {k: v.numpy() for k, v in serve(ids=tf.constant(ids)).items()}
    assert_agrees(outputs, keras_answer)
    with pytest.raises(
        tf.errors.InvalidArgumentError,
        match=r"input `ids` should have shape \(batch, 6\) "
        r"\(int32\); received shape \(2, 5\)",
    ):
        serve(ids=tf.constant(ids[:2, :5]))


def test_int8_calibration_refuses_float_images_for_ids(model, ids, tmp_path):
    with pytest.raises(
        ValueError,
        match=r"`representative_images` should "
        r"hold int32 values",
    ):
        serving.export_litert(
            model,
            tmp_path / "q.tflite",
            quantization="int8",
            representative_images=ids.astype("float32"),
        )


def test_a_float_model_still_refuses_integers(tmp_path):
    model = routed_model("float32")
    images = np.random.default_rng(1).normal(size=(4, LENGTH))
    with pytest.raises(
        ValueError,
        match=r"Input 'ids' should hold float32 "
        r"values scaled as in training; "
        r"received dtype uint8.*"
        r"astype\('float32'\) / 255",
    ):
        serving.serving_function(model)(images.astype("uint8"))
    loaded = runtime.load_exported(
        serving.export_saved_model(model, tmp_path / "sm")
    )
    assert loaded.input_dtype == np.float32
    with pytest.raises(
        ValueError,
        match=r"takes float32 images scaled as "
        r"in training; received an array "
        r"of dtype uint8.*"
        r"astype\('float32'\) / 255",
    ):
        loaded.run(images.astype("uint8"))
    assert_exports_agree(
        model, {"saved_model": loaded}, images.astype("float32")
    )
