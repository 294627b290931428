"""Checking one batch of inputs on its way into the graph.

Concrete values (NumPy, eager tensors) are checked at once; symbolic ones
(in a training step, under `tf.function`) by assertions that gate every
use of the batch, so that traced code refuses NaN and Inf too.
"""

import numpy as np
import tensorflow as tf

from keras_d2nn.models import input_checks
from keras_d2nn.models import non_finite


def is_concrete(value):
    """Whether `value` holds numbers now (NumPy, or an eager tensor)."""
    return isinstance(value, np.ndarray) or (
        tf.is_tensor(value) and tf.executing_eagerly()
    )


def check_concrete_finite(name, value, what, offset=0, allow_non_finite=False):
    """A ValueError naming the examples of a concrete `value` that hold NaN
    or Inf (`offset`: index of its first example in the data).

    Example: `check_concrete_finite("image", images, "route")`.
    """
    if is_concrete(value) and not allow_non_finite:
        non_finite.check_finite(name, value, what, offset)


def checked_inputs(
    plan, input_names, inputs, allow_non_finite=False, what="trace", offset=0
):
    """`{input name: tensor}` of `inputs`, cast to each node's dtype, after
    checking names, ranks, shapes, dtypes and that they are finite.

    Example: `checked_inputs(model.plan, model.input_names, images)`.
    """
    checked = {}
    symbolic = {}
    for name, value in input_checks.pair_inputs(input_names, inputs):
        node = plan.nodes[name]
        value = tf.convert_to_tensor(value)
        input_checks.check_input(node, value.shape, value.dtype)
        check_concrete_finite(name, value, what, offset, allow_non_finite)
        checked[name] = tf.cast(value, node.dtype)
        if not is_concrete(value):
            symbolic[name] = value
    if symbolic and not allow_non_finite and non_finite.checks_enabled():
        assertions = non_finite.finite_assertions(symbolic)
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
            check_concrete_finite(name, value, "model(x)", 0, allow_non_finite)
