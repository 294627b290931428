"""Forced routing (`D2NNModel.set_routing`): parsing and decisions."""

import numpy as np
import tensorflow as tf

from keras_d2nn.execution import sampling


def parse(controller, actions, spec):
    """`("constant", index)` or `("random", probabilities)` for one spec.

    Example: `parse("gate", ("stop", "high"), "high")  # ("constant", 1)`.
    """
    if isinstance(spec, (str, int, np.integer)):
        if isinstance(spec, str):
            if spec not in actions:
                raise ValueError(
                    f"set_routing: controller '{controller}' has no action "
                    f"'{spec}'; actions: {list(actions)}"
                )
            return "constant", actions.index(spec)
        if not 0 <= int(spec) < len(actions):
            raise ValueError(
                f"set_routing: controller '{controller}' has actions "
                f"0..{len(actions) - 1}; received {spec}."
            )
        return "constant", int(spec)
    probs = np.asarray(spec, dtype=np.float64)
    if (
        probs.shape != (len(actions),)
        or np.any(probs < 0)
        or not np.isclose(probs.sum(), 1.0)
    ):
        raise ValueError(
            f"set_routing: controller '{controller}' needs one probability per "
            f"action {list(actions)}, >= 0 and summing to 1. Received: {spec}"
        )
    return "random", [float(p) for p in probs]


def forced_decisions(routing, batch_size, seed_generator):
    """Decisions `{controller: int32 (batch,)}` for parsed `routing`.

    Example: `forced_decisions({"gate": ("constant", 1)}, 8, seeds)`.
    """
    decisions = {}
    for controller, (kind, value) in routing.items():
        if kind == "constant":
            decisions[controller] = tf.fill([batch_size], value)
        else:
            noise = sampling.uniform_noise(
                seed_generator.next(), batch_size, len(value)
            )
            decisions[controller] = sampling.categorical(
                tf.broadcast_to(tf.constant([value]), tf.shape(noise)), noise
            )
    return decisions
