"""A layer standing for a parent that is not on a static route."""

import keras


@keras.saving.register_keras_serializable(package="keras_d2nn")
class FillLike(keras.layers.Layer):
    """A constant tensor `(batch,) + shape` filled with `value`, batch size
    taken from the input: what a node reads from a parent that is not on
    the route (its edge default, or 0, as in routed execution).

    Example:

    ```python
    fill = keras_d2nn.layers.FillLike((10,), 0.0)
    fill(images).shape  # (64, 10): zeros, one row per image
    ```
    """

    def __init__(self, shape, value=0.0, **kwargs):
        super().__init__(**kwargs)
        self.fill_shape = tuple(int(d) for d in shape)
        self.value = float(value)

    def call(self, reference):
        batch = keras.ops.shape(reference)[0]
        return keras.ops.full(
            (batch,) + self.fill_shape, self.value, dtype=self.compute_dtype
        )

    def compute_output_shape(self, input_shape):
        return (input_shape[0],) + self.fill_shape

    def get_config(self):
        return {
            **super().get_config(),
            "shape": self.fill_shape,
            "value": self.value,
        }
