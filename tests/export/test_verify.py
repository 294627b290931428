"""Loading exported models behind one interface, and verifying agreement."""

import numpy as np
import pytest

from keras_d2nn import architectures
from keras_d2nn import export
from keras_d2nn.export import runtime
from keras_d2nn.export import verify
from keras_d2nn.testing import assert_exports_agree
from keras_d2nn.testing import write_every_export


@pytest.fixture(scope="module")
def model():
    return architectures.cascade()


@pytest.fixture(scope="module")
def exports(model, tmp_path_factory):
    return write_every_export(model, tmp_path_factory.mktemp("exports"))


@pytest.mark.parametrize(
    "name", ["saved_model", "litert", "litert_batched", "onnx"]
)
def test_float_exports_pass_verification_on_real_images(
    name, model, exports, fashion_mnist
):
    x, y = fashion_mnist[2][:64], fashion_mnist[3][:64]
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
    model, fashion_mnist, tmp_path
):
    other = architectures.cascade()  # same graph, other initial weights
    loaded = runtime.load_exported(
        export.export_onnx(other, tmp_path / "other.onnx")
    )
    report = verify.verify(
        model, loaded, fashion_mnist[2][:64], fashion_mnist[3][:64]
    )
    assert report["passed"] is False
    assert report["top1_agreement"] < 1.0
    assert "FAILED" in verify.format_report(report)


def test_an_export_of_another_graph_is_named_as_such(
    model, tmp_path, fashion_mnist
):
    loaded = runtime.load_exported(
        export.export_onnx(architectures.high_low(), tmp_path / "hl.onnx")
    )
    with pytest.raises(ValueError, match="different model"):
        verify.verify(model, loaded, fashion_mnist[2][:8], fashion_mnist[3][:8])


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
    with pytest.raises(ValueError, match="as many labels as images"):
        verify.verify(model, loaded, np.zeros((3, 28, 28, 1)), [1, 2])
