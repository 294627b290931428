"""Timing a D2NN's nodes on TensorFlow's CPU or in LiteRT.

First each node's layer runs alone on random inputs of its parents'
output shapes, at the batch size asked for: a few warm-up calls, then the
median of `repeats` timed calls, divided by the batch size. On TF CPU the
time of calling a `tf.function` from Python (measured on a function that
only passes the inputs on) is subtracted: inside the model's graph a node
does not pay it.

Nodes alone leave out what the routed graph adds (the model's call,
each conditional node's `tf.cond`, gather and scatter) and what the
runtime overlaps: on the cascade they predicted its cheap routes at half
their measured time. So by default the routed model itself is then timed
on each of its routes, at the batch size and at batch 1
(`route_timing`), and the profile is fitted to those times
(`route_fit`): node costs in context, a fixed cost per batch for each
node, and a base cost per batch.

Timings are noisy: profile on the machine, runtime and batch size you
will serve on, with nothing else running, and save the profile
(`LatencyProfile.save`) rather than measuring in every run.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from collections.abc import Sequence
from typing import TYPE_CHECKING
from typing import Any

import numpy as np
import tensorflow as tf

from keras_d2nn.export import litert
from keras_d2nn.graph.latency_profile import LatencyProfile
from keras_d2nn.graph.latency_profile import _check_runtime
from keras_d2nn.profiling import route_fit
from keras_d2nn.profiling import route_timing
from keras_d2nn.profiling.random_inputs import random_array

if TYPE_CHECKING:
    from keras_d2nn.graph.plan import Node
    from keras_d2nn.graph.plan import Plan

# The batch each runtime is usually served at: TF Serving batches
# requests, a phone runs one image at a time.
DEFAULT_BATCH_SIZES = {"tf_cpu": 64, "litert": 1}


def profile_latency(
    model: Any,
    runtime: str = "tf_cpu",
    batch_size: int | None = None,
    repeats: int = 20,
    warmup: int = 3,
    seed: int = 0,
    routes: bool = True,
    max_routes: int = 64,
) -> LatencyProfile:
    """Measures each node's milliseconds per example on `runtime`.

    Args:
        model: a `D2NNModel` (or anything with a `plan`).
        runtime: `"tf_cpu"` (each layer, then the model, as a
            `tf.function` on the CPU) or `"litert"` (each layer, then the
            model, converted to LiteRT with builtin ops only and run in
            its interpreter with one thread).
        batch_size: examples per timed call; default 64 for `"tf_cpu"`,
            1 for `"litert"`.
        repeats: timed calls per node, and per route and batch size
            (>= 1); the median is kept.
        warmup: untimed calls first (>= 0): tracing, allocation, caches.
        seed: of the random inputs.
        routes: also time the routed model on each of its distinct routes
            (every example forced down it) and fit the profile to those
            times (recommended: what routing costs is then in it); False
            keeps each node's time alone.
        max_routes: with `routes`, refuse graphs with more distinct
            routes than this (each is timed `repeats` times per batch
            size, and on LiteRT converted once).

    Returns:
        A `LatencyProfile` of every node with a layer (controllers
        included); nodes without one cost 0.

    Example:

    ```python
    profile = keras_d2nn.profiling.profile_latency(
        model, runtime="tf_cpu", batch_size=16, repeats=3)
    sorted(profile.node_ms)
    # ["gate", "gate_features", "high", "low", "low_head"]
    model.compile("adam", loss, cost="latency", latency_profile=profile)
    ```
    """
    _check_runtime(runtime)
    if batch_size is None:
        batch_size = DEFAULT_BATCH_SIZES[runtime]
    for name, value, least in (
        ("batch_size", batch_size, 1),
        ("repeats", repeats, 1),
        ("warmup", warmup, 0),
        ("max_routes", max_routes, 1),
    ):
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, np.integer))
            or value < least
        ):
            raise ValueError(
                f"`{name}` should be an integer >= {least}. "
                f"Received: {name}={value!r}"
            )
    routes = routes and bool(model.plan.controllers)
    if routes:
        count = len(route_timing.distinct_routes(model.plan))
        if count > max_routes:
            raise ValueError(
                f"The graph has {count} distinct routes, more than "
                f"max_routes={max_routes}: timing each would take long. "
                "Raise `max_routes`, or pass routes=False to time the "
                "nodes alone."
            )
    time_call = _TIMERS[runtime]
    rng = np.random.default_rng(seed)
    node_ms = {}
    for node in model.plan.order:
        if node.layer is None:
            continue  # inputs, dummies, plain merges: no computation
        inputs = _random_inputs(model.plan, node, batch_size, rng)
        seconds = time_call(_node_fn(node), node.layer, inputs, repeats, warmup)
        node_ms[node.name] = 1000.0 * seconds / batch_size
    if not routes:
        return LatencyProfile(node_ms, runtime=runtime, batch_size=batch_size)
    sizes = (1, batch_size) if batch_size > 1 else (1,)
    seconds_per_route = route_timing.time_routes(
        model, runtime, sizes, repeats, warmup, rng
    )
    fitted_ms, fixed_ms, base_ms = route_fit.fit_to_routes(
        seconds_per_route, node_ms, batch_size
    )
    return LatencyProfile(
        fitted_ms,
        runtime=runtime,
        batch_size=batch_size,
        node_fixed_ms=fixed_ms,
        base_ms=base_ms,
    )


def _node_fn(node: Node) -> Callable[..., Any]:
    """The node's computation as the engine calls it, in inference mode."""
    layer = node.layer

    def fn(*args):
        return layer(args[0] if len(args) == 1 else list(args), training=False)

    return fn


def _random_inputs(plan: Plan, node: Node, batch_size: int, rng) -> list:
    """Random arrays of the node's parents' output shapes and dtypes."""
    arrays = []
    for parent in node.inputs:
        spec = plan.specs[parent]
        if spec is None:
            raise ValueError(
                f"Cannot profile node '{node.name}': its input '{parent}' "
                "has no shape (a dummy without inputs)."
            )
        shape = (batch_size, *spec.shape[1:])
        if any(d is None for d in shape):
            raise ValueError(
                f"Cannot profile node '{node.name}': its input '{parent}' "
                f"has an unknown dimension, shape {tuple(spec.shape)}."
            )
        arrays.append(random_array(spec, batch_size, rng))
    return arrays


def _median_seconds(call: Callable[[], Any], repeats: int, warmup: int):
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _time_tf_cpu(fn, layer, inputs: Sequence[np.ndarray], repeats, warmup):
    """The node's time in a graph: its function's call, minus the call of
    a function that only passes the same inputs on. Calling a
    `tf.function` from Python costs a fixed fraction of a millisecond,
    which a node inside the model's one graph does not pay: left in, it
    made the cascade's small heads and exits look as slow as a
    convolution stage, and the profile over-predict routes with many
    nodes (`benchmarks/latency_cost.py`)."""
    with tf.device("/CPU:0"):
        tensors = [tf.constant(a) for a in inputs]
        compiled = tf.function(fn)
        passed_on = tf.function(lambda *xs: [tf.identity(x) for x in xs])
        compiled(*tensors)  # traced before timing, whatever `warmup`
        passed_on(*tensors)
        total = _median_seconds(lambda: compiled(*tensors), repeats, warmup)
        call = _median_seconds(lambda: passed_on(*tensors), repeats, warmup)
        return max(total - call, 0.0)


def _time_litert(fn, layer, inputs: Sequence[np.ndarray], repeats, warmup):
    content = litert.convert(
        [layer], fn, [tf.TensorSpec(a.shape, a.dtype) for a in inputs]
    )
    interpreter = litert.interpreter(content, num_threads=1)
    # Inputs are random: any assignment of arrays to matching tensors
    # times the same computation.
    unused = list(inputs)
    for detail in interpreter.get_input_details():
        shape = tuple(detail["shape"])
        match = next(i for i, a in enumerate(unused) if tuple(a.shape) == shape)
        interpreter.set_tensor(
            detail["index"], unused.pop(match).astype(detail["dtype"])
        )
    return _median_seconds(interpreter.invoke, repeats, warmup)


_TIMERS = {"tf_cpu": _time_tf_cpu, "litert": _time_litert}
