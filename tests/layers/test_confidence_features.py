"""ConfidenceFeatures, and the high-low gate that reads the cheap head."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_d2nn import FullInformation
from keras_d2nn.architectures import cascade
from keras_d2nn.architectures import high_low
from keras_d2nn.layers import ConfidenceFeatures
from keras_d2nn.layers import Controller
from keras_d2nn.testing import LOSS
from keras_d2nn.testing import toy_data


def test_features_are_probabilities_max_margin_and_entropy():
    logits = np.array([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]], np.float32)
    out = ConfidenceFeatures()(logits).numpy()
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    np.testing.assert_allclose(out[:, :3], probs, rtol=1e-6)
    np.testing.assert_allclose(out[:, 3], probs.max(-1), rtol=1e-6)
    np.testing.assert_allclose(
        out[:, 4], [probs[0, 0] - probs[0, 1], 0.0], atol=1e-6
    )
    entropy = -(probs * np.log(probs)).sum(-1)
    np.testing.assert_allclose(out[:, 5], entropy, rtol=1e-5)
    np.testing.assert_allclose(out[1, 5], np.log(3.0), rtol=1e-5)
    stats = ConfidenceFeatures(probabilities=False)(logits)
    np.testing.assert_allclose(stats, out[:, 3:], rtol=1e-6)


def test_gradient_into_the_head_is_stopped_unless_asked():
    logits = tf.Variable([[1.0, 0.0]])
    for stop, has_gradient in ((True, False), (False, True)):
        with tf.GradientTape() as tape:
            total = tf.reduce_sum(
                ConfidenceFeatures(stop_gradient=stop)(logits)[:, 2:]
            )
        gradient = tape.gradient(total, logits)
        assert (
            gradient is not None and np.any(gradient.numpy() != 0)
        ) == has_gradient


def test_config_round_trip_and_shape():
    layer = ConfidenceFeatures(probabilities=False, stop_gradient=False)
    copy = ConfidenceFeatures.from_config(layer.get_config())
    assert (copy.probabilities, copy.stop_gradient) == (False, False)
    assert ConfidenceFeatures().compute_output_shape((None, 10)) == (None, 13)
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(layer)
    )
    assert isinstance(restored, ConfidenceFeatures)


@pytest.mark.parametrize("shape", [(4, 1), (4, 3, 2)])
def test_bad_input_shape_is_refused(shape):
    with pytest.raises(ValueError, match="classes"):
        ConfidenceFeatures()(np.zeros(shape, np.float32))


def small_confidence_high_low():
    low = keras.Sequential(
        [keras.Input((6,)), keras.layers.Dense(8, activation="relu")]
    )
    high = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3)])
    return high_low(
        input_shape=(6,),
        num_classes=3,
        low_network=low,
        high_network=high,
        gate_input="confidence",
        controller=Controller(2, hidden_units=(), seed=0),
        value_range=None,  # toy features, not [0, 1] images
    )


def test_high_low_gate_reads_the_low_head_through_confidence_features(tmp_path):
    model = small_confidence_high_low()
    node = model.plan.nodes["gate_features"]
    assert isinstance(node.layer, ConfidenceFeatures)
    assert tuple(node.inputs) == ("low_head",)
    assert tuple(model.plan.nodes["gate"].inputs) == ("gate_features",)
    assert model.plan.flops["gate_features"] == 7 * 3 + 1
    model.compile(
        "adam",
        LOSS,
        cost_weight=0.1,
        estimator=FullInformation(objective="expected"),
    )
    x, y = toy_data(128)
    model.fit(x, y, epochs=1, batch_size=64, verbose=0)
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5
    )


def test_high_low_gate_reads_confidence_by_default_and_features_on_demand():
    assert "gate_features" in high_low().plan.nodes
    assert "confidence1" in cascade().plan.nodes
    model = high_low(gate_input="features")
    assert "gate_features" not in model.plan.nodes
    assert tuple(model.plan.nodes["gate"].inputs) == ("low",)
    with pytest.raises(ValueError, match="gate_input"):
        high_low(gate_input="logits")


def test_cascade_exits_can_read_confidence_features(tmp_path):
    model = cascade(gate_input="confidence")
    for i in (1, 2):
        node = model.plan.nodes[f"confidence{i}"]
        assert isinstance(node.layer, ConfidenceFeatures)
        assert tuple(node.inputs) == (f"head{i}",)
        assert tuple(model.plan.nodes[f"exit{i}"].inputs) == (f"confidence{i}",)
        assert model.plan.nodes[f"exit{i}"].layer.hidden_units == (64, 64)
    assert tuple(cascade(gate_input="logits").plan.nodes["exit1"].inputs) == (
        "head1",
    )
    with pytest.raises(ValueError, match="Received: gate_input='features'"):
        cascade(gate_input="features")
    model.compile("adam", LOSS, estimator=FullInformation())
    x = np.random.default_rng(0).random((32, 28, 28, 1), dtype=np.float32)
    y = np.arange(32) % 10
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    model.save(tmp_path / "cascade.keras")
    loaded = keras.models.load_model(tmp_path / "cascade.keras")
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5
    )
