"""Exported SavedModel and LiteRT models keep routing and agree with Keras."""

import json
import subprocess
import sys

import numpy as np
import pytest

from keras_d2nn import architectures
from keras_d2nn import export
from keras_d2nn import litert


@pytest.fixture(scope="module")
def model():
    model = architectures.high_low()
    model(np.zeros((1, 28, 28, 1), "float32"))
    return model


def images(n, seed=0):
    return np.random.default_rng(seed).random((n, 28, 28, 1), "float32")


def expected(model, x):
    return {k: np.asarray(v) for k, v in
            export.serving_function(model)(x).items()}


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
        "print(json.dumps({'out': out, 'one': int(one)}))\n")
    result = subprocess.run([sys.executable, "-c", script],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    want = expected(model, x)
    assert set(loaded["out"]) == {"logits", "probabilities",
                                  "decision_gate", "executed_flops"}
    np.testing.assert_allclose(loaded["out"]["probabilities"],
                               want["probabilities"], atol=1e-5)
    np.testing.assert_array_equal(loaded["out"]["decision_gate"],
                                  want["decision_gate"])
    np.testing.assert_allclose(loaded["out"]["executed_flops"],
                               want["executed_flops"])
    assert loaded["one"] == 1


def test_litert_batch_one_agrees(model, tmp_path):
    path = export.export_litert(model, tmp_path / "m.tflite")
    runner = litert.interpreter(open(path, "rb").read()) \
        .get_signature_runner()
    for seed in range(3):
        x = images(1, seed)
        out = runner(image=x)
        want = expected(model, x)
        np.testing.assert_allclose(out["probabilities"],
                                   want["probabilities"], atol=1e-5)
        np.testing.assert_array_equal(out["decision_gate"],
                                      want["decision_gate"])


def test_litert_batched_agrees(model, tmp_path):
    path = export.export_litert(model, tmp_path / "b.tflite",
                                batch_size=None)
    interpreter = litert.interpreter(open(path, "rb").read(), xnnpack=False)
    runner = interpreter.get_signature_runner()
    x = images(7)
    out = runner(image=x)
    want = expected(model, x)
    np.testing.assert_allclose(out["probabilities"], want["probabilities"],
                               atol=1e-5)
    np.testing.assert_array_equal(out["decision_gate"],
                                  want["decision_gate"])


def test_bad_batch_size_is_refused(model, tmp_path):
    with pytest.raises(ValueError, match="batch_size"):
        export.export_litert(model, tmp_path / "x.tflite", batch_size=0)


@pytest.mark.parametrize("arch", sorted(architectures.ARCHITECTURES))
def test_every_architecture_exports_and_agrees_on_real_images(
        arch, fashion_mnist, tmp_path):
    import tensorflow as tf

    model = architectures.ARCHITECTURES[arch]()
    x = fashion_mnist[2][:6]
    want = expected(model, x)
    signature = tf.saved_model.load(export.export_saved_model(
        model, tmp_path / "sm")).signatures["serving_default"]
    got = signature(image=tf.constant(x))
    for key, value in want.items():
        np.testing.assert_allclose(got[key].numpy(), value, atol=1e-5,
                                   err_msg=f"{arch} saved_model {key}")
    for batch, xnnpack in ((1, True), (None, False)):
        path = export.export_litert(model, tmp_path / f"{batch}.tflite",
                                    batch_size=batch)
        runner = litert.interpreter(open(path, "rb").read(),
                                    xnnpack=xnnpack).get_signature_runner()
        xi = x[:1] if batch == 1 else x
        out = runner(image=xi)
        for key, value in expected(model, xi).items():
            np.testing.assert_allclose(out[key], value, atol=1e-5,
                                       err_msg=f"{arch} litert {batch} {key}")
