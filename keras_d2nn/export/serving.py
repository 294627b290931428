"""Exporting a trained D2NN for serving, with routed execution inside.

- `export_saved_model`: a SavedModel for TF Serving (tag `serve`,
  signature `serving_default`) taking a batch of any size;
- `export_litert`: a `.tflite` file with builtin ops only, batch 1 by
  default (`tf.cond` per conditional node) or batched (gather/scatter),
  in float32, float16 or int8 (post-training quantisation);
- `export_onnx`: an `.onnx` file for onnxruntime, each `tf.cond` kept as
  an ONNX `If` and the batched routing as `NonZero`/`Gather`/`ScatterND`.

All three export the serving function of `serving_function`: the model's
outputs (and their softmax as `probabilities`), the decision of every
controller (`decision_<controller>`, -1 where it did not decide), the
executed FLOPs per example and `valid` (whether the example was finite).
Controllers take their argmax: no sampling and no TFP ops on the exported
path.

The exported input has the dtype the graph declares for its input node
(`graph.input(name, shape, dtype="int32")` for token ids, say): a float
input refuses integers (not scaled as in training), an integer or bool
input takes its own dtype, and its examples are never flagged as
non-finite (integers cannot be NaN or Inf).

Bad requests (docs/serving_bad_requests.md). The SavedModel's signature
takes a tensor of any shape and checks it inside the graph before any
kernel runs (a wrong rank reaching a oneDNN convolution aborts the
server: docs/architecture.md, "Traps"), and refuses images holding NaN
or Inf with an InvalidArgument error naming how many and which. LiteRT and ONNX
have no assertion ops: their runtimes check the input's shape and dtype
against the model's static signature, and an image holding NaN or Inf
comes back with `valid` False, NaN `logits`/`probabilities` and decisions
-1 (it is zeroed before the model runs, so the other images' routing is
unaffected).
"""

from __future__ import annotations

import os
import pathlib
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING
from typing import Any

import numpy as np
import tensorflow as tf

from keras_d2nn import storage
from keras_d2nn.execution import indexed_crop
from keras_d2nn.export import litert
from keras_d2nn.export import onnx
from keras_d2nn.models import input_checks
from keras_d2nn.models import non_finite
from keras_d2nn.models import value_range

if TYPE_CHECKING:
    from keras_d2nn.models import D2NNModel

QUANTIZATIONS = (None, "float16", "int8")
# The SavedModel's second signature: the expected input shape.
SERVING_INPUT_SHAPE = "serving_input_shape"


def _check_model(model):
    if not hasattr(model, "plan") or not hasattr(model, "trace"):
        raise TypeError(
            "Export takes a keras_d2nn.D2NNModel (for a plain Keras model "
            "use keras.export or model.export). Received: "
            f"{type(model).__name__}"
        )


def _single_input(model):
    _check_model(model)
    inputs = [n for n in model.plan.order if n.kind == "input"]
    if len(inputs) != 1:
        raise ValueError(
            "Export supports models with one input; this one has "
            f"{[n.name for n in inputs]}."
        )
    return inputs[0]


def input_signature(
    model: D2NNModel, batch_size: int | None = None
) -> list[tf.TensorSpec]:
    """`[tf.TensorSpec]` of the exported function (named after the input).

    Example: `input_signature(model, 1)  # [TensorSpec((1, 28, 28, 1))]`.
    """
    node = _single_input(model)
    if batch_size is not None and (
        not isinstance(batch_size, (int, np.integer)) or batch_size < 1
    ):
        raise ValueError(
            f"`batch_size` should be None (any) or an int >= 1. Received: "
            f"{batch_size!r}"
        )
    if node.shape is None or None in node.shape:
        # D2NNModel refuses such graphs (FLOPs need static shapes); a model
        # restored from an edited config could still carry one.
        raise ValueError(
            f"Input '{node.name}' has shape {node.shape}: export needs "
            "every dimension but the batch known (the exported function "
            "is traced once for that shape). Declare it in the graph, "
            "e.g. graph.input(name, shape=(28, 28, 1))."
        )
    return [
        tf.TensorSpec(
            [batch_size] + list(node.shape), node.dtype, name=node.name
        )
    ]


def _integer_flops(model, trace):
    """`trace.executed_flops`, summed in int64 then cast to float32.

    Float16 quantisation stores float constants in float16, whose largest
    value is 65504: a node's FLOP count (millions) would overflow. Integer
    constants are left alone by every quantisation mode.
    """
    total = None
    for name, mask in trace.executed.items():
        flops = int(round(model.plan.flops.get(name, 0)))
        if flops:
            term = tf.where(
                mask, tf.constant(flops, tf.int64), tf.constant(0, tf.int64)
            )
            total = term if total is None else total + term
    if total is None:
        return tf.zeros_like(trace.executed_flops)
    return tf.cast(total, tf.float32)


# What `on_invalid` may be: refuse in the graph, or flag in an output.
ON_INVALID = ("raise", "flag")
# Indices named in the non-finite error, at most.
_NAMED_INDICES = 20


def _shape_text(shape):
    """`"(2, 28, 28)"` for an int tensor `shape` (a string tensor)."""
    items = tf.strings.reduce_join(tf.strings.as_string(shape), separator=", ")
    comma = tf.where(tf.equal(tf.size(shape), 1), ",", "")
    return tf.strings.join(["(", items, comma, ")"])


def _dtype_text(node):
    """`"float32, scaled as in training"`, or `"int32"` for an input that
    is not float (token ids, say, which no scaling applies to)."""
    dtype = tf.as_dtype(node.dtype)
    if dtype.is_floating:
        return f"{dtype.name}, scaled as in training"
    return dtype.name


def _checked_shape(inputs, node, batch_size):
    """`inputs` (of any shape) after an in-graph check of its rank and
    every non-batch dimension, with the static shape the model needs.

    The check is an assertion every later op depends on: nothing reaches
    a kernel before it passed. The exported signature must take a tensor
    of unknown shape, or grappler folds the check away (it knows the
    static shape) and a wrong rank reaches a oneDNN convolution, which
    aborts the process.
    """
    expected = [batch_size] + [int(d) for d in node.shape]
    shown = ", ".join(
        ["batch" if batch_size is None else str(batch_size)]
        + [str(d) for d in node.shape]
    )
    shape = tf.shape(inputs, out_type=tf.int64)
    rank_ok = tf.equal(tf.size(shape), len(expected))
    # Padded so that the slice exists whatever the rank received.
    padded = tf.concat([shape, tf.zeros([len(expected)], tf.int64)], 0)
    start = 0 if batch_size is not None else 1
    want = tf.constant([d for d in expected[start:]], tf.int64)
    dims_ok = tf.reduce_all(tf.equal(padded[start : len(expected)], want))
    check = tf.debugging.Assert(
        tf.logical_and(rank_ok, dims_ok),
        [
            tf.strings.join(
                [
                    # Backquotes: the assertion would print quotes escaped.
                    f"input `{node.name}` should have shape ({shown}) "
                    f"({_dtype_text(node)}); received shape ",
                    _shape_text(shape),
                ]
            )
        ],
    )
    with tf.control_dependencies([check]):
        inputs = tf.identity(inputs)
    # Not `tf.ensure_shape`: with a fully known shape (a fixed batch size)
    # TF runs it before the assertion, with its own, vaguer, message.
    return tf.reshape(inputs, [-1 if d is None else d for d in expected])


def _finite_rows(inputs, bitwise):
    """`(batch,)` bool: whether each example holds only finite numbers.

    `bitwise` reads the exponent bits of the float32 values with int32
    ops, which int8 quantisation leaves alone (a float check would be
    quantised, and a quantised NaN is an ordinary int8 value). tf2onnx
    has no Bitcast: ONNX uses `is_finite`. Integers and bools cannot be
    NaN or Inf: all True.
    """
    size = inputs.shape[1:].num_elements()
    # [-1, values per example]: on LiteRT, whose signature runner resizes
    # the input to whatever it is fed, a request of another size per
    # example then fails here (RESHAPE failed to prepare) instead of
    # being run on misread values.
    flat_shape = [tf.shape(inputs)[0], -1] if size is None else [-1, size]
    if not inputs.dtype.is_floating:
        # From the reshaped input, so that the reshape (and its check of
        # the size per example) stays in the graph.
        rows = tf.shape(tf.reshape(inputs, flat_shape))[:1]
        return tf.fill(rows, True)
    if not bitwise:
        flat = tf.reshape(inputs, flat_shape)
        return tf.reduce_all(tf.math.is_finite(flat), axis=1)
    # Bitcast first, the input itself: int8 quantisation would quantise
    # a Reshape (or any op with an int8 kernel) of the float input.
    bits = tf.reshape(
        tf.bitcast(tf.cast(inputs, tf.float32), tf.int32), flat_shape
    )
    # Arithmetic shift: the exponent with the sign bit above it, so an
    # exponent of all ones (NaN or Inf) is 255, or -1 when negative.
    exponent = tf.bitwise.right_shift(bits, 23)
    bad = tf.logical_or(tf.equal(exponent, 255), tf.equal(exponent, -1))
    return tf.logical_not(tf.reduce_any(bad, axis=1))


def _refuse(inputs, ok, node, problem, remedy):
    """`inputs`, after an in-graph assertion that every example is `ok`,
    whose error names how many are not (they hold `problem`), their
    indices and the `remedy`."""
    bad = tf.reshape(tf.where(tf.logical_not(ok)), [-1])
    count = tf.size(bad)
    named = tf.strings.reduce_join(
        tf.strings.as_string(bad[:_NAMED_INDICES]), separator=", "
    )
    more = tf.where(count > _NAMED_INDICES, ", ...", "")
    check = tf.debugging.Assert(
        tf.reduce_all(ok),
        [
            tf.strings.join(
                [
                    f"input `{node.name}`: ",
                    tf.strings.as_string(count),
                    " of ",
                    tf.strings.as_string(tf.size(ok)),
                    f" examples hold {problem} (at indices [",
                    named,
                    more,
                    f"]); {remedy}",
                ]
            )
        ],
    )
    with tf.control_dependencies([check]):
        return tf.identity(inputs)


def _refuse_out_of_range(inputs, node):
    """`inputs`, after an in-graph assertion that every example lies in
    the input's declared value range."""
    low, high = node.value_range
    inside = value_range.in_range_rows(inputs, node.value_range)
    return _refuse(
        inputs,
        inside,
        node,
        f"values outside [{low:g}, {high:g}], its declared value_range",
        "scale them as the training data was",
    )


def _nan_where(value, valid, bitwise):
    """`value` (batch first, float) with NaN in the rows where `valid` is
    False. `bitwise` sets the NaN through int32 bits, which int8
    quantisation cannot turn into a finite number."""
    mask = tf.reshape(valid, [-1] + [1] * (value.shape.rank - 1))
    if not bitwise:
        return tf.where(mask, value, tf.constant(float("nan"), value.dtype))
    bits = tf.bitcast(tf.cast(value, tf.float32), tf.int32)
    bits = tf.where(mask, bits, tf.constant(0x7FC00000, tf.int32))  # NaN
    return tf.cast(tf.bitcast(bits, tf.float32), value.dtype)


def serving_function(
    model: D2NNModel,
    on_invalid: str = "flag",
    bitwise: bool = False,
    batch_size: int | None = None,
) -> Callable[[tf.Tensor], dict[str, tf.Tensor]]:
    """The exported function: a batch of inputs -> a dict of outputs.

    Keys: `logits` and `probabilities` (softmax of the model's output;
    one output only) or the output names, `decision_<controller>` (int32,
    -1 where that controller did not run), `executed_flops` (float32) and
    `valid` (bool: the example held only finite numbers).

    Args:
        on_invalid: what an example holding NaN or Inf gets.
            `"flag"` (LiteRT, ONNX; the default): it is zeroed before the
            model runs (so no NaN reaches a kernel and the other examples'
            routing is unaffected) and comes back with `valid` False, NaN
            logits and probabilities and decisions -1 (`executed_flops`
            stays what ran for the zeroed example).
            `"raise"` (SavedModel): the function also takes a tensor of
            any shape, checks its rank and dimensions in the graph, and
            raises InvalidArgumentError for a wrong shape or a non-finite
            example, naming the expected shape, or how many examples are
            not finite and their indices. `valid` is then always True.
        bitwise: check finiteness and write NaN through the float bits
            (int32 ops), which int8 quantisation leaves alone (LiteRT).
        batch_size: with `"raise"`, the batch size the check demands
            (None: any).

    Example:

    ```python
    serve = keras_d2nn.export.serving_function(model)
    outputs = serve(tf.constant(images))
    sorted(outputs)  # ["decision_gate", "executed_flops", "logits",
                     #  "probabilities", "valid"]
    ```
    """
    node = _single_input(model)
    if on_invalid not in ON_INVALID:
        raise ValueError(
            f"`on_invalid` should be one of {ON_INVALID}. "
            f"Received: on_invalid={on_invalid!r}"
        )

    def serve(inputs: tf.Tensor) -> dict[str, tf.Tensor]:
        inputs = tf.convert_to_tensor(inputs)
        # Against the input node's own dtype (the exported signature's):
        # a graph of token ids declares an integer input.
        input_checks.check_dtype(node, inputs.dtype)
        floating = inputs.dtype.is_floating
        if on_invalid == "raise":
            inputs = _checked_shape(inputs, node, batch_size)
            valid = _finite_rows(inputs, bitwise)
            if floating:
                inputs = _refuse(
                    inputs,
                    valid,
                    node,
                    "NaN or Inf values",
                    "examples should hold finite numbers",
                )
            if node.value_range is not None:
                inputs = _refuse_out_of_range(inputs, node)
        else:
            # The static shape (all of it, eagerly): as the model checks.
            input_checks.check_input(node, inputs.shape, inputs.dtype)
            valid = _finite_rows(inputs, bitwise)
            if node.value_range is not None:
                valid = tf.logical_and(
                    valid,
                    value_range.in_range_rows(
                        inputs, node.value_range, bitwise
                    ),
                )
            if floating or node.value_range is not None:
                mask = tf.reshape(valid, [-1] + [1] * (inputs.shape.rank - 1))
                inputs = tf.where(mask, inputs, tf.zeros_like(inputs))
        # Checked (and flagged) above: no Assert op for LiteRT and ONNX.
        with non_finite.unchecked():
            trace = model.trace(inputs, training=False, statistics=False)
        results: dict[str, tf.Tensor] = {}
        if len(trace.outputs) == 1:
            logits = next(iter(trace.outputs.values()))
            results["logits"] = logits
            results["probabilities"] = tf.nn.softmax(logits, axis=-1)
        else:
            results.update(trace.outputs)
        if on_invalid == "flag":
            results = {
                k: _nan_where(v, valid, bitwise) if v.dtype.is_floating else v
                for k, v in results.items()
            }
        for q, decision in trace.decisions.items():
            if on_invalid == "flag":
                decision = tf.where(
                    valid, decision, tf.constant(-1, decision.dtype)
                )
            results[f"decision_{q}"] = decision
        results["executed_flops"] = _integer_flops(model, trace)
        results["valid"] = valid
        return results

    return serve


def saved_model_signature(
    model: D2NNModel, batch_size: int | None = None
) -> list[tf.TensorSpec]:
    """`[tf.TensorSpec]` of the SavedModel's signature: dtype and name
    of the input, shape unknown (checked inside the graph; see
    `serving_function`). `input_signature` gives the shape itself.

    Example: `saved_model_signature(model)  # [TensorSpec(None, ...)]`.
    """
    (spec,) = input_signature(model, batch_size)
    return [tf.TensorSpec(None, spec.dtype, name=spec.name)]


def export_saved_model(
    model: D2NNModel,
    path: str | os.PathLike[str],
    batch_size: int | None = None,
) -> str:
    """Writes a SavedModel for TF Serving at `path` and returns the path.

    The signature `serving_default` takes the model's input (any batch
    size unless `batch_size` is given) and returns the dict of
    `serving_function` with `on_invalid="raise"`: its input is declared
    with an unknown shape and checked inside the graph, so a request of
    the wrong shape or holding NaN/Inf gets an InvalidArgument error
    naming what was expected. A second signature, `serving_input_shape`,
    takes nothing and returns the expected shape (`shape`, int64, -1 for
    any batch size). The SavedModel loads without `keras_d2nn`.

    Example:

    ```python
    keras_d2nn.export.export_saved_model(model, "exported/1")
    # saved_model_cli show --dir exported/1 --all
    ```
    """
    (spec,) = input_signature(model, batch_size)  # checks model, batch size
    shape = [-1 if d is None else int(d) for d in spec.shape]

    def expected_shape() -> dict[str, tf.Tensor]:
        return {"shape": tf.constant(shape, tf.int64)}

    path = check_replaceable(path, "saved_model")
    with storage.atomic_output(path) as temporary:
        litert.write_saved_model(
            [model],
            serving_function(model, "raise", batch_size=batch_size),
            saved_model_signature(model, batch_size),
            temporary,
            functions={SERVING_INPUT_SHAPE: expected_shape},
        )
    return str(path)


def check_replaceable(path, fmt):
    """`path` as a `pathlib.Path`, or a ValueError when an export there
    would replace something that is not an export of `fmt`: exports are
    written whole and then moved onto `path`, replacing what was there.

    Example: `check_replaceable("exported/1", "saved_model")`.
    """
    path = pathlib.Path(path)
    if not path.exists():
        return path
    if fmt == "saved_model":
        if path.is_dir() and (
            (path / "saved_model.pb").exists() or not any(path.iterdir())
        ):
            return path
        expected = "a SavedModel folder (or an empty one)"
    else:
        suffix = {"litert": ".tflite", "onnx": ".onnx"}[fmt]
        # `--output=model.keras` must not overwrite the trained model.
        if path.is_file() and path.suffix == suffix:
            return path
        expected = f"a {suffix} file"
    raise ValueError(
        f"export path {str(path)!r} holds something else than the previous "
        f"export it would replace ({expected}); choose a new path or "
        "remove it."
    )


def _representative(images, batch_size, dtype=tf.float32):
    """The int8 calibration generator: one example (or a batch of the
    model's fixed size) at a time, in the input's `dtype`, as the
    converter expects."""
    images = np.asarray(images, tf.as_dtype(dtype).as_numpy_dtype)
    step = batch_size or 1

    def generate():
        for start in range(0, len(images) - step + 1, step):
            yield [images[start : start + step]]

    return generate


def export_litert(
    model: D2NNModel,
    path: str | os.PathLike[str],
    batch_size: int | None = 1,
    quantization: str | None = None,
    representative_images: np.ndarray | None = None,
) -> str:
    """Writes a LiteRT (`.tflite`) model with builtin ops only.

    Args:
        batch_size: 1 (default): one `tf.cond` per conditional node, so
            only the chosen branch runs. `None`: any batch size,
            gather/scatter routing. Both run under the default
            interpreter settings (XNNPACK); a batch of no image needs the
            builtin kernels (`litert.interpreter(..., xnnpack=False)`).
        quantization: None (float32), `"float16"` (weights stored in
            float16, half the file) or `"int8"` (weights and activations
            in int8 where the kernels allow; inputs in the dtype the
            graph declares, float outputs).
        representative_images: for `"int8"`, a few hundred real inputs
            (of the input's dtype) to calibrate the activation ranges on
            (e.g.
            `keras_d2nn.data.load_arrays("fashion_mnist", "train",
            take=500)[0]`).

    Returns:
        The path written.

    Raises:
        ValueError: naming the op or layer that would need the Flex
            delegate, or a bad `quantization`.

    Example:

    ```python
    # slow
    keras_d2nn.export.export_litert(model, "model.tflite")  # batches of 1
    keras_d2nn.export.export_litert(
        model, "model_int8.tflite", quantization="int8",
        representative_images=images)
    exported = keras_d2nn.export.load_exported("model.tflite")
    exported.run(images[:4])["decision_gate"]
    ```
    """
    if quantization not in QUANTIZATIONS:
        raise ValueError(
            f"`quantization` should be one of {QUANTIZATIONS}. Received: "
            f"{quantization!r}"
        )
    signature = input_signature(model, batch_size)
    check_replaceable(path, "litert")  # before the conversion's work
    options: dict[str, Any] = {}
    if quantization is not None:
        options["optimizations"] = [tf.lite.Optimize.DEFAULT]
    if quantization == "float16":
        options["supported_types"] = [tf.float16]
    if quantization == "int8":
        if representative_images is None or len(representative_images) < 1:
            raise ValueError(
                "int8 quantisation needs `representative_images`: real "
                "inputs to calibrate activation ranges on (a few hundred "
                "training images)."
            )
        expected = tuple(signature[0].shape[1:])
        if (
            not signature[0].dtype.is_floating
            and np.asarray(representative_images).dtype.kind == "f"
        ):
            raise ValueError(
                f"`representative_images` should hold "
                f"{signature[0].dtype.name} values, as the model's input "
                f"'{signature[0].name}' is declared; received dtype "
                f"{np.asarray(representative_images).dtype}, which "
                "converting would truncate."
            )
        if tuple(np.shape(representative_images)[1:]) != expected:
            raise ValueError(
                "`representative_images` should have shape (n,) + "
                f"{expected}. Received: representative_images of shape "
                f"{np.shape(representative_images)}"
            )
        options["representative_dataset"] = _representative(
            representative_images, batch_size, signature[0].dtype
        )
    try:
        content = litert.convert(
            [model],
            serving_function(model, "flag", bitwise=True),
            signature,
            **options,
        )
    except ValueError as error:
        raise ValueError(
            litert.name_unconvertible_layers(model, str(error))
        ) from error
    if quantization == "int8":
        _warn_uncalibrated(content)
    path = check_replaceable(path, "litert")
    with storage.atomic_output(path) as temporary:
        temporary.write_bytes(content)
    return str(path)


def _warn_uncalibrated(content):
    """Warns when int8 conversion left weights in float32: the calibration
    runs the routed model, so a branch that no calibration image takes
    gets no activation ranges and stays float (correct, but unquantised)."""
    counts = litert.constant_bytes(content)
    stayed = counts.get("FLOAT32", 0)
    total = sum(counts.values())
    if total and stayed > 0.1 * total:
        warnings.warn(
            f"int8 quantisation left {stayed / total:.0%} of the weight "
            "bytes in float32: the calibration images did not take every "
            "branch, and a branch that none takes has no activation ranges. "
            "Pass more, or more varied, `representative_images` (for a "
            "trained model, a few hundred real training images).",
            stacklevel=3,
        )


def export_onnx(
    model: D2NNModel,
    path: str | os.PathLike[str],
    batch_size: int | None = None,
) -> str:
    """Writes an ONNX model (opset 18) for onnxruntime and returns the path.

    Inputs and outputs are named as in `serving_function` (`image` ->
    `logits`, `probabilities`, `decision_<controller>`,
    `executed_flops`). Routing stays conditional: one ONNX `If` per
    conditional node, gather/scatter (`NonZero`, `Gather`, `ScatterND`)
    for batches of more than one (alternative crops: one `Slice` or
    `Gather`, see `execution.indexed_crop`). A conversion that keeps no
    `If` where the plan has conditional branches warns.

    Example:

    ```python
    # slow
    keras_d2nn.export.export_onnx(model, "model.onnx")
    keras_d2nn.export.onnx.session("model.onnx").run(
        ["probabilities"], {"image": images})
    ```
    """
    signature = input_signature(model, batch_size)  # checks the model
    check_replaceable(path, "onnx")  # before the conversion's work
    proto = onnx.convert(
        serving_function(model, "flag"),
        signature,
        conditional=bool(indexed_crop.branch_nodes(model.plan)),
    )
    path = check_replaceable(path, "onnx")
    with storage.atomic_output(path) as temporary:
        temporary.write_bytes(proto.SerializeToString())
    return str(path)
