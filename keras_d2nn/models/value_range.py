"""Refusing inputs far outside the values a graph input declares.

A graph input may declare the range of values it was trained on:
`graph.input("pixels", shape=(64,), value_range=(0.0, 1.0))`. A model fed
values outside it does not fail: it answers, confidently and wrongly.
scikit-learn's 8x8 digits fed raw (0..16) to a D2NN trained on them
scaled to 0..1 lost 3.6 points of accuracy and routed at a third of the
cost, and nothing said so. So, like NaN and Inf (`non_finite`), an
example holding a value below the range's low end or above its high end
(by more than `SLACK` of the range's width, which rounding never reaches)
is refused by `fit`, `evaluate`, `predict`, `model(x)` and `route`, and
by the exports (`keras_d2nn.export.serving`: refused by the SavedModel,
flagged `valid` False by LiteRT and ONNX).

Arrays and eager tensors are checked whole, in NumPy (`check_in_range`);
symbolic tensors (datasets, inside a step) by graph assertions
(`range_assertions`), whose failure `clearer_message` turns into a
ValueError. An input without `value_range` is not checked (the default,
and what files saved before ranges existed load as).
"""

import re

import numpy as np
import tensorflow as tf

from keras_d2nn.graph.value_range import SLACK  # noqa: F401  (documented here)
from keras_d2nn.graph.value_range import bounds

# Marks the assertions' messages, to tell them from other errors.
RANGE_CHECK = "keras_d2nn range check"
_SHOWN = 10  # indices named in a message


def out_of_range_rows(value, value_range):
    """Indices (int array) of the examples of `value` (batch first) holding
    a finite value outside `value_range` (NaN and Inf are `non_finite`'s).

    Example: `out_of_range_rows(np.array([[0.5], [16.0]]), (0, 1))  # [1]`.
    """
    value = np.asarray(value)
    if value_range is None or value.size == 0 or value.dtype == bool:
        return np.zeros([0], np.int64)
    low, high = bounds(value_range)
    rows = value.reshape(len(value), -1)
    with np.errstate(invalid="ignore"):
        outside = (rows < low) | (rows > high)
    return np.flatnonzero(outside.any(axis=1))


def _advice(name, value_range):
    low, high = value_range
    return (
        f"input '{name}' should hold values in [{low:g}, {high:g}] (its "
        "declared value_range, the values it was trained on): scale them "
        "as the training data was. A model answers such inputs "
        "confidently and wrongly. If the range is wrong, declare the "
        f"right one: graph.input('{name}', shape, value_range=(low, high))."
    )


def check_in_range(name, value, value_range, what, offset=0):
    """Raises a ValueError naming the examples of `value` that hold values
    outside `value_range` and the values found. `offset` is the position
    of `value`'s first example in the data.

    Example: `check_in_range("pixels", x, (0.0, 1.0), what="predict")`.
    """
    bad = out_of_range_rows(value, value_range)
    if not bad.size:
        return
    values = np.asarray(value)
    finite = values[np.isfinite(values)] if values.dtype != bool else values
    shown = ", ".join(str(int(i) + offset) for i in bad[:_SHOWN])
    more = f", ... ({bad.size - _SHOWN} more)" if bad.size > _SHOWN else ""
    raise ValueError(
        f"{what}: {bad.size} of {len(values)} examples hold values outside "
        f"the range of input '{name}' (at indices [{shown}{more}]; values "
        f"seen from {finite.min():g} to {finite.max():g}); "
        + _advice(name, value_range)
    )


def in_range_rows(inputs, value_range, bitwise=False):
    """`(batch,)` bool tensor: whether each example's finite values lie in
    `value_range` (widened by `SLACK`); all True without a range.

    `bitwise` compares the float32 values through their int32 bits, which
    int8 quantisation leaves alone: a quantised comparison would clamp
    16.0 to the calibrated range and find it inside. The bits of a float
    order like the float once the negative ones are mirrored
    (`INT_MIN - bits`). NaN compares as outside; Inf as outside too.

    Example: `in_range_rows(tf.constant([[0.5], [16.0]]), (0.0, 1.0))`.
    """
    if value_range is None or inputs.dtype.is_bool:
        return tf.fill(tf.shape(inputs)[:1], True)
    low, high = bounds(value_range)
    if not bitwise or not inputs.dtype.is_floating:
        # Integers compare as float32 (LiteRT has no float64 kernels).
        dtype = inputs.dtype if inputs.dtype.is_floating else tf.float32
        values = tf.cast(_per_example(inputs), dtype)
        inside = tf.logical_and(
            values >= tf.constant(low, dtype),
            values <= tf.constant(high, dtype),
        )
        return tf.reduce_all(inside, axis=1)
    # Bitcast first, the input itself: int8 quantisation would quantise a
    # Reshape (or any op with an int8 kernel) of the float input.
    bits = tf.bitcast(tf.cast(inputs, tf.float32), tf.int32)
    keys = _ordered_bits(_per_example(bits))
    low_key, high_key = (_ordered_key(v) for v in (low, high))
    inside = tf.logical_and(keys >= low_key, keys <= high_key)
    return tf.reduce_all(inside, axis=1)


def _per_example(values):
    """`values` as `(batch, values per example)`."""
    return tf.reshape(values, [tf.shape(values)[0], -1])


def _ordered_bits(bits):
    """int32 keys that order like the float32 values whose bits they are."""
    smallest = tf.constant(np.iinfo(np.int32).min, tf.int32)
    return tf.where(bits >= 0, bits, smallest - bits)


def _ordered_key(value):
    """`_ordered_bits` of one float, in Python (a constant of the graph)."""
    bits = int(np.float32(value).view(np.int32))
    return bits if bits >= 0 else int(np.iinfo(np.int32).min) - bits


def range_assertions(named_inputs, ranges):
    """Graph assertions that every value of a batch lies in its input's
    range: run inside the steps, for data not checked beforehand.

    Args:
        named_inputs: `{input name: tensor}`, batch first.
        ranges: `{input name: (low, high) or None}`.

    Example: `with tf.control_dependencies(range_assertions(x, ranges)):`.
    """
    checks = []
    for name, value in named_inputs.items():
        value_range = ranges.get(name)
        if value_range is None or value.dtype.is_bool:
            continue
        finite = value
        if value.dtype.is_floating:
            # NaN and Inf are the finite check's to report.
            finite = tf.where(
                tf.math.is_finite(value),
                value,
                tf.constant(value_range[0], value.dtype),
            )
        inside = in_range_rows(finite, value_range)
        checks.append(
            tf.debugging.Assert(
                tf.reduce_all(inside),
                # No quotes in the message: TensorFlow escapes them.
                [
                    f"{RANGE_CHECK} input={name} "
                    f"range={value_range[0]!r},{value_range[1]!r} at:",
                    tf.where(tf.logical_not(inside))[:, 0],
                ],
                summarize=_SHOWN,
            )
        )
    return checks


def clearer_message(what, text):
    """The ValueError text for a failed `range_assertions`, from the
    error's text, or None when the error is something else.

    Example: `clearer_message("fit", str(error))`.
    """
    if RANGE_CHECK not in text:
        return None
    after = text.split(RANGE_CHECK + " input=", 1)[1]
    name, after = after.split(" range=", 1)
    limits, after = after.split(" at:", 1)
    low, high = (float(v) for v in limits.split(","))
    found = re.search(r"\[([\d\s.]*)\]", after)
    indices = ", ".join(found.group(1).split()) if found else "?"
    return (
        f"{what}: a batch held examples with values outside the range of "
        f"input '{name}', at positions [{indices}] of that batch; "
        + _advice(name, (low, high))
    )
