"""Controller (Q-node) layers: distributions, decisions, exploration."""

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from keras_d2nn import Controller
from keras_d2nn.testing import TestCase


class ControllerTest(TestCase):
    def test_logits_shape_and_flops(self):
        controller = Controller(3, hidden_units=(8,))
        logits = controller(tf.random.normal([5, 4, 2]))
        self.assertEqual(tuple(logits.shape), (5, 3))
        # Flatten(8) -> Dense(8, relu): 2*8*8 + 8 + 8; Dense(3): 2*8*3 + 3.
        flops = controller.compute_flops(keras.KerasTensor((None, 4, 2)))
        self.assertEqual(flops, 2 * 8 * 8 + 8 + 8 + 2 * 8 * 3 + 3)

    def test_inference_takes_the_argmax(self):
        controller = Controller(3)
        logits = tf.constant([[0.0, 2.0, 1.0], [5.0, 0.0, 0.0]])
        action, log_prob, entropy = controller.decide(logits, training=False)
        np.testing.assert_array_equal(action, [1, 0])
        expected = tf.nn.log_softmax(logits)
        self.assertAllClose(
            log_prob, [expected[0, 1], expected[1, 0]], atol=1e-6
        )
        probs = tf.nn.softmax(logits)
        self.assertAllClose(
            entropy, -tf.reduce_sum(probs * tf.math.log(probs), -1), atol=1e-5
        )

    def test_training_samples_from_the_policy(self):
        controller = Controller(3, seed=1)
        logits = tf.math.log(tf.tile([[0.2, 0.5, 0.3]], [20000, 1]))
        action, _, _ = controller.decide(logits, training=True)
        freq = np.bincount(action.numpy(), minlength=3) / 20000
        self.assertAllClose(freq, [0.2, 0.5, 0.3], atol=0.02)

    def test_epsilon_mixes_in_uniform_exploration(self):
        controller = Controller(2, epsilon=0.5, seed=2)
        # The policy always wants action 0; half of the time we explore.
        logits = tf.tile([[10.0, -10.0]], [20000, 1])
        action, log_prob, _ = controller.decide(logits, training=True)
        self.assertAllClose(np.mean(action.numpy() == 1), 0.25, atol=0.02)
        chosen_one = action.numpy() == 1
        self.assertAllClose(
            np.exp(log_prob.numpy()[chosen_one]), 0.25, atol=1e-4
        )
        # Inference ignores exploration.
        greedy, _, _ = controller.decide(logits, training=False)
        self.assertEqual(int(tf.reduce_max(greedy)), 0)

    def test_temperature_flattens_the_sampling_distribution(self):
        controller = Controller(2, temperature=1e6, seed=3)
        logits = tf.tile([[4.0, 0.0]], [20000, 1])
        action, _, _ = controller.decide(logits, training=True)
        self.assertAllClose(np.mean(action.numpy()), 0.5, atol=0.02)
        controller.temperature.assign(1.0)
        action, _, _ = controller.decide(logits, training=True)
        self.assertAllClose(
            np.mean(action.numpy()), 1 / (1 + np.exp(4.0)), atol=0.01
        )

    def test_bernoulli_gate(self):
        controller = Controller(2, distribution="bernoulli", seed=4)
        logits = controller(tf.random.normal([6, 5]))
        self.assertEqual(tuple(logits.shape), (6, 1))
        dist = controller.distribution_for(logits)
        self.assertIsInstance(dist, tfp.distributions.Bernoulli)
        action, log_prob, _ = controller.decide(logits, training=False)
        np.testing.assert_array_equal(action, (logits[:, 0] > 0).numpy())
        p_open = tf.sigmoid(logits[:, 0])
        expected = np.where(
            action.numpy() == 1, np.log(p_open), np.log(1 - p_open)
        )
        self.assertAllClose(log_prob, expected, atol=1e-5)

    def test_forced_actions_report_their_log_prob(self):
        controller = Controller(3)
        logits = tf.constant([[0.0, 1.0, 2.0]])
        action, log_prob, _ = controller.decide(
            logits, training=True, action=tf.constant([0])
        )
        self.assertEqual(int(action[0]), 0)
        self.assertAllClose(
            log_prob, tf.nn.log_softmax(logits)[:, 0], atol=1e-6
        )

    def test_its_loss_does_not_reach_the_modules_it_reads(self):
        features = tf.random.normal([4, 6])
        for stop, reaches in ((True, False), (False, True)):
            controller = Controller(3, stop_input_gradient=stop)
            with tf.GradientTape() as tape:
                tape.watch(features)
                loss = tf.reduce_sum(tf.square(controller(features)))
            weights_gradient, input_gradient = tape.gradient(
                loss, [controller.trainable_weights[0], features]
            )
            # The controller learns either way.
            assert float(tf.reduce_sum(tf.abs(weights_gradient))) > 0
            assert (input_gradient is not None) == reaches
            restored = Controller.from_config(controller.get_config())
            assert restored.stop_input_gradient == stop

    def test_serialization(self):
        controller = Controller(
            3,
            hidden_units=(4, 4),
            distribution="categorical",
            epsilon=0.1,
            temperature=2.0,
            seed=5,
        )
        rebuilt = self.run_serialization_test(controller)
        self.assertEqual(rebuilt.hidden_units, (4, 4))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_actions": 1}, "num_actions` should be an int >= 2"),
        ({"num_actions": 2.5}, "num_actions` should be an int >= 2"),
        ({"num_actions": 3, "distribution": "bernoulli"}, "two-way gate"),
        (
            {"num_actions": 2, "distribution": "gaussian"},
            "`distribution` should",
        ),
        (
            {"num_actions": 2, "epsilon": 1.5},
            r"`epsilon` should be in \[0, 1\]",
        ),
        ({"num_actions": 2, "temperature": 0}, "`temperature` should be > 0"),
        (
            {
                "num_actions": 2,
                "hidden_units": (4,),
                "network": keras.layers.Dense(2),
            },
            "`hidden_units` .* or a `network`, not both",
        ),
        (
            {"num_actions": 2, "network": lambda x: x},
            "`network` should be a Keras layer",
        ),
    ],
)
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Controller(**kwargs)


def _region_scores(features=12, actions=3):
    """A convolutional controller network: a score per position of a
    one-dimensional feature map, averaged into one logit per action."""
    inputs = keras.Input((features, 2))
    scores = keras.layers.Conv1D(1, 3, padding="same")(inputs)
    pooled = keras.layers.AveragePooling1D(features // actions)(scores)
    return keras.Model(inputs, keras.layers.Flatten()(pooled))


def test_a_controller_network_decides_saves_and_counts_its_flops(tmp_path):
    controller = Controller(3, network=_region_scores(), name="look")
    x = np.random.default_rng(0).normal(size=(4, 12, 2)).astype("float32")
    logits = controller(x)
    assert tuple(logits.shape) == (4, 3)
    assert controller.hidden_units == ()
    # Conv1D(1, 3) on 12 positions of 2 channels, then the pooling.
    flops = controller.compute_flops(keras.KerasTensor((None, 12, 2)))
    assert flops == 12 * (2 * 3 * 2 + 1) + 12
    inputs = keras.Input((12, 2))
    model = keras.Model(inputs, controller(inputs))
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(loaded(x), model(x), atol=1e-6)
    assert loaded.get_layer("look").custom_network


def test_a_controller_network_of_the_wrong_width_is_refused():
    with pytest.raises(ValueError, match=r"logits of shape \(batch, 4\)"):
        Controller(4, network=_region_scores())(np.zeros((1, 12, 2), "f4"))
