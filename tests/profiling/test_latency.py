"""`profile_latency`: a time for every node that computes. No timed
assertion beyond orders of magnitude apart (a 1,000x FLOP gap)."""

import pytest

import keras_d2nn
from keras_d2nn.profiling import LatencyProfile
from keras_d2nn.profiling import profile_latency


@pytest.fixture(scope="module")
def high_low():
    return keras_d2nn.architectures.high_low()


def test_tf_cpu_profile_times_every_node_with_a_layer(high_low):
    profile = profile_latency(high_low, batch_size=32, repeats=5, warmup=1)
    assert isinstance(profile, LatencyProfile)
    assert (profile.runtime, profile.batch_size) == ("tf_cpu", 32)
    computing = {
        n.name for n in high_low.plan.order if high_low.plan.flops[n.name]
    }
    assert set(profile.node_ms) == computing
    assert all(profile.node_ms[n] > 0 for n in computing)
    profile.check(high_low.plan)
    # The high network has 13,000 times the FLOPs of the low head.
    assert profile.node_ms["high"] > profile.node_ms["low_head"]


@pytest.mark.slow
def test_litert_profile_times_every_node_with_a_layer(high_low):
    profile = profile_latency(high_low, runtime="litert", repeats=5)
    assert (profile.runtime, profile.batch_size) == ("litert", 1)
    assert set(profile.node_ms) == {"low", "low_head", "gate", "high"}
    assert all(ms > 0 for ms in profile.node_ms.values())
    assert profile.node_ms["high"] > profile.node_ms["low_head"]


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


def test_the_default_profile_is_fitted_to_the_routed_model(high_low):
    profile = profile_latency(high_low, batch_size=16, repeats=3, warmup=1)
    alone = profile_latency(
        high_low, batch_size=16, repeats=3, warmup=1, routes=False
    )
    # Calling the model costs every batch something whatever its route;
    # nodes timed alone know nothing of it.
    assert profile.base_ms > 0
    assert (alone.base_ms, alone.node_fixed_ms) == (0.0, {})
    assert set(profile.node_ms) == set(alone.node_ms)
    profile.check(high_low.plan)


def test_too_many_routes_are_refused(high_low):
    with pytest.raises(ValueError, match="2 distinct routes, more than"):
        profile_latency(high_low, batch_size=4, repeats=1, max_routes=1)
