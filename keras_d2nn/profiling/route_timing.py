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

import math
import statistics
import time
from collections.abc import Callable
from typing import TYPE_CHECKING
from typing import Any

import numpy as np
import tensorflow as tf

from keras_d2nn.export import litert
from keras_d2nn.profiling.random_inputs import random_array

if TYPE_CHECKING:
    from keras_d2nn.graph.plan import Plan

# A round times at least this many batches of one route back to back,
# and, once the warm-up rounds have measured a call, enough for the round
# to last MIN_ROUND_SECONDS, cycling through STREAM_BATCHES distinct random
# batches: a stream, as served. Rounds of 8 calls of 10 microseconds
# (LiteRT, batch 1) measured mostly the wake-up after the previous round.
CALLS_PER_ROUND = 8
MIN_ROUND_SECONDS = 0.02
STREAM_BATCHES = 4

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


def forcing_offsets(plan: Plan, actions: dict[str, int]) -> dict:
    """`{controller: float32 logit offsets}` whose argmax is
    `actions[controller]` whatever the controller's inputs.

    Example: `forcing_offsets(model.plan, {"gate": 1})  # {"gate": [0, 1e4]}`.
    """
    offsets = {}
    for q, action in actions.items():
        offset = np.zeros(len(plan.nodes[q].actions), np.float32)
        offset[action] = FORCING_OFFSET
        offsets[q] = offset
    return offsets


def force(plan: Plan, actions: dict[str, int]) -> None:
    """Sets each controller's `logit_offset` to `forcing_offsets`."""
    for q, offset in forcing_offsets(plan, actions).items():
        controller: Any = plan.nodes[q].layer  # a Q-node always has one
        controller.logit_offset.assign(offset)


def random_model_inputs(model: Any, batch_size: int, rng) -> list:
    """Random arrays of the model's inputs, in `model.input_names` order."""
    return [
        random_array(model.plan.specs[name], batch_size, rng, uniform=True)
        for name in model.input_names
    ]


def _serving_fn(model: Any) -> Callable[..., Any]:
    """The model's inference call on positional inputs, as served."""
    names = list(model.input_names)

    def serve(*inputs):
        fed = inputs[0] if len(inputs) == 1 else dict(zip(names, inputs))
        return model(fed, training=False)

    return serve


def _tf_cpu_runner(model: Any, batches: list) -> Callable[[int], Any]:
    """`run(calls)`: that many calls of the model, as a traced
    `tf.function`, back to back on `batches` (each a list of input
    arrays) in turn; the offsets are variables, so every route runs the
    same trace."""
    compiled = tf.function(_serving_fn(model))
    with tf.device("/CPU:0"):
        tensors = [[tf.constant(a) for a in batch] for batch in batches]

    def run(calls):
        with tf.device("/CPU:0"):
            for i in range(calls):
                outputs = compiled(*tensors[i % len(tensors)])
                # The first output read back: the call has finished.
                tf.nest.flatten(outputs)[0].numpy()

    return run


def _litert_runner(model: Any, batches: list) -> Callable[[int], Any]:
    """`run(calls)`: that many invocations, back to back, of the model
    converted with the current offsets (LiteRT freezes them as
    constants), one thread, each fed the next of `batches`. The loop is
    as lean as a serving loop in Python: at batch 1 a small model takes
    about 10 microseconds, and a function call more per invocation
    showed as 4 (+40% on the cascade's cheapest route)."""
    specs = [tf.TensorSpec(a.shape, a.dtype) for a in batches[0]]
    content = litert.convert([model], _serving_fn(model), specs)
    interpreter = litert.interpreter(content, num_threads=1)
    details = interpreter.get_input_details()
    feeds = [
        [(d["index"], a.astype(d["dtype"])) for d, a in zip(details, batch)]
        for batch in batches
    ]
    set_tensor, invoke = interpreter.set_tensor, interpreter.invoke

    def run(calls):
        for i in range(calls):
            for index, array in feeds[i % len(feeds)]:
                set_tensor(index, array)
            invoke()

    return run


def time_routes(
    model: Any,
    runtime: str,
    batch_sizes: tuple[int, ...],
    repeats: int,
    warmup: int,
    rng,
) -> dict[tuple[str, ...], dict[int, float]]:
    """`{route: {batch size: seconds per batch}}` of the routed model with
    every example forced down each of its distinct routes.

    Timed as a server runs: in each of `warmup + repeats` rounds, each
    route in turn serves batches back to back (distinct random batches;
    `CALLS_PER_ROUND`, or as many as fill `MIN_ROUND_SECONDS` after the
    warm-up), and the mean time per batch of the round is a sample; the
    median of the `repeats` samples is kept. Single calls, each after
    another route's, ran the cascade's cheapest route 30% slower and its
    full route 8% faster than a stream of batches does.

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
            batches = [
                random_model_inputs(model, size, rng)
                for _ in range(STREAM_BATCHES)
            ]
            # TF: one traced function for every route (the offsets are
            # variables, forced before each round); LiteRT freezes them:
            # one conversion per route.
            frozen = runtime == "litert"
            if frozen:
                runners = {}
                for route, index in routes.items():
                    force(plan, joint_actions(plan, index))
                    runners[route] = _litert_runner(model, batches)
            else:
                runners = dict.fromkeys(routes, _tf_cpu_runner(model, batches))
            samples: dict[tuple[str, ...], list[float]] = {
                r: [] for r in routes
            }
            calls = dict.fromkeys(routes, CALLS_PER_ROUND)
            for round_ in range(warmup + repeats):
                for route, index in routes.items():
                    if not frozen:
                        force(plan, joint_actions(plan, index))
                    start = time.perf_counter()
                    runners[route](calls[route])
                    elapsed = time.perf_counter() - start
                    if round_ >= warmup:
                        samples[route].append(elapsed / calls[route])
                    else:
                        per_call = elapsed / calls[route]
                        calls[route] = max(
                            CALLS_PER_ROUND,
                            math.ceil(MIN_ROUND_SECONDS / max(per_call, 1e-9)),
                        )
            for route in routes:
                times[route][size] = statistics.median(samples[route])
    finally:
        for q, offset in saved.items():
            plan.nodes[q].layer.logit_offset.assign(offset)
    return times
