"""Checking what `fit`, `evaluate`, `predict` and `call` receive.

Bad data should fail before Keras traces anything, with a message naming
the input and what was expected. Left to TensorFlow, it fails late and
badly: a wrong image size surfaces from inside a convolution (after a
first `fit`, Keras's relaxed retracing lets it past the shape check); a
label of 10 for 10 classes is an `InvalidArgumentError` from the loss
kernel with a node trace; a label of 2.5 trains silently on garbage; an
empty array trains nothing and says nothing.

Arrays and tensors are checked whole before the first step; a
`tf.data.Dataset` by its element spec (and its cardinality, where known),
and its labels batch by batch inside the step (`label_assertions`), whose
failure `clearer_step_errors` turns into a ValueError. NaN and Inf inputs
are refused too (`keras_d2nn.models.non_finite`), and values outside an
input's declared range (`keras_d2nn.models.value_range`).
"""

import contextlib

import keras
import numpy as np
import tensorflow as tf

from keras_d2nn.models import non_finite
from keras_d2nn.models import value_range

# Marks the label assertions' messages, to tell them from other errors.
LABEL_CHECK = "keras_d2nn label check"


def pair_inputs(names, inputs):
    """`[(input name, value)]` for `inputs` given as one value, a list or a
    dict by name, or a ValueError saying what the model expects.

    Example: `pair_inputs(["image"], images)  # [("image", images)]`.
    """
    if isinstance(inputs, dict):
        if set(inputs) != set(names):
            raise ValueError(
                f"D2NNModel expects inputs named {names}; received a dict "
                f"with keys {sorted(inputs)}."
            )
        return [(n, inputs[n]) for n in names]
    if isinstance(inputs, (list, tuple)) and len(names) > 1:
        if len(inputs) != len(names):
            raise ValueError(
                f"D2NNModel expects {len(names)} inputs {names}; received "
                f"{len(inputs)}."
            )
        return list(zip(names, inputs))
    if len(names) != 1:
        raise ValueError(
            f"D2NNModel expects {len(names)} inputs {names}; pass a dict or "
            "a list."
        )
    return [(names[0], inputs)]


def _is_numeric(dtype):
    dtype = tf.as_dtype(dtype)
    return dtype.is_floating or dtype.is_integer or dtype.is_bool


def check_dtype(node, dtype):
    """Raises a ValueError unless values of `dtype` may be fed to input
    node `node`: a float input takes floats only (integers, such as raw
    pixels, were not scaled as in training); an integer or bool input
    takes no floats (a cast would truncate them).

    Example: `check_dtype(plan.nodes["image"], "uint8")  # ValueError`.
    """
    try:
        numeric = _is_numeric(dtype)
    except TypeError:
        numeric = False
    if not numeric:
        raise ValueError(
            f"Input '{node.name}' should hold numbers ({node.dtype}); "
            f"received dtype {getattr(dtype, 'name', dtype)}."
        )
    # Casting raw pixels (uint8, 0..255) to float without the scaling used
    # in training gives confident wrong answers: refuse, say what to do.
    if (
        tf.as_dtype(node.dtype).is_floating
        and not tf.as_dtype(dtype).is_floating
    ):
        raise ValueError(
            f"Input '{node.name}' should hold {node.dtype} values scaled as "
            f"in training; received dtype {tf.as_dtype(dtype).name}. The "
            "model cannot know how integers were scaled (raw 0..255 "
            "pixels, counts, codes): convert them as the training data "
            "was, e.g. x.astype('float32') / 255 for pixels, or with the "
            "scaler fitted on the training data. A graph that scales its "
            "inputs itself (a Rescaling or Normalization layer first) "
            "should declare the integer input: "
            f"graph.input('{node.name}', shape, "
            f"dtype='{tf.as_dtype(dtype).name}')."
        )
    # The reverse (floats into an integer or bool input) would truncate
    # silently.
    if (
        not tf.as_dtype(node.dtype).is_floating
        and tf.as_dtype(dtype).is_floating
    ):
        raise ValueError(
            f"Input '{node.name}' should hold {node.dtype} values; received "
            f"dtype {tf.as_dtype(dtype).name}, which casting would "
            f"truncate. Pass the {node.dtype} values the graph declares."
        )


def check_input(node, shape, dtype):
    """Raises a ValueError unless `shape` (batch first; None for unknown
    sizes) and `dtype` fit input node `node` (see `check_dtype`).

    Example: `check_input(plan.nodes["image"], (32, 28, 28, 1), "uint8")`.
    """
    check_dtype(node, dtype)
    expected = (None,) + tuple(node.shape)
    actual = tuple(shape)
    if len(actual) != len(expected) or any(
        e is not None and a is not None and e != a
        for e, a in zip(expected, actual)
    ):
        raise ValueError(
            f"Input '{node.name}' should have shape {expected} (batch "
            f"first); received shape {actual}."
        )


def _shape_and_dtype(value):
    """Shape and dtype of an array-like without copying arrays or tensors."""
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return tuple(value.shape), value.dtype
    value = np.asarray(value)
    return value.shape, value.dtype


def num_classes(plan):
    """Size of the first output's last axis (the classes of its logits).

    Example: `num_classes(model.plan)  # 10`.
    """
    _, node = plan.outputs[0]
    return plan.specs[node].shape[-1]


def sparse_labels(loss):
    """Whether `loss` takes class indices (sparse categorical losses).

    Example: `sparse_labels("sparse_categorical_crossentropy")  # True`.
    """
    if isinstance(loss, str):
        return "sparse_categorical" in loss
    if isinstance(loss, keras.losses.SparseCategoricalCrossentropy):
        return True
    return getattr(loss, "__name__", "") == "sparse_categorical_crossentropy"


def check_labels(labels, classes, sparse, what):
    """Raises a ValueError unless `labels` (an array) suit the loss.

    Sparse losses need whole numbers in `[0, classes)`, one per example;
    other losses one row of `classes` values per example.

    Example: `check_labels(y, 10, sparse=True, what="fit")`.
    """
    shape, dtype = _shape_and_dtype(labels)
    if not _is_numeric(dtype):
        raise ValueError(
            f"{what}: labels should be numbers; received dtype "
            f"{getattr(dtype, 'name', dtype)}."
        )
    if not sparse:
        if len(shape) != 2 or shape[1] != classes:
            raise ValueError(
                f"{what}: labels should have shape (n, {classes}), one row "
                f"per example for the {classes} outputs; received shape "
                f"{shape}."
            )
        return
    if len(shape) > 2 or (len(shape) == 2 and shape[1] != 1):
        raise ValueError(
            f"{what}: a sparse categorical loss takes class indices, shape "
            f"(n,); received labels of shape {shape}. For one-hot labels "
            "use keras.losses.CategoricalCrossentropy."
        )
    values = np.asarray(labels).reshape(-1)
    if values.size == 0:
        return
    bad = (
        ~np.isfinite(values)
        | (values != np.round(values))
        | (values < 0)
        | (values >= classes)
    )
    if bad.any():
        examples = sorted({float(v) for v in values[bad][:1000]})[:5]
        raise ValueError(
            f"{what}: labels should be class indices, whole numbers in "
            f"[0, {classes}) for the {classes} outputs; {int(bad.sum())} of "
            f"{values.size} are not, e.g. "
            f"{[int(v) if float(v).is_integer() else v for v in examples]}."
        )


def _check_label_spec(spec, classes, sparse, what):
    """The shape and dtype part of `check_labels`, for a dataset's spec."""
    shape = tuple(spec.shape)
    if not _is_numeric(spec.dtype):
        raise ValueError(
            f"{what}: labels should be numbers; the dataset "
            f"yields dtype {spec.dtype.name}."
        )
    if sparse and (
        len(shape) > 2 or (len(shape) == 2 and shape[1] not in (1, None))
    ):
        raise ValueError(
            f"{what}: a sparse categorical loss takes class indices, shape "
            f"(batch,); the dataset yields labels of shape {shape}. For "
            "one-hot labels use keras.losses.CategoricalCrossentropy."
        )
    if not sparse and (len(shape) != 2 or shape[1] not in (classes, None)):
        raise ValueError(
            f"{what}: labels should have shape (batch, {classes}); the "
            f"dataset yields labels of shape {shape}."
        )


def _dataset_parts(dataset):
    """Element specs `(inputs, labels or None)` of a dataset."""
    spec = dataset.element_spec
    if isinstance(spec, tuple) and 1 < len(spec) <= 3:
        return spec[0], spec[1]
    return spec, None


def check_data(model, x, y=None, what="fit", labelled=True):
    """Checks `fit`/`evaluate`/`predict` data before anything is traced.

    Arrays, tensors and their lists/dicts are checked whole: shapes,
    dtypes, at least one example, and (for `fit`/`evaluate` with one
    output) the labels. A `tf.data.Dataset` is checked by its element spec
    and, where known, its cardinality. Other sources (generators,
    `PyDataset`) are left to the checks inside the step.

    Example: `check_data(model, images, labels, what="fit")`.
    """
    nodes = model.plan.nodes
    if isinstance(x, tf.data.Dataset):
        if int(x.cardinality()) == 0:
            raise ValueError(f"{what}: the dataset is empty: no batch to use.")
        inputs, labels = _dataset_parts(x)
        for name, spec in pair_inputs(model.input_names, inputs):
            if not isinstance(spec, tf.TensorSpec):
                return
            check_input(nodes[name], spec.shape, spec.dtype)
        if (
            labelled
            and isinstance(labels, tf.TensorSpec)
            and len(model.plan.outputs) == 1
        ):
            _check_label_spec(
                labels, num_classes(model.plan), sparse_labels(model.loss), what
            )
        return
    if x is None or not _array_like(x):
        return
    for name, value in pair_inputs(model.input_names, x):
        shape, dtype = _shape_and_dtype(value)
        check_input(nodes[name], shape, dtype)
        if shape[0] == 0:
            raise ValueError(
                f"{what}: input '{name}' holds no examples (shape {shape})."
            )
        if not model.allow_non_finite:
            non_finite.check_finite(name, value, what)
        value_range.check_in_range(name, value, nodes[name].value_range, what)
    if (
        labelled
        and y is not None
        and _array_like(y)
        and not isinstance(y, (dict, list, tuple))
        and len(model.plan.outputs) == 1
    ):
        check_labels(
            y, num_classes(model.plan), sparse_labels(model.loss), what
        )


def _array_like(value):
    if isinstance(value, dict):
        return all(_array_like(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return all(_array_like(v) for v in value)
    return isinstance(value, (np.ndarray, tf.Tensor)) or hasattr(
        value, "__array__"
    )


def label_assertions(model, y):
    """Graph assertions that a batch's labels suit a sparse loss: run
    inside the train/test step, for data not checked beforehand.

    Example: `with tf.control_dependencies(label_assertions(model, y)):`.
    """
    if (
        y is None
        or isinstance(y, (dict, list, tuple))
        or len(model.plan.outputs) != 1
        or not sparse_labels(model.loss)
    ):
        return []
    classes = num_classes(model.plan)
    labels = tf.cast(tf.reshape(y, [-1]), tf.float64)
    message = f"{LABEL_CHECK}: [0, {classes})"
    return [
        tf.debugging.assert_equal(labels, tf.round(labels), message=message),
        tf.debugging.assert_non_negative(labels, message=message),
        tf.debugging.assert_less(
            labels, tf.cast(classes, tf.float64), message=message
        ),
    ]


@contextlib.contextmanager
def clearer_step_errors(what):
    """Turns a failed `label_assertions`, `non_finite.finite_assertions`
    or `value_range.range_assertions` into a one-line ValueError.

    Example: `with clearer_step_errors("fit"): super().fit(...)`.
    """
    try:
        yield
    except tf.errors.InvalidArgumentError as error:
        text = str(error)
        message = non_finite.clearer_message(
            what, text
        ) or value_range.clearer_message(what, text)
        if message is not None:
            raise ValueError(message) from None
        if LABEL_CHECK not in text:
            raise
        classes = text.split(LABEL_CHECK + ": [0, ", 1)[1].split(")", 1)[0]
        raise ValueError(
            f"{what}: a batch held labels that are not class indices: "
            f"labels should be whole numbers in [0, {classes}) for the "
            f"{classes} outputs."
        ) from None
