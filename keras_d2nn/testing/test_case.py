"""A small shared test case, in the style of keras-rs's `TestCase`."""

import os
import tempfile
import unittest

import keras
import numpy as np


class TestCase(unittest.TestCase):
    """`unittest.TestCase` with D2NN round-trip helpers.

    Example:

    ```python
    import keras_d2nn.testing

    class SavingTest(keras_d2nn.testing.TestCase):
        def test_saving(self):
            self.run_model_saving_test(model, images[:8])

    SavingTest("test_saving").debug()  # or run by pytest or unittest
    ```
    """

    def setUp(self):
        super().setUp()
        keras.utils.set_random_seed(1337)

    def get_temp_dir(self):
        """A temporary directory removed after the test.

        Example:

        ```python
        import keras_d2nn.testing

        test = keras_d2nn.testing.TestCase()
        directory = test.get_temp_dir()
        model.save(f"{directory}/model.keras")
        test.doCleanups()  # as after a test: the directory is gone
        ```
        """
        directory = tempfile.TemporaryDirectory()
        self.addCleanup(directory.cleanup)
        return directory.name

    def assertAllClose(self, actual, expected, atol=1e-6, rtol=1e-6, msg=""):
        """Asserts `actual` and `expected` (arrays, tensors or lists) are
        equal within `atol + rtol * |expected|` element-wise.

        Example:

        ```python
        import keras_d2nn.testing

        test = keras_d2nn.testing.TestCase()
        test.assertAllClose(tf.constant([1.0, 2.0]), [1.0, 2.0 + 1e-7])
        ```
        """
        np.testing.assert_allclose(
            np.asarray(actual),
            np.asarray(expected),
            atol=atol,
            rtol=rtol,
            err_msg=msg,
        )

    def run_serialization_test(self, layer):
        """`from_config(get_config())` gives an equal config.

        Example:

        ```python
        import keras_d2nn.testing

        test = keras_d2nn.testing.TestCase()
        rebuilt = test.run_serialization_test(keras_d2nn.Controller(3))
        rebuilt.num_actions  # 3
        ```
        """
        config = layer.get_config()
        rebuilt = layer.__class__.from_config(config)
        self.assertEqual(rebuilt.get_config(), config)
        return rebuilt

    def run_model_saving_test(self, model, inputs):
        """`.keras` save and load give identical outputs and decisions.

        Example:

        ```python
        import keras_d2nn.testing

        test = keras_d2nn.testing.TestCase()
        loaded = test.run_model_saving_test(model, images[:8])
        ```
        """
        with tempfile.TemporaryDirectory() as directory:
            path = os.path.join(directory, "model.keras")
            model.save(path)
            loaded = keras.models.load_model(path)
        expected, actual = model.trace(inputs), loaded.trace(inputs)
        for name, value in expected.outputs.items():
            self.assertAllClose(actual.outputs[name], value)
        for name, value in expected.decisions.items():
            np.testing.assert_array_equal(actual.decisions[name], value)
        self.assertAllClose(actual.executed_flops, expected.executed_flops)
        return loaded
