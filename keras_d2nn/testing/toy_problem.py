"""A toy problem the tests train on in seconds: a small high-low D2NN on
6 features and 3 classes, data it can learn, and its loss."""

import keras
import numpy as np

from keras_d2nn.architectures import high_low
from keras_d2nn.layers import Controller

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def small_high_low():
    """A high-low D2NN on 6 features: a cheap 8-unit low network, a
    64-unit high network and a one-layer controller, seeded.

    Example: `small_high_low().compile("adam", LOSS, cost_weight=0.1)`.
    """
    low = keras.Sequential(
        [keras.Input((6,)), keras.layers.Dense(8, activation="relu")]
    )
    high = keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(3),
        ]
    )
    return high_low(
        input_shape=(6,),
        num_classes=3,
        low_network=low,
        high_network=high,
        controller=Controller(2, hidden_units=(), seed=0),
    )


def toy_data(n=256, seed=0):
    """`(x, y)`: `n` normal 6-feature examples and their class in 0..2,
    set by the first two features (learnable in a few epochs).

    Example: `x, y = toy_data(128)`.
    """
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype("float32")
    y = (x[:, 0] > 0).astype("int32") + (x[:, 1] > 1).astype("int32")
    return x, y
