"""`profile_latency`: a time for every node that computes, fitted to the
routed model's times. Measured times are only checked for what the
profiler guarantees (finite, >= 0, every node); what it computes from
them is checked on injected times (a fake timer and fake route times)."""

import math

import numpy as np
import pytest

import keras_d2nn
from keras_d2nn.profiling import LatencyProfile
from keras_d2nn.profiling import latency
from keras_d2nn.profiling import profile_latency
from keras_d2nn.profiling import route_timing


@pytest.fixture(scope="module")
def high_low():
    return keras_d2nn.architectures.high_low(gate_input="features")


def computing_nodes(model):
    return {n.name for n in model.plan.order if model.plan.flops[n.name]}


def assert_a_measured_profile(profile, model):
    """What any measurement guarantees, however noisy or loaded the
    machine: a finite time >= 0 for every node that computes."""
    assert set(profile.node_ms) == computing_nodes(model)
    assert set(profile.node_fixed_ms) <= set(profile.node_ms)
    for ms in [*profile.node_ms.values(), *profile.node_fixed_ms.values()]:
        assert math.isfinite(ms) and ms >= 0
    assert math.isfinite(profile.base_ms) and profile.base_ms >= 0
    profile.check(model.plan)


def test_tf_cpu_profile_times_every_node_with_a_layer(high_low):
    profile = profile_latency(high_low, batch_size=32, repeats=5, warmup=1)
    assert isinstance(profile, LatencyProfile)
    assert (profile.runtime, profile.batch_size) == ("tf_cpu", 32)
    assert_a_measured_profile(profile, high_low)
    # The gate's offsets, pushed to force each route while timing, are
    # put back.
    np.testing.assert_array_equal(
        high_low.plan.nodes["gate"].layer.logit_offset.numpy(), [0.0, 0.0]
    )


@pytest.mark.slow
def test_litert_profile_times_every_node_with_a_layer(high_low):
    profile = profile_latency(high_low, runtime="litert", repeats=5)
    assert (profile.runtime, profile.batch_size) == ("litert", 1)
    assert set(profile.node_ms) == {"low", "low_head", "gate", "high"}
    assert_a_measured_profile(profile, high_low)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"runtime": "tpu"}, r"`runtime` should be one of .*runtime='tpu'"),
        ({"batch_size": 0}, r"`batch_size` should be an integer >= 1"),
        ({"repeats": 0}, r"`repeats` should be an integer >= 1"),
        ({"warmup": -1}, r"`warmup` should be an integer >= 0"),
    ],
)
def test_bad_arguments(high_low, kwargs, message):
    with pytest.raises(ValueError, match=message):
        profile_latency(high_low, **kwargs)


# A runtime obeying the additive model: ms per example of each node in
# the routed model, a fixed ms per batch for the high network, a base ms
# per batch. Timed alone, each node looks twice as slow (proportionally:
# the split within the group of nodes on every route is recovered).
TRUE_MS = {"low": 0.01, "low_head": 0.001, "gate": 0.002, "high": 0.05}
FIXED_MS = {"high": 0.1}
BASE_MS = 0.4
ALONE_MS = {node: 2 * ms for node, ms in TRUE_MS.items()}


@pytest.fixture
def fake_times(high_low, monkeypatch):
    """Replaces the clock's readings: each node alone takes `ALONE_MS` per
    example, each route what the additive model says. Returns the calls
    of `time_routes`."""
    names = {
        id(n.layer): n.name for n in high_low.plan.order if n.layer is not None
    }

    def time_alone(fn, layer, inputs, repeats, warmup):
        return ALONE_MS[names[id(layer)]] * len(inputs[0]) / 1000.0

    calls = []

    def time_routes(model, runtime, sizes, repeats, warmup, rng):
        calls.append((runtime, sizes, repeats, warmup))
        return {
            route: {
                size: (
                    BASE_MS
                    + sum(FIXED_MS.get(n, 0) + size * TRUE_MS[n] for n in route)
                )
                / 1000.0
                for size in sizes
            }
            for route in route_timing.distinct_routes(model.plan)
        }

    monkeypatch.setitem(latency._TIMERS, "tf_cpu", time_alone)
    monkeypatch.setattr(latency.route_timing, "time_routes", time_routes)
    return calls


def test_nodes_alone_keep_their_own_times(high_low, fake_times):
    alone = profile_latency(
        high_low, batch_size=16, repeats=3, warmup=1, routes=False
    )
    assert alone.node_ms == pytest.approx(ALONE_MS, rel=1e-12)
    assert (alone.base_ms, alone.node_fixed_ms) == (0.0, {})
    assert fake_times == []  # the routed model was not timed


def test_the_default_profile_is_fitted_to_the_routed_model(
    high_low, fake_times
):
    profile = profile_latency(high_low, batch_size=16, repeats=3, warmup=1)
    assert fake_times == [("tf_cpu", (1, 16), 3, 1)]
    # Calling the model costs every batch something whatever its route;
    # nodes timed alone know nothing of it: the fit recovers each part.
    assert profile.node_ms == pytest.approx(TRUE_MS, rel=1e-9)
    assert profile.node_fixed_ms == pytest.approx(FIXED_MS, rel=1e-9)
    assert profile.base_ms == pytest.approx(BASE_MS, rel=1e-9)
    # And it predicts each route's time at the batch size it was timed.
    for route in route_timing.distinct_routes(high_low.plan):
        ran = {n: np.full(16, n in route) for n in TRUE_MS}
        measured = BASE_MS + sum(
            FIXED_MS.get(n, 0) + 16 * TRUE_MS[n] for n in route
        )
        assert profile.predict(ran) * 16 == pytest.approx(measured, rel=1e-9)


def test_too_many_routes_are_refused(high_low):
    with pytest.raises(ValueError, match="2 distinct routes, more than"):
        profile_latency(high_low, batch_size=4, repeats=1, max_routes=1)
