"""`model.export(path, format=...)`, the call a Keras user makes first,
writes the routed exports: the decisions, the executed FLOPs and the
request checks, the same outputs as `keras_d2nn.export`'s writers."""

import numpy as np
import pytest

from keras_d2nn import architectures
from keras_d2nn import export
from keras_d2nn.models import exporters


@pytest.fixture(scope="module")
def model():
    model = architectures.high_low(gate_input="features")
    model(np.zeros((1, 28, 28, 1), "float32"))
    return model


def images(n):
    return np.random.default_rng(0).random((n, 28, 28, 1), "float32")


@pytest.mark.parametrize(
    "format, name, batch",
    [
        ("tf_saved_model", "saved_model", 5),
        ("litert", "model.tflite", 1),
        ("onnx", "model.onnx", 5),
    ],
)
def test_model_export_writes_the_routed_model(
    model, tmp_path, format, name, batch
):
    path = model.export(tmp_path / name, format=format)
    outputs = export.load_exported(path)(images(batch))
    expected = export.serving_function(model)(images(batch))
    assert {"decision_gate", "executed_flops", "valid"} <= set(outputs)
    np.testing.assert_array_equal(
        outputs["decision_gate"], expected["decision_gate"]
    )
    np.testing.assert_allclose(outputs["logits"], expected["logits"], atol=1e-4)
    # The request checks are in: NaN pixels are refused (flagged invalid
    # or an error), never answered.
    bad = images(batch)
    bad[0, 0, 0, 0] = np.nan
    try:
        flagged = export.load_exported(path)(bad)
    except ValueError:
        return
    assert not flagged["valid"][0]


def test_model_export_takes_the_exporters_arguments(model, tmp_path):
    path = model.export(
        tmp_path / "any_batch.tflite", format="litert", batch_size=None
    )
    assert export.load_exported(path).batch_size is None


def test_model_export_refuses_what_it_cannot_route(model, tmp_path):
    with pytest.raises(ValueError, match=r"`format` should be one of"):
        model.export(tmp_path / "m", format="openvino")
    with pytest.raises(ValueError, match="graph's input"):
        model.export(tmp_path / "m", input_signature=[None])
    assert exporters.formats() == ("litert", "onnx", "tf_saved_model")
