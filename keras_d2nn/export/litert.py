"""Converting traced functions of Keras models to LiteRT, builtin ops only.

The verified route (docs/architecture.md, "Traps"): write a SavedModel with
`keras.export.ExportArchive` (which saves the variables the function
captures), then
convert it with `tf.lite.TFLiteConverter` restricted to TFLite builtins, so
that a model which would need the Flex delegate fails at conversion rather
than on the phone.
"""

from __future__ import annotations

import os
import pathlib
import re
import tempfile
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from typing import TYPE_CHECKING
from typing import Any

import keras
import tensorflow as tf

if TYPE_CHECKING:
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    from keras_d2nn.models import D2NNModel

ENDPOINT = "serve"


def write_saved_model(
    models: Sequence[keras.Layer],
    fn: Callable[..., Any],
    input_signature: Sequence[tf.TensorSpec],
    path: str | os.PathLike[str],
    functions: Mapping[str, Callable[[], Any]] | None = None,
) -> str:
    """Writes `fn` as the `serve` endpoint of a SavedModel at `path`.

    Args:
        models: the Keras models (or layers) whose variables `fn` uses;
            they must be built.
        fn: a Python function of tensors.
        input_signature: a list of `tf.TensorSpec`, one per argument of `fn`.
        path: output directory.
        functions: optional `{name: function of no argument}` saved as
            further endpoints (signatures), after `fn`, which stays the
            default signature.

    Example:

    ```python
    write_saved_model([model], lambda x: model(x),
                      [tf.TensorSpec([None, 28, 28, 1])], "/tmp/sm")
    ```
    """
    archive = keras.export.ExportArchive()
    for model in models:
        if isinstance(model, keras.layers.Layer) and not model.built:
            raise ValueError(
                f"'{model.name}' is not built; call it on data first."
            )
    # Not `archive.track(model)`: with it, Keras 3.15 stores every weight
    # twice (keras-team/keras#23553), doubling the file and the memory of
    # every server that loads it. The endpoint's traced function captures
    # the variables it uses, which the archive saves once.
    archive.add_endpoint(ENDPOINT, fn, input_signature=input_signature)
    for name, function in (functions or {}).items():
        archive.add_endpoint(name, function, input_signature=[])
    archive.write_out(str(path), verbose=False)
    return str(path)


def convert(
    models: Sequence[keras.Layer],
    fn: Callable[..., Any],
    input_signature: Sequence[tf.TensorSpec],
    optimizations: Sequence[tf.lite.Optimize] | None = None,
    representative_dataset: Callable[[], Iterator[list[np.ndarray]]]
    | None = None,
    supported_types: Sequence[tf.DType] | None = None,
) -> bytes:
    """The LiteRT flatbuffer (bytes) of `fn`, with builtin ops only.

    Args:
        models, fn, input_signature: as for `write_saved_model`.
        optimizations: `tf.lite.Optimize` list (for quantisation).
        representative_dataset: calibration generator for int8.
        supported_types: e.g. `[tf.float16]`.

    Raises:
        ValueError: when the function needs ops outside the builtins,
            with the converter's message (which names the ops).

    Example: `data = convert([m], lambda x: m(x), [tf.TensorSpec([1, 8])])`.
    """
    with tempfile.TemporaryDirectory() as tmp:
        saved = write_saved_model(
            models, fn, input_signature, pathlib.Path(tmp) / "saved_model"
        )
        converter = tf.lite.TFLiteConverter.from_saved_model(saved)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        if optimizations:
            converter.optimizations = list(optimizations)
        if representative_dataset is not None:
            converter.representative_dataset = representative_dataset
        if supported_types:
            converter.target_spec.supported_types = list(supported_types)
        try:
            return converter.convert()
        except Exception as error:  # the converter raises several types
            raise ValueError(
                "LiteRT conversion with builtin ops only failed (an op "
                "would need the Flex delegate, or a layer is not "
                f"convertible): {error}"
            ) from error


def constant_bytes(model_content: bytes) -> dict[str, int]:
    """`{tensor type name: bytes}` of the constant tensors (the weights) in a
    LiteRT flatbuffer, over every subgraph.

    Example: `constant_bytes(content)  # {"INT8": 431564, "FLOAT32": 40}`.
    """
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    names = {
        value: key
        for key, value in vars(schema.TensorType).items()
        if not key.startswith("_")
    }
    model = flatbuffer_utils.read_model_from_bytearray(bytearray(model_content))
    counts: dict[str, int] = {}
    for subgraph in model.subgraphs:
        for tensor in subgraph.tensors:
            data = model.buffers[tensor.buffer].data
            if data is not None and len(data):
                kind = names[tensor.type]
                counts[kind] = counts.get(kind, 0) + len(data)
    return counts


def unsupported_ops(message: str) -> set[str]:
    """The TF op types a converter error `message` names as not builtin.

    Example: `unsupported_ops("TF Select ops: Cholesky, Erf")  # {...}`.
    """
    ops = set(re.findall(r"'tf\.(\w+)' op is neither", message))
    for line in re.findall(r"TF Select ops: ([^\n]*)", message):
        ops.update(op.strip() for op in line.split(",") if op.strip())
    return ops


def _layer_op_types(layer, specs):
    """Op types of one call of `layer` on inputs like `specs`."""
    signature = [
        tf.TensorSpec((1,) + tuple(s.shape[1:]), s.dtype) for s in specs
    ]

    def call(*args):
        return layer(args[0] if len(args) == 1 else list(args), training=False)

    graph = tf.function(call).get_concrete_function(*signature).graph
    return {op.type for op in graph.get_operations()}


def name_unconvertible_layers(model: D2NNModel, message: str) -> str:
    """A one-paragraph error for a failed builtin-only conversion of a D2NN:
    which nodes' layers use which unsupported ops, and what to do.

    Falls back to the converter's first lines where no layer is found.

    Example: `raise ValueError(name_unconvertible_layers(model, str(e)))`.
    """
    ops = unsupported_ops(message)
    culprits = []
    for node in model.plan.order if ops else ():
        specs = [model.plan.specs.get(p) for p in node.inputs]
        if node.layer is None or not specs or None in specs:
            continue
        found = sorted(_layer_op_types(node.layer, specs) & ops)
        if found:
            culprits.append(
                f"node '{node.name}' (layer "
                f"'{node.layer.name}', "
                f"{type(node.layer).__name__}) uses "
                f"{', '.join(found)}"
            )
    head = "\n".join(
        line for line in message.splitlines()[:12] if not line.startswith("  %")
    )
    if not culprits:
        return head
    return (
        "LiteRT conversion with builtin ops only failed: "
        + "; ".join(culprits)
        + ". These TF ops are not TFLite builtins "
        "(they would need the Flex delegate, which phones do not ship). "
        "Replace the layer by one made of builtin ops (see "
        "https://ai.google.dev/edge/litert/models/ops_compatibility), or "
        "export a SavedModel or ONNX instead."
    )


def interpreter(
    model_content: bytes, num_threads: int = 1, xnnpack: bool = True
) -> Interpreter:
    """A LiteRT interpreter for `model_content`, tensors allocated.

    `xnnpack=False` runs the builtin kernels without the default XNNPACK
    delegate. Routed models run under XNNPACK at any batch size (no branch
    is handed a zero-size tensor, `execution/engine.py`), but a batch of
    no example, which XNNPACK cannot prepare, needs the builtin kernels.

    Example: `runner = interpreter(data).get_signature_runner()`.
    """
    from ai_edge_litert import interpreter as litert

    resolver = (
        litert.OpResolverType.AUTO
        if xnnpack
        else litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    )
    result = litert.Interpreter(
        model_content=model_content,
        num_threads=num_threads,
        experimental_op_resolver_type=resolver,
    )
    result.allocate_tensors()
    return result
