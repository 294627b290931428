"""Exploration noise that does not depend on how a batch is split.

Controllers sample their actions, and forced random routing samples its
decisions, by the Gumbel-max trick from uniform noise drawn for the whole
batch before any routing: each example's draw depends only on the seed and
on its position in the global batch. So the decision an example gets does
not change when a node runs it in a gathered sub-batch, nor when
`tf.distribute` splits the batch over several replicas (each takes its
rows of one global draw: `replicas.batch_slice`).
"""

import tensorflow as tf

from keras_d2nn.execution import replicas


def uniform_noise(seed, batch_size, width):
    """Uniform noise `(batch_size, width)` in (0, 1): this replica's rows of
    one draw `(global batch, width)` from the stateless `seed`.

    Example:

    ```python
    u = uniform_noise(tf.constant([1, 2]), batch_size=8, width=3)
    ```
    """
    batch_size = tf.cast(batch_size, tf.int32)
    offset, total = replicas.batch_slice(batch_size)
    draw = tf.random.stateless_uniform(
        tf.stack([total, width]),
        tf.cast(seed, tf.int32),
        minval=1e-9,
        maxval=1.0,
    )
    return draw[offset : offset + batch_size]


def gumbel(noise):
    """Standard Gumbel samples from uniform `noise` in (0, 1).

    Example: `g = gumbel(uniform_noise(seed, 8, 3))`.
    """
    return -tf.math.log(-tf.math.log(noise))


def categorical(probs, noise):
    """One action per row of `probs` `(batch, k)`, sampled exactly from it
    (Gumbel-max) with `noise` `(batch, k)`; zero-probability actions are
    never taken. Returns int32 `(batch,)`.

    Example: `actions = categorical([[0.2, 0.8]], [[0.5, 0.5]])`.
    """
    probs = tf.convert_to_tensor(probs)
    noise = tf.cast(noise, probs.dtype)
    return tf.argmax(
        tf.math.log(probs) + gumbel(noise), axis=-1, output_type=tf.int32
    )
