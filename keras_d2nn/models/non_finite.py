"""Refusing NaN and Inf inputs: a D2NN cannot be trusted to route them.

Left alone, a non-finite image does not give a non-finite answer: on x86
CPUs TensorFlow's oneDNN kernels (and LiteRT's XNNPACK) turn NaN into
finite numbers in ReLU and max-pooling, so such an image gets finite
logits, a confident class and a route. Nothing downstream can tell it from
a real answer, so the entry points refuse it instead, naming how many
examples and which ones.

Arrays and eager tensors are checked whole, in NumPy, before anything
runs (`check_finite`); symbolic tensors (a `tf.data.Dataset` batch inside
a step, `tf.function(model)`, a functional model wrapping a D2NN) by graph
assertions (`finite_assertions`), whose failure `clearer_step_errors` in
`input_checks` turns into a ValueError inside `fit`, `evaluate` and
`predict`. `model.allow_non_finite = True` lets such inputs through, for
users who handle them themselves. The exported serving functions check and
flag non-finite examples themselves and trace the model `unchecked()`, so
that no Assert op reaches a LiteRT or ONNX graph.
"""

import contextlib
import re
import threading

import numpy as np
import tensorflow as tf

# Marks the assertions' messages, to tell them from other errors.
NON_FINITE_CHECK = "keras_d2nn non-finite check"
_HOW_TO_ALLOW = (
    "Clean or drop them first, or set `model.allow_non_finite = "
    "True` to let them through (their outputs and routes are "
    "then meaningless)."
)
_SHOWN = 10  # indices named in a message
_state = threading.local()


@contextlib.contextmanager
def unchecked():
    """Within it, models build no NaN/Inf assertions (nor the value-range
    ones of `value_range.range_assertions`) into traced graphs: for
    callers that have checked (or sanitised) the inputs themselves, as
    the exported serving functions do.

    Example: `with unchecked(): trace = model.trace(sanitised_images)`.
    """
    previous = getattr(_state, "off", False)
    _state.off = True
    try:
        yield
    finally:
        _state.off = previous


def checks_enabled():
    """False inside `unchecked()`.

    Example: `if checks_enabled(): ...`.
    """
    return not getattr(_state, "off", False)


def non_finite_rows(value):
    """Indices (int array) of the examples of `value` (batch first) that
    hold a NaN or an infinity; empty for non-float data.

    Example: `non_finite_rows(np.array([[0.0], [np.nan]]))  # array([1])`.
    """
    value = np.asarray(value)
    if not np.issubdtype(value.dtype, np.floating) or value.size == 0:
        return np.zeros([0], np.int64)
    finite = np.isfinite(value.reshape(len(value), -1)).all(axis=1)
    return np.flatnonzero(~finite)


def _named(indices):
    shown = ", ".join(str(int(i)) for i in indices[:_SHOWN])
    more = (
        f", ... ({len(indices) - _SHOWN} more)" if len(indices) > _SHOWN else ""
    )
    return f"[{shown}{more}]"


def check_finite(name, value, what, offset=0):
    """Raises a ValueError naming the examples of `value` that hold NaN or
    Inf. `offset` is the position of `value`'s first example in the data
    (for data checked batch by batch).

    Example: `check_finite("image", images, what="predict")`.
    """
    bad = non_finite_rows(value)
    if bad.size:
        raise ValueError(
            f"{what}: input '{name}' holds NaN or Inf in {bad.size} "
            f"example{'s' if bad.size > 1 else ''}, at "
            f"ind{'ices' if bad.size > 1 else 'ex'} {_named(bad + offset)}."
            f" A D2NN cannot route such inputs. {_HOW_TO_ALLOW}"
        )


def finite_assertions(named_inputs):
    """Graph assertions that every float input of a batch is finite: run
    inside the steps, for data not checked beforehand (datasets).

    Args:
        named_inputs: `{input name: tensor}`, batch first.

    Example: `with tf.control_dependencies(finite_assertions(inputs)):`.
    """
    checks = []
    for name, value in named_inputs.items():
        if not value.dtype.is_floating:
            continue
        rows = tf.reshape(value, [tf.shape(value)[0], -1])
        finite = tf.reduce_all(tf.math.is_finite(rows), axis=1)
        checks.append(
            tf.debugging.Assert(
                tf.reduce_all(finite),
                # No quotes in the message: TensorFlow escapes them.
                [
                    f"{NON_FINITE_CHECK} input={name} at:",
                    tf.where(tf.logical_not(finite))[:, 0],
                ],
                summarize=_SHOWN,
            )
        )
    return checks


def clearer_message(what, text):
    """The ValueError text for a failed `finite_assertions`, from the
    error's text, or None when the error is something else.

    Example: `clearer_message("fit", str(error))`.
    """
    if NON_FINITE_CHECK not in text:
        return None
    after = text.split(NON_FINITE_CHECK + " input=", 1)[1]
    name, after = after.split(" at:", 1)
    # TensorFlow prints the index tensor as "[3 7]" (or "[3 7...]").
    found = re.search(r"\[([\d\s.]*)\]", after)
    indices = ", ".join(found.group(1).split()) if found else "?"
    return (
        f"{what}: a batch held examples whose input '{name}' is NaN or "
        f"Inf, at positions [{indices}] of that batch (of a replica's "
        f"share of it, under tf.distribute). A D2NN cannot "
        f"route such inputs. {_HOW_TO_ALLOW}"
    )
