"""Exporting a trained D2NN for serving, with routed execution inside.

- `export_saved_model`: a SavedModel for TF Serving (tag `serve`,
  signature `serving_default`) taking a batch of any size;
- `export_litert`: a `.tflite` file with builtin ops only, batch 1 by
  default (`tf.cond` per conditional node) or batched (gather/scatter).

Both export the serving function of `serving_function`: the model's
outputs (and their softmax as `probabilities`), the decision of every
controller (`decision_<controller>`, -1 where it did not decide) and the
executed FLOPs per example. Controllers take their argmax: no sampling and
no TFP ops on the exported path.
"""

import pathlib

import tensorflow as tf

from keras_d2nn import litert


def _single_input(model):
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
    if batch_size is not None and batch_size < 1:
        raise ValueError(
            f"`batch_size` should be None (any) or >= 1. Received: "
            f"{batch_size}")
    return [tf.TensorSpec([batch_size] + list(node.shape), node.dtype,
                          name=node.name)]


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
        results["executed_flops"] = trace.executed_flops
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


def export_litert(model, path, batch_size=1):
    """Writes a LiteRT (`.tflite`) model with builtin ops only.

    Args:
        batch_size: 1 (default): one `tf.cond` per conditional node, so
            only the chosen branch runs, and XNNPACK can be used. `None`:
            any batch size, gather/scatter routing (run it with the
            builtin kernels: XNNPACK cannot prepare a branch no example
            takes; `litert.interpreter(..., xnnpack=False)`).

    Returns:
        The path written.

    Raises:
        ValueError: naming the op or layer that would need the Flex
            delegate.

    Example: `export_litert(model, "model.tflite")`.
    """
    content = litert.convert([model], serving_function(model),
                             input_signature(model, batch_size))
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return str(path)
