"""Converting traced functions of Keras models to ONNX, conditionals kept.

tf2onnx's own entry point (`tf2onnx.convert.from_function`) freezes the
function with its `tf.cond` branches as separate functions, and loses the
static shapes of the weights that each branch captures: every convolution
inside a branch then converts wrongly and onnxruntime refuses the model.
So this module freezes with control flow lowered to `Switch`/`Merge`
(where every weight is a constant of known shape) and lets tf2onnx's cond
rewriter rebuild one ONNX `If` per `tf.cond`. Gather/scatter routing
becomes `NonZero`, `Gather` and `ScatterND`.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from typing import TYPE_CHECKING

import tensorflow as tf

if TYPE_CHECKING:
    import onnx
    import onnxruntime

OPSET = 18


def _frozen_graph(fn, input_signature):
    from tensorflow.python.framework import convert_to_constants

    concrete = tf.function(
        fn, input_signature=input_signature
    ).get_concrete_function()
    frozen = convert_to_constants.convert_variables_to_constants_v2(
        concrete, lower_control_flow=True
    )
    # tf.nest flattens a dict in sorted key order, as the frozen outputs are.
    names = sorted(concrete.structured_outputs)
    return frozen, names


def _rename(proto, old, new):
    """Renames tensor `old` to `new` everywhere in the graph, initializers
    included (subgraphs capture graph inputs and outputs by name, which the
    rename covers too)."""

    def visit(graph):
        for node in graph.node:
            node.input[:] = [new if i == old else i for i in node.input]
            node.output[:] = [new if o == old else o for o in node.output]
            for attribute in node.attribute:
                if attribute.HasField("g"):
                    visit(attribute.g)
        for value in list(graph.input) + list(graph.output):
            if value.name == old:
                value.name = new
        # An output that does not depend on the inputs (executed FLOPs equal
        # on every route) is folded into an initializer of that name.
        for initializer in graph.initializer:
            if initializer.name == old:
                initializer.name = new

    visit(proto.graph)


def operator_types(proto: onnx.ModelProto) -> set[str]:
    """The set of ONNX operator types in `proto`, subgraphs included.

    Example: `"If" in operator_types(proto)`.
    """
    types: set[str] = set()

    def visit(graph):
        for node in graph.node:
            types.add(node.op_type)
            for attribute in node.attribute:
                if attribute.HasField("g"):
                    visit(attribute.g)

    visit(proto.graph)
    return types


def convert(
    fn: Callable[..., Mapping[str, tf.Tensor]],
    input_signature: Sequence[tf.TensorSpec],
    conditional: bool = True,
    opset: int = OPSET,
) -> onnx.ModelProto:
    """The ONNX `ModelProto` of `fn`, inputs and outputs named as in TF.

    Args:
        fn: a Python function of tensors returning a dict of tensors.
        input_signature: a list of named `tf.TensorSpec`.
        conditional: whether `fn` has conditional execution that the ONNX
            graph should keep; if the conversion leaves no `If`, a
            warning says that the exported model computes every branch.
        opset: the ONNX opset.

    Example:

    ```python
    proto = convert(lambda x: {"y": model(x)},
                    [tf.TensorSpec([None, 8], name="x")])
    ```
    """
    import tf2onnx

    frozen, names = _frozen_graph(fn, input_signature)
    graph_def = frozen.graph.as_graph_def(add_shapes=True)
    inputs = [t.name for t in frozen.inputs]
    outputs = [t.name for t in frozen.outputs]
    try:
        proto, _ = tf2onnx.convert.from_graph_def(
            graph_def, input_names=inputs, output_names=outputs, opset=opset
        )
    except Exception as error:  # tf2onnx raises several types
        raise ValueError(f"ONNX conversion failed: {error}") from error
    for tensor, spec in zip(inputs, input_signature):
        _rename(proto, tensor, spec.name)
    for tensor, name in zip(outputs, names):
        _rename(proto, tensor, name)
    if conditional and "If" not in operator_types(proto):
        warnings.warn(
            "The ONNX conversion kept no conditional (`If`) operator: the "
            "exported model computes every branch and saves no time.",
            stacklevel=2,
        )
    return proto


def session(
    model: bytes | str | os.PathLike[str], num_threads: int = 1
) -> onnxruntime.InferenceSession:
    """An onnxruntime `InferenceSession` for a path or serialized model.

    Example: `session("model.onnx").run(None, {"image": images})`.
    """
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = num_threads
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(
        model if isinstance(model, (bytes, str)) else str(model),
        sess_options=options,
        providers=["CPUExecutionProvider"],
    )
