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

    Example:

    ```python
    from keras_d2nn.testing import LOSS, small_high_low, toy_data

    toy = small_high_low()
    toy.compile("adam", LOSS, cost_weight=0.1)
    x, y = toy_data(128)
    toy.fit(x, y, epochs=1, verbose=0)
    ```
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
        gate_input="features",
        # Standard normal features (`toy_data`): no bounded range.
        value_range=None,
    )


def toy_data(n=256, seed=0):
    """`(x, y)`: `n` normal 6-feature examples and their class in 0..2,
    set by the first two features (learnable in a few epochs).

    Example:

    ```python
    from keras_d2nn.testing import toy_data

    x, y = toy_data(128)
    x.shape, np.bincount(y)  # (128, 6), [54, 59, 15]: classes 0, 1, 2
    ```
    """
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype("float32")
    y = (x[:, 0] > 0).astype("int32") + (x[:, 1] > 1).astype("int32")
    return x, y


def routing_data(n=1024, seed=0):
    """`(x, y)`: `n` normal 6-feature examples of a task on which the
    expensive branch pays off for some examples only: class 0 when
    `x[0] < -0.5` (a third of them, easy for the cheap network), else 1
    plus the parity of the signs of `x[1]`, `x[2]`, `x[3]`, which the
    8-unit low network of `small_high_low` learns only in part (about
    0.75 accuracy overall, 0.9 for the high network). On `toy_data` the
    low network alone is right almost always, so routing has little to
    gain there.

    Example:

    ```python
    from keras_d2nn.testing import LOSS, routing_data, small_high_low

    x, y = routing_data(1024)
    toy = small_high_low()
    toy.compile("adam", LOSS, cost_weight=0.1)
    toy.fit(x, y, epochs=1, verbose=0)
    ```
    """
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype("float32")
    parity = (x[:, 1] > 0) ^ (x[:, 2] > 0) ^ (x[:, 3] > 0)
    y = np.where(x[:, 0] < -0.5, 0, 1 + parity.astype("int32"))
    return x, y.astype("int32")
