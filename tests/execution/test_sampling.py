"""Sampling from uniform noise (Gumbel-max) and the noise itself."""

import numpy as np
import tensorflow as tf

from keras_d2nn.execution import sampling


def test_categorical_samples_the_given_probabilities():
    probs = np.array([0.1, 0.6, 0.0, 0.3], "float32")
    n = 40000
    noise = sampling.uniform_noise(tf.constant([3, 4]), n, len(probs))
    actions = sampling.categorical(np.tile(probs, (n, 1)), noise).numpy()
    frequencies = np.bincount(actions, minlength=len(probs)) / n
    # Four standard deviations of a frequency at n = 40000 is below 0.01.
    np.testing.assert_allclose(frequencies, probs, atol=0.01)
    assert frequencies[2] == 0.0  # never an action of probability 0


def test_noise_depends_on_the_seed_and_position_only():
    seed = tf.constant([7, 9])
    first = sampling.uniform_noise(seed, 8, 3).numpy()
    again = sampling.uniform_noise(seed, 8, 3).numpy()
    other = sampling.uniform_noise(tf.constant([7, 10]), 8, 3).numpy()
    np.testing.assert_array_equal(first, again)
    assert first.shape == (8, 3)
    assert np.all((first > 0) & (first < 1))
    assert not np.allclose(first, other)
