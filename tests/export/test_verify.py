"""Loading exported models behind one interface, and verifying agreement."""

import keras
import numpy as np
import pytest

from keras_d2nn import architectures
from keras_d2nn import export
from keras_d2nn.export import runtime
from keras_d2nn.export import verify
from keras_d2nn.testing import assert_exports_agree
from keras_d2nn.testing import shape_images
from keras_d2nn.testing import write_every_export


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    return architectures.cascade(gate_input="logits")


def clear_top1(model, images):
    """Per image: whether Keras's two highest probabilities are further
    apart than `verify`'s tolerance. An untrained model has top-2 gaps
    down to 3e-7 where exports differ by 5e-8: a float export within
    tolerance may rank a near tie the other way, which is no
    disagreement. Elsewhere it must give the same top-1 class."""
    serve = export.serving_function(model)
    probabilities = np.asarray(serve(images)["probabilities"], np.float64)
    top2 = -np.sort(-probabilities, axis=-1)[:, :2]
    return top2[:, 0] - top2[:, 1] > verify.PROBABILITY_TOLERANCE


@pytest.fixture(scope="module")
def test_split(model):
    """64 synthetic images with a clear top-1 class (`clear_top1`), every
    route of the cascade among them, and labels."""
    pool = shape_images(256)
    pool = pool[clear_top1(model, pool)]
    decisions = export.serving_function(model)(pool)
    exits = np.stack(
        [np.asarray(decisions[f"decision_{q}"]) for q in ("exit1", "exit2")],
        axis=-1,
    )
    # Round-robin over the routes (rarest first), so that each is taken.
    routes, inverse = np.unique(exits, axis=0, return_inverse=True)
    order = np.argsort(
        [np.sum(inverse[:i] == inverse[i]) for i in range(len(pool))],
        kind="stable",
    )
    images = pool[order][:64]
    assert len(images) == 64 and len(routes) == 3, routes
    labels = np.random.default_rng(1).integers(0, 10, len(images))
    return images, labels


@pytest.fixture(scope="module")
def exports(model, tmp_path_factory):
    return write_every_export(model, tmp_path_factory.mktemp("exports"))


@pytest.mark.parametrize(
    "name", ["saved_model", "litert", "litert_batched", "onnx"]
)
def test_float_exports_pass_verification(name, model, exports, test_split):
    x, y = test_split
    loaded = runtime.load_exported(exports[name])
    report = verify.verify(model, loaded, x, y)
    assert report["passed"] is True, verify.format_report(report)
    assert report["top1_agreement"] == 1.0
    assert report["decision_agreement"] == {"exit1": 1.0, "exit2": 1.0}
    assert report["max_abs_probability_difference"] <= 1e-4
    assert report["keras"]["accuracy"] == report["exported"]["accuracy"]
    assert report["exported"]["mean_flops"] == pytest.approx(
        report["keras"]["mean_flops"], rel=1e-6
    )
    # The FLOPs the Keras model reports are the ones it executed.
    assert 0 < report["keras"]["mean_flop_fraction"] <= 1
    text = verify.format_report(report)
    assert "PASSED" in text and "decisions of exit2" in text


def test_an_export_of_other_weights_fails_verification(
    model, test_split, tmp_path
):
    keras.utils.set_random_seed(1)
    other = architectures.cascade(
        gate_input="logits"
    )  # same graph, other initial weights
    loaded = runtime.load_exported(
        export.export_onnx(other, tmp_path / "other.onnx")
    )
    report = verify.verify(model, loaded, *test_split)
    assert report["passed"] is False
    assert report["top1_agreement"] < 1.0
    assert "FAILED" in verify.format_report(report)


def test_an_export_of_another_graph_is_named_as_such(
    model, tmp_path, test_split
):
    loaded = runtime.load_exported(
        export.export_onnx(
            architectures.high_low(gate_input="features"), tmp_path / "hl.onnx"
        )
    )
    x, y = test_split
    with pytest.raises(ValueError, match="different model"):
        verify.verify(model, loaded, x[:8], y[:8])


def test_batch_one_model_refuses_other_batches_but_runs_any_number(
    model, exports
):
    loaded = runtime.load_exported(exports["litert"])
    assert (loaded.format, loaded.batch_size) == ("litert", 1)
    x = np.random.default_rng(0).random((5, 28, 28, 1), "float32")
    with pytest.raises(
        ValueError, match="batches of exactly 1; received a batch of 5"
    ):
        loaded(x)
    runs = assert_exports_agree(model, {"litert": loaded}, x)  # `run`
    assert runs["litert"].outputs["probabilities"].shape == (5, 10)


@pytest.mark.parametrize("name", ["saved_model", "litert_batched", "onnx"])
def test_wrong_image_shape_is_refused_before_the_runtime(name, exports):
    loaded = runtime.load_exported(exports[name])
    assert loaded.batch_size is None
    with pytest.raises(
        ValueError,
        match=r"images of shape \(batch,\) \+ "
        r"\(28, 28, 1\); received an array "
        r"of shape \(2, 28, 28\)",
    ):
        loaded(np.zeros((2, 28, 28), "float32"))


def test_unknown_paths_get_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="No exported model"):
        runtime.load_exported(tmp_path / "missing.onnx")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match="a .tflite file or an .onnx file"):
        runtime.load_exported(tmp_path / "notes.txt")


def test_labels_must_match_images(model, exports):
    loaded = runtime.load_exported(exports["onnx"])
    with pytest.raises(ValueError, match="as many labels as examples"):
        verify.verify(model, loaded, np.zeros((3, 28, 28, 1)), [1, 2])
