"""Checking one batch of inputs on its way into the graph.

Concrete values (NumPy, eager tensors) are checked at once; symbolic ones
(in a training step, under `tf.function`) by assertions that gate every
use of the batch, so that traced code refuses NaN, Inf and values outside
an input's declared range too.
"""

import numpy as np
import tensorflow as tf

from keras_d2nn.models import input_checks
from keras_d2nn.models import non_finite
from keras_d2nn.models import value_range


def is_concrete(value):
    """Whether `value` holds numbers now (NumPy, or an eager tensor)."""
    return isinstance(value, np.ndarray) or (
        tf.is_tensor(value) and tf.executing_eagerly()
    )


def check_concrete_values(node, value, what, offset=0, allow_non_finite=False):
    """A ValueError naming the examples of a concrete `value` for input
    node `node` that hold NaN or Inf, or values outside the node's
    declared `value_range` (`offset`: index of its first example in the
    data).

    Example: `check_concrete_values(plan.nodes["image"], images, "route")`.
    """
    if not is_concrete(value):
        return
    if not allow_non_finite:
        non_finite.check_finite(node.name, value, what, offset)
    value_range.check_in_range(node.name, value, node.value_range, what, offset)


def checked_inputs(
    plan, input_names, inputs, allow_non_finite=False, what="trace", offset=0
):
    """`{input name: tensor}` of `inputs`, cast to each node's dtype, after
    checking names, ranks, shapes, dtypes, that they are finite and within
    each input's declared `value_range`.

    Example: `checked_inputs(model.plan, model.input_names, images)`.
    """
    checked = {}
    symbolic = {}
    for name, value in input_checks.pair_inputs(input_names, inputs):
        node = plan.nodes[name]
        value = tf.convert_to_tensor(value)
        input_checks.check_input(node, value.shape, value.dtype)
        check_concrete_values(node, value, what, offset, allow_non_finite)
        checked[name] = tf.cast(value, node.dtype)
        if not is_concrete(value):
            symbolic[name] = value
    if symbolic and non_finite.checks_enabled():
        assertions = value_range.range_assertions(
            symbolic, {name: plan.nodes[name].value_range for name in symbolic}
        )
        if not allow_non_finite:
            assertions += non_finite.finite_assertions(symbolic)
        if assertions:
            with tf.control_dependencies(assertions):
                checked = {k: tf.identity(v) for k, v in checked.items()}
    return checked


def check_call_inputs(plan, input_names, inputs, allow_non_finite=False):
    """The checks of `model(x)`, made before Keras's `__call__` would bury
    their message under "Exception encountered when calling D2NNModel".

    Example: `check_call_inputs(model.plan, model.input_names, images)`.
    """
    for name, value in input_checks.pair_inputs(input_names, inputs):
        if hasattr(value, "shape") and hasattr(value, "dtype"):
            input_checks.check_input(plan.nodes[name], value.shape, value.dtype)
            check_concrete_values(
                plan.nodes[name], value, "model(x)", 0, allow_non_finite
            )
