"""Registers public classes for Keras serialisation under one package name."""

import keras

PACKAGE = "keras_d2nn"


def keras_d2nn_export(cls):
    """Class decorator: registers `cls` so `.keras` files can rebuild it.

    Example:

    ```python
    @keras_d2nn_export
    class MyGate(keras.layers.Layer):
        ...
    ```
    """
    return keras.saving.register_keras_serializable(package=PACKAGE)(cls)
