"""Timing the routed model itself on each of its routes.

A node timed alone misses what it costs inside the routed graph: the
call of the model, each conditional node's `tf.cond`, gather and scatter,
what the runtime overlaps or fuses. Here the whole model runs, as it is
served, with every example sent down one route: each controller's
`logit_offset` (the weight budget calibration sets) is pushed so far
towards one action that the argmax takes it, while the controllers still
compute their logits as in serving. The offsets are put back afterwards.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import TYPE_CHECKING
from typing import Any

import numpy as np
import tensorflow as tf

from keras_d2nn.export import litert

if TYPE_CHECKING:
    from keras_d2nn.graph.plan import Plan

# Added to the chosen action's logit: far above any trained logit, small
# enough that float32 logits keep their resolution beside it.
FORCING_OFFSET = 1.0e4


def distinct_routes(plan: Plan) -> dict[tuple[str, ...], int]:
    """`{names of the computing nodes that run: one joint decision that
    runs exactly them}`: joint decisions that differ only in controllers
    that do not decide give the same route, timed once.

    Example: `distinct_routes(model.plan)  # {("low", ...): 0, ...}`.
    """
    computing = [node.name for node in plan.order if node.layer is not None]
    routes: dict[tuple[str, ...], int] = {}
    for index in range(len(plan.route_flops)):
        route = tuple(n for n in computing if plan.conditions[n][index])
        routes.setdefault(route, index)
    return routes


def joint_actions(plan: Plan, index: int) -> dict[str, int]:
    """`{controller: action}` of a joint decision's index (the inverse of
    `Plan.joint_decision`).

    Example: `joint_actions(model.plan, 1)  # {"gate": 1}`.
    """
    actions = {}
    for q in reversed(plan.controllers):
        size = len(plan.nodes[q].actions)
        actions[q] = index % size
        index //= size
    return actions


def force(plan: Plan, actions: dict[str, int]) -> None:
    """Sets each controller's `logit_offset` so that its argmax is
    `actions[controller]` whatever its inputs."""
    for q, action in actions.items():
        offset = np.zeros(len(plan.nodes[q].actions), np.float32)
        offset[action] = FORCING_OFFSET
        plan.nodes[q].layer.logit_offset.assign(offset)


def random_model_inputs(model: Any, batch_size: int, rng) -> list:
    """Random arrays of the model's inputs, in `model.input_names` order."""
    arrays = []
    for name in model.input_names:
        spec = model.plan.specs[name]
        shape = (batch_size, *spec.shape[1:])
        dtype = np.dtype(spec.dtype)
        if np.issubdtype(dtype, np.floating):
            arrays.append(rng.random(shape).astype(dtype))
        else:
            arrays.append(np.zeros(shape, dtype))
    return arrays


def _serving_fn(model: Any) -> Callable[..., Any]:
    """The model's inference call on positional inputs, as served."""
    names = list(model.input_names)

    def serve(*inputs):
        fed = inputs[0] if len(inputs) == 1 else dict(zip(names, inputs))
        return model(fed, training=False)

    return serve


def _tf_cpu_runner(model: Any, inputs: list) -> Callable[[], Any]:
    """One call of the model as a traced `tf.function` on `inputs`; the
    offsets are variables, so every route runs the same trace."""
    compiled = tf.function(_serving_fn(model))
    with tf.device("/CPU:0"):
        tensors = [tf.constant(a) for a in inputs]

    def run():
        with tf.device("/CPU:0"):
            # The first output read back: the call has finished.
            return tf.nest.flatten(compiled(*tensors))[0].numpy()

    return run


def _litert_runner(model: Any, inputs: list) -> Callable[[], Any]:
    """The model converted with the current offsets (LiteRT freezes them
    as constants) and run in the interpreter with one thread."""
    specs = [tf.TensorSpec(a.shape, a.dtype) for a in inputs]
    content = litert.convert([model], _serving_fn(model), specs)
    interpreter = litert.interpreter(content, num_threads=1)
    for detail, array in zip(interpreter.get_input_details(), inputs):
        interpreter.set_tensor(detail["index"], array.astype(detail["dtype"]))
    return interpreter.invoke


def time_routes(
    model: Any,
    runtime: str,
    batch_sizes: tuple[int, ...],
    repeats: int,
    warmup: int,
    rng,
) -> dict[tuple[str, ...], dict[int, float]]:
    """`{route: {batch size: seconds per batch}}`: the median of `repeats`
    calls of the routed model with every example forced down each of its
    distinct routes. The routes take turns in each round, so that the
    machine's noise hits them alike.

    Example: `time_routes(model, "tf_cpu", (1, 64), 20, 3, rng)`.
    """
    plan = model.plan
    saved = {
        q: plan.nodes[q].layer.logit_offset.numpy() for q in plan.controllers
    }
    routes = distinct_routes(plan)
    times: dict[tuple[str, ...], dict[int, float]] = {r: {} for r in routes}
    try:
        for size in batch_sizes:
            inputs = random_model_inputs(model, size, rng)
            # TF: one traced function for every route (the offsets are
            # variables); LiteRT freezes them: one conversion per route.
            shared = None
            if runtime != "litert":
                shared = _tf_cpu_runner(model, inputs)
            runners = {}
            for route, index in routes.items():
                if shared is None:
                    force(plan, joint_actions(plan, index))
                    runners[route] = _litert_runner(model, inputs)
                else:
                    runners[route] = shared
            samples: dict[tuple[str, ...], list[float]] = {
                r: [] for r in routes
            }
            for round_ in range(warmup + repeats):
                for route, index in routes.items():
                    force(plan, joint_actions(plan, index))
                    start = time.perf_counter()
                    runners[route]()
                    if round_ >= warmup:
                        samples[route].append(time.perf_counter() - start)
            for route in routes:
                times[route][size] = statistics.median(samples[route])
    finally:
        for q, offset in saved.items():
            plan.nodes[q].layer.logit_offset.assign(offset)
    return times
