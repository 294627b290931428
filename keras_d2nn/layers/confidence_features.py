"""What a controller reads of a classifier head: its confidence."""

import keras
import tensorflow as tf

from keras_d2nn.api_export import keras_d2nn_export


@keras_d2nn_export
class ConfidenceFeatures(keras.layers.Layer):
    """Maps a head's logits to `[softmax probabilities, max probability,
    margin (top-1 minus top-2 probability), entropy]`.

    Fed to a controller instead of a stage's raw features, it lets the
    controller route on the cheap head's confidence, as a threshold exit
    does, while still able to learn per-class adjustments from the
    probabilities. Raw features let a gate fit class identity instead
    (issue 17).

    Args:
        probabilities: include the softmax probabilities (default True);
            False gives only the 3 statistics.
        stop_gradient: default True: the controller's loss does not flow
            back into the head (the gate reads the head; it should not
            reshape it).

    Input shape: `(batch, classes)` logits, `classes >= 2`. Output shape:
    `(batch, classes + 3)`, or `(batch, 3)` without probabilities.

    Example:

    ```python
    features = keras_d2nn.layers.ConfidenceFeatures()
    features(tf.constant([[2.0, 0.0, 0.0]]))
    # [[0.787, 0.107, 0.107, 0.787, 0.680, 0.666]]: the 3 probabilities,
    # their max, margin and entropy
    ```
    """

    def __init__(self, probabilities=True, stop_gradient=True, **kwargs):
        super().__init__(**kwargs)
        self.probabilities = bool(probabilities)
        self.stop_gradient = bool(stop_gradient)

    def build(self, input_shape):
        classes = input_shape[-1]
        if len(input_shape) != 2 or classes is None or classes < 2:
            raise ValueError(
                "ConfidenceFeatures reads logits of shape (batch, classes) "
                f"with classes >= 2. Received input shape: {input_shape}"
            )
        self.built = True

    def call(self, logits):
        logits = tf.cast(logits, tf.float32)
        if self.stop_gradient:
            logits = tf.stop_gradient(logits)
        probs = tf.nn.softmax(logits, axis=-1)
        top2 = tf.math.top_k(probs, k=2).values
        entropy = -tf.reduce_sum(
            probs * tf.nn.log_softmax(logits, axis=-1), axis=-1, keepdims=True
        )
        stats = [top2[:, :1], top2[:, :1] - top2[:, 1:], entropy]
        parts = ([probs] if self.probabilities else []) + stats
        return tf.concat(parts, axis=-1)

    def compute_output_shape(self, input_shape):
        width = 3 + (input_shape[-1] if self.probabilities else 0)
        return (input_shape[0], width)

    def compute_flops(self, inputs):
        """FLOPs per example: softmax (exp, sum, divide: 3 per class),
        top-2 (one comparison per class), entropy (log, multiply, add: 3
        per class), margin 1.

        Example:

        ```python
        features = keras_d2nn.layers.ConfidenceFeatures()
        features.compute_flops(keras.KerasTensor((None, 10)))  # 71.0
        ```
        """
        classes = inputs.shape[-1]
        return float(7 * classes + 1)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "probabilities": self.probabilities,
                "stop_gradient": self.stop_gradient,
            }
        )
        return config
