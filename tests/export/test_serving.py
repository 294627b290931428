"""Exported SavedModel and LiteRT models keep routing and agree with Keras."""

import json
import subprocess
import sys
import warnings

import keras
import numpy as np
import onnx
import pytest
import tensorflow as tf

import keras_d2nn
from keras_d2nn import architectures
from keras_d2nn import export
from keras_d2nn.export import litert
from keras_d2nn.testing import assert_exports_agree
from keras_d2nn.testing import run_export_test
from keras_d2nn.testing import shape_images


@pytest.fixture(scope="module")
def model():
    model = architectures.high_low(gate_input="features")
    model(np.zeros((1, 28, 28, 1), "float32"))
    return model


def images(n, seed=0):
    return np.random.default_rng(seed).random((n, 28, 28, 1), "float32")


def expected(model, x):
    return {
        k: np.asarray(v) for k, v in export.serving_function(model)(x).items()
    }


def test_saved_model_runs_without_keras_d2nn_at_any_batch(model, tmp_path):
    path = export.export_saved_model(model, tmp_path / "sm")
    x = images(5)
    np.save(tmp_path / "x.npy", x)
    # A fresh process that does not import keras_d2nn (nor Keras).
    script = (
        "import json, sys, numpy as np, tensorflow as tf\n"
        f"m = tf.saved_model.load({str(path)!r})\n"
        "f = m.signatures['serving_default']\n"
        f"x = np.load({str(tmp_path / 'x.npy')!r})\n"
        "out = {k: v.numpy().tolist() for k, v in f(image=x).items()}\n"
        "one = f(image=x[:1])['probabilities'].shape[0]\n"
        "assert 'keras_d2nn' not in sys.modules\n"
        "print(json.dumps({'out': out, 'one': int(one)}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    want = expected(model, x)
    assert set(loaded["out"]) == {
        "logits",
        "probabilities",
        "decision_gate",
        "executed_flops",
        "valid",
    }
    assert all(loaded["out"]["valid"])
    np.testing.assert_allclose(
        loaded["out"]["probabilities"], want["probabilities"], atol=1e-5
    )
    np.testing.assert_array_equal(
        loaded["out"]["decision_gate"], want["decision_gate"]
    )
    np.testing.assert_allclose(
        loaded["out"]["executed_flops"], want["executed_flops"]
    )
    assert loaded["one"] == 1


def test_saved_model_stores_each_weight_once(model, tmp_path):
    path = export.export_saved_model(model, tmp_path / "sm")
    reader = tf.train.load_checkpoint(f"{path}/variables/variables")
    stored = sum(
        int(np.prod(shape))
        for name, shape in reader.get_variable_to_shape_map().items()
        if name != "_CHECKPOINTABLE_OBJECT_GRAPH"
    )
    # Once each (not twice: keras-team/keras#23553); left out are only the
    # scalars serving does not read (cost weight, exploration settings).
    scalars = sum(1 for w in model.weights if len(w.shape) == 0)
    assert model.count_params() - scalars <= stored <= model.count_params()


def test_litert_agrees_at_batch_one_and_any_batch(model):
    # Batch 1 (one tf.cond per conditional node), fed one image at a
    # time; any batch (gather/scatter); both under XNNPACK.
    runs = run_export_test(model, ("litert", "litert_batched"), images(7))
    assert runs["litert"].exported.batch_size == 1
    assert runs["litert_batched"].exported.batch_size is None


def test_bad_batch_size_is_refused(model, tmp_path):
    with pytest.raises(ValueError, match="batch_size"):
        export.export_litert(model, tmp_path / "x.tflite", batch_size=0)


def test_onnx_batch_one_keeps_if_and_runs_one_branch(model, tmp_path):
    path = export.export_onnx(model, tmp_path / "one.onnx", batch_size=1)
    proto = onnx.load(path)
    # The expensive branch's convolutions live only inside the If.
    top_level = [n.op_type for n in proto.graph.node]
    assert top_level.count("Conv") == 1  # the cheap path's
    assert "If" in top_level
    # Fed one image at a time (the export's batch size).
    assert_exports_agree(model, {"onnx": path}, images(3))


def calibration_split(model, images):
    """Images the model routes to each action, 40 of each."""
    decisions = expected(model, images)["decision_gate"]
    split = [images[decisions == action][:40] for action in (0, 1)]
    assert [len(part) for part in split] == [40, 40], "both actions taken"
    return split


@pytest.mark.parametrize(
    "quantization, max_size_ratio", [("float16", 0.55), ("int8", 0.3)]
)
def test_quantised_litert_is_smaller_and_still_routes(
    quantization, max_size_ratio, tmp_path
):
    keras.utils.set_random_seed(0)
    model = architectures.high_low(gate_input="features")
    stop, high = calibration_split(model, shape_images(1000))
    float_path = export.export_litert(model, tmp_path / "f.tflite")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every branch calibrated: no warning
        path = export.export_litert(
            model,
            tmp_path / f"{quantization}.tflite",
            quantization=quantization,
            representative_images=np.concatenate([stop, high]),
        )
    content = open(path, "rb").read()
    assert len(content) < max_size_ratio * len(open(float_path, "rb").read())
    weights = litert.constant_bytes(content)
    assert weights.get("FLOAT32", 0) < 0.01 * sum(weights.values())
    runner = litert.interpreter(content).get_signature_runner()
    x = np.concatenate([stop[:10], high[:10]])
    out = [runner(image=x[i : i + 1]) for i in range(len(x))]
    want = expected(model, x)
    probabilities = np.concatenate([o["probabilities"] for o in out])
    decisions = np.concatenate([o["decision_gate"] for o in out])
    same = decisions == want["decision_gate"]
    # Rounding may flip an image that sits on the gate's boundary.
    assert same.mean() >= 0.9
    # int8 softmax has steps of 1/256.
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=0.02)
    assert np.abs(probabilities - want["probabilities"])[same].max() < 0.05
    # FLOP counts are integers in the model: exact whatever the precision.
    np.testing.assert_array_equal(
        np.concatenate([o["executed_flops"] for o in out])[same],
        want["executed_flops"][same],
    )


def test_int8_calibration_missing_a_branch_warns(tmp_path):
    keras.utils.set_random_seed(0)
    model = architectures.high_low(gate_input="features")
    stop, _ = calibration_split(model, shape_images(1000))
    with pytest.warns(UserWarning, match="did not take every branch"):
        export.export_litert(
            model,
            tmp_path / "q.tflite",
            quantization="int8",
            representative_images=stop,
        )


def test_int8_needs_calibration_images_of_the_right_shape(model, tmp_path):
    with pytest.raises(ValueError, match="representative_images"):
        export.export_litert(model, tmp_path / "q.tflite", quantization="int8")
    with pytest.raises(ValueError, match=r"shape \(n,\) \+ \(28, 28, 1\)"):
        export.export_litert(
            model,
            tmp_path / "q.tflite",
            quantization="int8",
            representative_images=np.zeros((4, 28, 28)),
        )
    with pytest.raises(ValueError, match="quantization"):
        export.export_litert(model, tmp_path / "q.tflite", quantization="int4")


def test_a_plain_keras_model_is_refused_with_a_pointer(tmp_path):
    plain = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    with pytest.raises(TypeError, match="keras_d2nn.D2NNModel"):
        export.export_onnx(plain, tmp_path / "p.onnx")


@pytest.mark.parametrize("shape", [(None, None, 1), (None, 28, 1)])
def test_an_untraced_input_shape_is_refused_at_construction(shape):
    graph = keras_d2nn.Graph()
    graph.input("image", shape=shape)
    graph.f_node(
        "features",
        keras.Sequential(
            [keras.layers.Conv2D(4, 3), keras.layers.GlobalAveragePooling2D()]
        ),
        inputs="image",
    )
    graph.f_node("logits", keras.layers.Dense(10), inputs="features")
    graph.output("logits")
    # No model, so nothing to export: the shape is needed for the FLOPs.
    with pytest.raises(ValueError, match="FLOPs need static shapes"):
        keras_d2nn.D2NNModel(graph)


@keras.saving.register_keras_serializable("test_export")
class LogDetShift(keras.layers.Layer):
    """Adds log det(I + mean(x)) to x: Cholesky is not a TFLite builtin."""

    def call(self, x):
        eye = tf.eye(3) * (1.0 + tf.reduce_mean(x) ** 2)
        return x + tf.linalg.logdet(eye)


def test_a_layer_lacking_builtins_is_named_in_the_litert_error(tmp_path):
    graph = keras_d2nn.Graph()
    graph.input("image", shape=(28, 28, 1))
    graph.f_node(
        "cheap",
        keras.Sequential(
            [keras.layers.Flatten(), keras.layers.Dense(8, "relu")]
        ),
        inputs="image",
    )
    graph.f_node("cheap_head", keras.layers.Dense(10), inputs="cheap")
    graph.q_node(
        "gate",
        keras_d2nn.Controller(2),
        inputs="cheap",
        actions=("stop", "more"),
    )
    graph.dummy("stop", inputs="cheap_head", when=("gate", "stop"))
    graph.f_node(
        "odd",
        LogDetShift(name="logdet_shift"),
        inputs="cheap",
        when=("gate", "more"),
    )
    graph.f_node("more_head", keras.layers.Dense(10), inputs="odd")
    graph.merge("logits", inputs=["stop", "more_head"])
    graph.output("logits")
    model = keras_d2nn.D2NNModel(graph)
    with pytest.raises(ValueError) as error:
        export.export_litert(model, tmp_path / "odd.tflite")
    message = str(error.value)
    assert "node 'odd' (layer 'logdet_shift', LogDetShift)" in message
    assert "Cholesky" in message
    assert "export a SavedModel or ONNX instead" in message


def test_an_export_replaces_a_previous_export_but_nothing_else(model, tmp_path):
    path = tmp_path / "m.onnx"
    path.write_bytes(b"a previous export")
    export.export_onnx(model, path)
    assert path.stat().st_size > 1000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]
    # A folder of other files is never replaced by an export.
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("keep me")
    with pytest.raises(ValueError, match="choose a new path or remove it"):
        export.export_saved_model(model, tmp_path / "notes")
    with pytest.raises(ValueError, match="choose a new path or remove it"):
        export.export_litert(model, tmp_path / "notes")
    assert (tmp_path / "notes" / "todo.txt").read_text() == "keep me"
    # Nor the trained model, given by mistake as the export's path.
    (tmp_path / "model.keras").write_bytes(b"the trained model")
    with pytest.raises(ValueError, match=r"\(a \.onnx file\)"):
        export.export_onnx(model, tmp_path / "model.keras")
    assert (tmp_path / "model.keras").read_bytes() == b"the trained model"
    # A previous SavedModel is replaced whole.
    export.export_saved_model(model, tmp_path / "sm")
    (tmp_path / "sm" / "stale").write_text("from before")
    export.export_saved_model(model, tmp_path / "sm")
    assert not (tmp_path / "sm" / "stale").exists()
