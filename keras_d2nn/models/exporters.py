"""The exporters `D2NNModel.export` dispatches to, by format.

The export layer sits above the models (it reads a model and writes
files), so it registers its writers here when it is imported (`import
keras_d2nn` imports it), and `D2NNModel.export` looks them up: the
model does not import its exporters.
"""

from collections.abc import Callable
from typing import Any

_EXPORTERS: dict[str, Callable[..., str]] = {}


def register(format: str, exporter: Callable[..., str]) -> None:
    """Makes `exporter(model, path, **kwargs) -> path` the writer of
    `model.export(path, format=format, **kwargs)`.

    Example:

    ```python
    from keras_d2nn.models import exporters

    exporters.formats()  # ("litert", "onnx", "tf_saved_model")
    ```
    """
    _EXPORTERS[format] = exporter


def formats() -> tuple[str, ...]:
    """The registered formats, sorted.

    Example: `keras_d2nn.models.exporters.formats()`.
    """
    return tuple(sorted(_EXPORTERS))


def export(model: Any, path: Any, format: str, **kwargs: Any) -> str:
    """Writes `model` at `path` in `format` with its registered exporter;
    an unknown format is a ValueError naming the known ones.

    Example: `exporters.export(model, "model.tflite", "litert")`.
    """
    if format not in _EXPORTERS:
        raise ValueError(
            f"D2NNModel.export: `format` should be one of {list(formats())} "
            "(the routed exports, with the decisions, executed FLOPs and "
            f"request checks). Received: format={format!r}"
        )
    return _EXPORTERS[format](model, path, **kwargs)
