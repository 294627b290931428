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
controller (`decision_<controller>`, -1 where it did not decide) and the
executed FLOPs per example. Controllers take their argmax: no sampling and
no TFP ops on the exported path.
"""

import pathlib
import warnings

import numpy as np
import tensorflow as tf

from keras_d2nn import litert
from keras_d2nn import onnx_export

QUANTIZATIONS = (None, "float16", "int8")


def _check_model(model):
    if not hasattr(model, "plan") or not hasattr(model, "trace"):
        raise TypeError(
            "Export takes a keras_d2nn.D2NNModel (for a plain Keras model "
            "use keras.export or model.export). Received: "
            f"{type(model).__name__}")


def _single_input(model):
    _check_model(model)
    inputs = [n for n in model.plan.order if n.kind == "input"]
    if len(inputs) != 1:
        raise ValueError(
            "Export supports models with one input; this one has "
            f"{[n.name for n in inputs]}.")
    return inputs[0]


def input_signature(model, batch_size=None):
    """`[tf.TensorSpec]` of the exported function (named after the input).

    Example: `input_signature(model, 1)  # [TensorSpec((1, 28, 28, 1))]`.
    """
    node = _single_input(model)
    if batch_size is not None and (
            not isinstance(batch_size, (int, np.integer)) or batch_size < 1):
        raise ValueError(
            f"`batch_size` should be None (any) or an int >= 1. Received: "
            f"{batch_size!r}")
    if node.shape is None or None in node.shape:
        # D2NNModel refuses such graphs (FLOPs need static shapes); a model
        # restored from an edited config could still carry one.
        raise ValueError(
            f"Input '{node.name}' has shape {node.shape}: export needs "
            "every dimension but the batch known (the exported function "
            "is traced once for that shape). Declare it in the graph, "
            "e.g. graph.input(name, shape=(28, 28, 1)).")
    return [tf.TensorSpec([batch_size] + list(node.shape), node.dtype,
                          name=node.name)]


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
            term = tf.where(mask, tf.constant(flops, tf.int64),
                            tf.constant(0, tf.int64))
            total = term if total is None else total + term
    if total is None:
        return tf.zeros_like(trace.executed_flops)
    return tf.cast(total, tf.float32)


def serving_function(model):
    """The exported function: a batch of inputs -> a dict of outputs.

    Keys: `logits` and `probabilities` (softmax of the model's output;
    one output only) or the output names, `decision_<controller>` (int32,
    -1 where that controller did not run) and `executed_flops` (float32).

    Example: `serving_function(model)(images)["decision_gate"]`.
    """
    _single_input(model)

    def serve(inputs):
        trace = model.trace(inputs, training=False, statistics=False)
        results = {}
        if len(trace.outputs) == 1:
            logits = next(iter(trace.outputs.values()))
            results["logits"] = logits
            results["probabilities"] = tf.nn.softmax(logits, axis=-1)
        else:
            results.update(trace.outputs)
        for q, decision in trace.decisions.items():
            results[f"decision_{q}"] = decision
        results["executed_flops"] = _integer_flops(model, trace)
        return results

    return serve


def export_saved_model(model, path, batch_size=None):
    """Writes a SavedModel for TF Serving at `path` and returns the path.

    The signature `serving_default` takes the model's input (any batch
    size unless `batch_size` is given) and returns the dict of
    `serving_function`. The SavedModel loads without `keras_d2nn`.

    Example:

    ```python
    keras_d2nn.export.export_saved_model(model, "exported/1")
    # saved_model_cli show --dir exported/1 --all
    ```
    """
    return litert.write_saved_model(
        [model], serving_function(model),
        input_signature(model, batch_size), pathlib.Path(path))


def _representative(images, batch_size):
    """The int8 calibration generator: one example (or a batch of the
    model's fixed size) at a time, as the converter expects."""
    images = np.asarray(images, np.float32)
    step = batch_size or 1

    def generate():
        for start in range(0, len(images) - step + 1, step):
            yield [images[start:start + step]]

    return generate


def export_litert(model, path, batch_size=1, quantization=None,
                  representative_images=None):
    """Writes a LiteRT (`.tflite`) model with builtin ops only.

    Args:
        batch_size: 1 (default): one `tf.cond` per conditional node, so
            only the chosen branch runs, and XNNPACK can be used. `None`:
            any batch size, gather/scatter routing (run it with the
            builtin kernels: XNNPACK cannot prepare a branch no example
            takes; `litert.interpreter(..., xnnpack=False)`).
        quantization: None (float32), `"float16"` (weights stored in
            float16, half the file) or `"int8"` (weights and activations
            in int8 where the kernels allow, float inputs and outputs).
        representative_images: for `"int8"`, a few hundred real inputs
            to calibrate the activation ranges on (e.g.
            `keras_d2nn.data.load_arrays("fashion_mnist", "train",
            take=500)[0]`).

    Returns:
        The path written.

    Raises:
        ValueError: naming the op or layer that would need the Flex
            delegate, or a bad `quantization`.

    Example: `export_litert(model, "model.tflite")`.
    """
    if quantization not in QUANTIZATIONS:
        raise ValueError(
            f"`quantization` should be one of {QUANTIZATIONS}. Received: "
            f"{quantization!r}")
    signature = input_signature(model, batch_size)
    options = {}
    if quantization is not None:
        options["optimizations"] = [tf.lite.Optimize.DEFAULT]
    if quantization == "float16":
        options["supported_types"] = [tf.float16]
    if quantization == "int8":
        if representative_images is None or len(representative_images) < 1:
            raise ValueError(
                "int8 quantisation needs `representative_images`: real "
                "inputs to calibrate activation ranges on (a few hundred "
                "training images).")
        expected = tuple(signature[0].shape[1:])
        if tuple(np.shape(representative_images)[1:]) != expected:
            raise ValueError(
                "`representative_images` should have shape (n,) + "
                f"{expected}. Received: {np.shape(representative_images)}")
        options["representative_dataset"] = _representative(
            representative_images, batch_size)
    try:
        content = litert.convert([model], serving_function(model), signature,
                                 **options)
    except ValueError as error:
        raise ValueError(litert.name_unconvertible_layers(
            model, str(error))) from error
    if quantization == "int8":
        _warn_uncalibrated(content)
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
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
            stacklevel=3)


def export_onnx(model, path, batch_size=None):
    """Writes an ONNX model (opset 18) for onnxruntime and returns the path.

    Inputs and outputs are named as in `serving_function` (`image` ->
    `logits`, `probabilities`, `decision_<controller>`,
    `executed_flops`). Routing stays conditional: one ONNX `If` per
    conditional node, gather/scatter (`NonZero`, `Gather`, `ScatterND`)
    for batches of more than one. A conversion that keeps no `If` warns.

    Example:

    ```python
    export_onnx(model, "model.onnx")
    keras_d2nn.onnx_export.session("model.onnx").run(
        ["probabilities"], {"image": images})
    ```
    """
    signature = input_signature(model, batch_size)  # checks the model
    proto = onnx_export.convert(serving_function(model), signature,
                                conditional=bool(model.plan.controllers))
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(proto.SerializeToString())
    return str(path)
