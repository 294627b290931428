"""Every export format of a model, written side by side for a test."""

import pathlib

from keras_d2nn.export import serving


def write_every_export(model, directory):
    """Writes `model` in each format a test compares with Keras.

    Returns `{"saved_model", "litert" (batch 1), "litert_batched" (any
    batch), "onnx"}` -> path, for `keras_d2nn.export.load_exported`.

    Example:

    ```python
    paths = write_every_export(model, "/tmp/exports")
    load_exported(paths["litert"]).run(images)
    ```
    """
    directory = pathlib.Path(directory)
    return {
        "saved_model": serving.export_saved_model(model, directory / "sm"),
        "litert": serving.export_litert(model, directory / "one.tflite"),
        "litert_batched": serving.export_litert(
            model, directory / "any.tflite", batch_size=None
        ),
        "onnx": serving.export_onnx(model, directory / "m.onnx"),
    }
