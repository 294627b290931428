"""Bad input at the Python entry points gets a specific error, early.

Each case names the entry point and the bad input; `docs/bad_inputs.md`
lists every case id with what it gets (checked below), next to the
graph-construction and command-line cases tested elsewhere.
"""

import pathlib

import keras
import numpy as np
import pytest
import tensorflow as tf
from test_model import LOSS
from test_model import small_high_low
from test_model import toy_data

import keras_d2nn
from keras_d2nn import architectures
from keras_d2nn.exported import load_exported

ROOT = pathlib.Path(__file__).parents[1]
SAVED = ROOT / "saved_models" / "fashion_mnist_high_low"
DOC = ROOT / "docs" / "bad_inputs.md"

X, Y = toy_data(n=64)  # 6 features, 3 classes


def compiled(**kwargs):
    model = small_high_low()
    model.compile("adam", LOSS, metrics=["accuracy"], **kwargs)
    return model


def dataset(x, y, batch=16):
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch)


def fit(x, y=None, **kwargs):
    return compiled().fit(x, y, verbose=0, **kwargs)


# id -> (what to run, exception type, message pattern)
CASES = {
    # compile and the cost weight
    "compile: negative cost_weight": (
        lambda: compiled(cost_weight=-1), ValueError,
        r"`cost_weight` should be a finite number >= 0. Received: -1"),
    "compile: NaN cost_weight": (
        lambda: compiled(cost_weight=float("nan")), ValueError,
        r"`cost_weight` should be a finite number >= 0. Received: nan"),
    "cost_weight set to a string": (
        lambda: setattr(compiled(), "cost_weight", "high"), ValueError,
        r"`cost_weight` should be a number >= 0. Received: 'high'"),
    "compile: no loss": (
        lambda: small_high_low().compile("adam"), ValueError,
        r"needs a `loss`"),
    "compile: estimator given by name": (
        lambda: compiled(estimator="reinforce"), TypeError,
        r"`estimator` should be a keras_d2nn estimator"),
    "compile: estimator for an unknown controller": (
        lambda: compiled(estimator={"ghost": keras_d2nn.Reinforce()}),
        ValueError, r"names \['ghost'\], which are not controllers"),
    "compile: unknown task_reward": (
        lambda: compiled(task_reward="accuracy"), ValueError,
        r"`task_reward` should be one of"),
    "compile: reward_bag_size 0": (
        lambda: compiled(reward_bag_size=0), ValueError,
        r"`reward_bag_size` should be an int >= 1"),
    # inputs of fit / evaluate / predict / call
    "fit: input of the wrong rank": (
        lambda: fit(X[:, :, None], Y), ValueError,
        r"Input 'image' should have shape \(None, 6\) \(batch first\); "
        r"received shape \(64, 6, 1\)"),
    "fit: input of the wrong size": (
        lambda: fit(np.zeros((64, 5), "float32"), Y), ValueError,
        r"should have shape \(None, 6\) .*received shape \(64, 5\)"),
    "fit: strings as input": (
        lambda: fit(np.full((64, 6), "a"), Y), ValueError,
        r"Input 'image' should hold numbers \(float32\); received dtype"),
    "fit: wrong size after a first fit": (
        lambda: (lambda m: (m.fit(X, Y, verbose=0),
                            m.fit(np.zeros((8, 5), "float32"), Y[:8],
                                  verbose=0)))(compiled()),
        ValueError, r"received shape \(8, 5\)"),
    "fit: dict input with a wrong name": (
        lambda: fit({"pixels": X}, Y), ValueError,
        r"expects inputs named \['image'\]; received a dict with keys "
        r"\['pixels'\]"),
    "fit: dataset of the wrong shape": (
        lambda: fit(dataset(X[:, :5], Y)), ValueError,
        r"received shape \(None, 5\)"),
    "predict: input of the wrong size": (
        lambda: compiled().predict(np.zeros((4, 7), "float32"), verbose=0),
        ValueError, r"received shape \(4, 7\)"),
    "call: input of the wrong size": (
        lambda: small_high_low()(np.zeros((4, 7), "float32")), ValueError,
        r"received shape \(4, 7\)"),
    # labels
    "fit: label equal to the number of classes": (
        lambda: fit(X, np.full(64, 3)), ValueError,
        r"labels should be class indices, whole numbers in \[0, 3\) for "
        r"the 3 outputs; 64 of 64 are not, e.g. \[3\]"),
    "fit: negative label": (
        lambda: fit(X, np.where(np.arange(64) == 5, -1, Y)), ValueError,
        r"1 of 64 are not, e.g. \[-1\]"),
    "fit: fractional label": (
        lambda: fit(X, Y + 0.5), ValueError, r"e.g. \[0.5"),
    "fit: NaN label": (
        lambda: fit(X, np.where(np.arange(64) == 0, np.nan, Y)), ValueError,
        r"1 of 64 are not, e.g. \[nan\]"),
    "fit: one-hot labels with a sparse loss": (
        lambda: fit(X, np.eye(3)[Y]), ValueError,
        r"a sparse categorical loss takes class indices, shape \(n,\); "
        r"received labels of shape \(64, 3\). For one-hot labels use "
        r"keras.losses.CategoricalCrossentropy"),
    "fit: string labels": (
        lambda: fit(X, np.array(["cat"] * 64)), ValueError,
        r"labels should be numbers"),
    "fit: out-of-range labels in a dataset": (
        lambda: fit(dataset(X, np.full(64, 3))), ValueError,
        r"fit: a batch held labels that are not class indices: labels "
        r"should be whole numbers in \[0, 3\)"),
    "fit: out-of-range labels from a generator": (
        lambda: fit((X[i:i + 16], np.full(16, 7)) for i in range(0, 64, 16)),
        ValueError, r"a batch held labels that are not class indices"),
    "fit: one-hot labels in a dataset": (
        lambda: fit(dataset(X, np.eye(3)[Y])), ValueError,
        r"the dataset yields labels of shape \(None, 3\)"),
    "fit: out-of-range validation labels": (
        lambda: fit(X, Y, validation_data=(X, np.full(64, 9))), ValueError,
        r"validation_data: labels should be class indices"),
    "evaluate: out-of-range labels": (
        lambda: compiled().evaluate(X, np.full(64, 3), verbose=0),
        ValueError, r"evaluate: labels should be class indices"),
    "fit: one-hot labels of the wrong width (categorical loss)": (
        lambda: (lambda m: (m.compile(
            "adam", keras.losses.CategoricalCrossentropy(from_logits=True)),
            m.fit(X, np.eye(4)[Y], verbose=0)))(small_high_low()),
        ValueError, r"labels should have shape \(n, 3\)"),
    "fit: fewer labels than examples": (
        lambda: fit(X, Y[:10]), ValueError, r"Data cardinality is ambiguous"),
    # no data
    "fit: empty arrays": (
        lambda: fit(X[:0], Y[:0]), ValueError,
        r"fit: input 'image' holds no examples \(shape \(0, 6\)\)"),
    "fit: empty dataset": (
        lambda: fit(dataset(X[:0], Y[:0])), ValueError,
        r"fit: the dataset is empty"),
    "fit: dataset that turns out empty": (
        lambda: fit(tf.data.Dataset.from_tensor_slices((X, Y)).filter(
            lambda a, b: b > 5).batch(16)), ValueError,
        r"fit: the data yielded no batch, so nothing was trained"),
    "predict: empty array": (
        lambda: compiled().predict(X[:0], verbose=0), ValueError,
        r"predict: input 'image' holds no examples"),
    "route: empty array": (
        lambda: small_high_low().route(X[:0]), ValueError,
        r"`data` is empty: no example to route"),
    # builders
    "builder: vector input_shape for convolutional defaults": (
        lambda: architectures.high_low(input_shape=(28,)), ValueError,
        r"high_low: `input_shape` should be an image shape \(height, width, "
        r"channels\)"),
    "builder: one class": (
        lambda: architectures.cascade(num_classes=1), ValueError,
        r"cascade: `num_classes` should be an int >= 2. Received: "
        r"num_classes=1"),
    "builder: input_shape of strings": (
        lambda: architectures.chain(input_shape=("a", 28, 1)), ValueError,
        r"chain: `input_shape` should be an image shape"),
    # exported models (the saved_models/ exports of Fashion-MNIST)
    "exported: truncated .tflite": (
        lambda: load_exported(truncated("model.tflite")), ValueError,
        r"is not a readable LiteRT export \(truncated, corrupt"),
    "exported: truncated .onnx": (
        lambda: load_exported(truncated("model.onnx")), ValueError,
        r"is not a readable ONNX export \(truncated, corrupt"),
    "exported: SavedModel directory without a graph": (
        lambda: load_exported(empty_saved_model()), ValueError,
        r"is not a readable SavedModel export"),
    "exported: images of the wrong shape": (
        lambda: load_exported(SAVED / "model.tflite").run(
            np.zeros((2, 28, 28), "float32")), ValueError,
        r"takes images of shape \(batch,\) \+ \(28, 28, 1\); received an "
        r"array of shape \(2, 28, 28\)"),
    "exported: strings as images": (
        lambda: load_exported(SAVED / "model.onnx").run(
            np.full((1, 28, 28, 1), "x")), ValueError,
        r"takes numbers \(float32 images\); received an array of dtype"),
    "exported: no image": (
        lambda: load_exported(SAVED / "saved_model" / "1").run(
            np.zeros((0, 28, 28, 1), "float32")), ValueError,
        r"received no image"),
    "exported: batch-1 model fed a batch of 5": (
        lambda: load_exported(SAVED / "model.tflite")(
            np.zeros((5, 28, 28, 1), "float32")), ValueError,
        r"made for batches of exactly 1; received a batch of 5"),
}


@pytest.fixture(autouse=True)
def _scratch(tmp_path, monkeypatch):
    monkeypatch.setitem(SCRATCH, "dir", tmp_path)


SCRATCH = {}


def truncated(name):
    path = SCRATCH["dir"] / f"truncated_{name}"
    path.write_bytes((SAVED / name).read_bytes()[:3000])
    return path


def empty_saved_model():
    path = SCRATCH["dir"] / "empty_saved_model"
    path.mkdir()
    (path / "saved_model.pb").write_bytes(b"")
    return path


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_gets_a_specific_error(case):
    run, error, pattern = CASES[case]
    with pytest.raises(error, match=pattern):
        run()


def test_nan_and_inf_inputs_keep_decisions_valid():
    model = compiled(cost_weight=0.1)
    bad = X.copy()
    bad[:8] = np.nan
    bad[8:16] = np.inf
    # Training on them does not crash; the loss is NaN, as in Keras.
    history = model.fit(bad, Y, epochs=1, batch_size=64, verbose=0)
    assert np.isnan(history.history["loss"][0])
    routes = model.route(bad)
    gate = routes["decisions"]["gate"]
    assert set(np.unique(gate)) <= {0, 1}
    assert np.all(np.isfinite(routes["executed_flops"]))
    assert np.all(routes["executed_flops"] > 0)
    # The exported models decide too (a valid action, finite FLOPs).
    images = np.full((2, 28, 28, 1), np.nan, "float32")
    images[1] = np.inf
    for name in ("model.tflite", "model.onnx", "saved_model/1"):
        out = load_exported(SAVED / name).run(images)
        assert set(out["decision_gate"]) <= {0, 1}, name
        assert np.all(np.isfinite(out["executed_flops"])), name


def test_every_case_is_in_the_docs_table():
    doc = DOC.read_text()
    missing = [case for case in CASES if f"| {case} |" not in doc]
    assert missing == []
