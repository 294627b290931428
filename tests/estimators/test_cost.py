"""`CostMeasure`: the reward charges FLOPs by default and predicted
milliseconds with a latency profile, computed here by hand on a trace
whose decisions are forced."""

import numpy as np
import pytest

from keras_d2nn.estimators.cost import CostMeasure
from keras_d2nn.estimators.cost import check_cost
from keras_d2nn.estimators.objective import RewardSettings
from keras_d2nn.profiling import LatencyProfile
from keras_d2nn.testing import small_high_low
from keras_d2nn.testing import toy_data

LOW = {"low": 0.5, "low_head": 0.25, "gate": 0.25}
# The same graph, the high network very cheap or very expensive.
CHEAP_HIGH = LatencyProfile({**LOW, "high": 0.1})
DEAR_HIGH = LatencyProfile({**LOW, "high": 9.0})


def forced_trace(model, n=8):
    """A trace whose gate stops for even examples and runs high for odd
    ones; returns it, the labels and the mask of examples that ran high."""
    x, y = toy_data(n)
    stop = model.plan.nodes["gate"].actions.index("stop")
    forced = np.where(np.arange(n) % 2 == 0, stop, 1 - stop).astype("int32")
    return model.trace(x, decisions={"gate": forced}), y, forced != stop


def hand_fraction(profile, high):
    full = profile.full_ms()
    low = sum(LOW.values())
    return np.where(high, full, low) / full


@pytest.mark.parametrize("profile", [CHEAP_HIGH, DEAR_HIGH])
def test_the_reward_charges_the_latency_fraction(profile):
    model = small_high_low()
    trace, y, high = forced_trace(model)
    measure = CostMeasure.latency(model.plan, profile)
    settings = RewardSettings(
        full_flops=model.full_flops, cost_weight=0.5, cost=measure
    )
    flop_settings = RewardSettings(full_flops=model.full_flops, cost_weight=0)
    task = flop_settings.reward(trace, y).numpy()  # the task reward alone
    fraction = hand_fraction(profile, high)
    np.testing.assert_allclose(
        settings.cost_fraction(trace).numpy(), fraction, rtol=1e-6
    )
    np.testing.assert_allclose(
        settings.reward(trace, y).numpy(), task - 0.5 * fraction, rtol=1e-6
    )


def test_fixed_and_base_costs_are_shared_by_the_batch_in_the_reward():
    # Measured at batch 4: the base 2 ms and high's fixed 0.8 ms per batch
    # are 0.5 and 0.2 ms per example.
    profile = LatencyProfile(
        {**LOW, "high": 3.0},
        batch_size=4,
        node_fixed_ms={"high": 0.8},
        base_ms=2.0,
    )
    model = small_high_low()
    trace, _, high = forced_trace(model)
    measure = CostMeasure.latency(model.plan, profile)
    low = sum(LOW.values())
    expected = 0.5 + low + np.where(high, 3.0 + 0.2, 0.0)
    np.testing.assert_allclose(
        measure.executed(trace).numpy(), expected, rtol=1e-6
    )
    assert measure.full == pytest.approx(0.5 + low + 3.2)
    np.testing.assert_allclose(
        measure.fraction(trace).numpy(), expected / (0.5 + low + 3.2)
    )


def test_the_two_profiles_price_the_same_decisions_differently():
    model = small_high_low()
    trace, _, high = forced_trace(model)
    cheap = CostMeasure.latency(model.plan, CHEAP_HIGH).fraction(trace)
    dear = CostMeasure.latency(model.plan, DEAR_HIGH).fraction(trace)
    # Running high costs 1 either way; stopping is 0.92 of a network whose
    # high branch is cheap, and 0.1 of one whose high branch is dear.
    np.testing.assert_allclose(cheap.numpy()[~high], 1.0 / 1.1, rtol=1e-6)
    np.testing.assert_allclose(dear.numpy()[~high], 1.0 / 10.0, rtol=1e-6)
    np.testing.assert_allclose(cheap.numpy()[high], 1.0)


def test_flops_are_the_engine_count_and_the_default():
    model = small_high_low()
    trace, y, _ = forced_trace(model)
    measure = CostMeasure.flops(model.plan)
    assert (measure.kind, measure.unit) == ("flops", "FLOPs")
    np.testing.assert_array_equal(measure.executed(trace), trace.executed_flops)
    np.testing.assert_allclose(measure.route_costs, model.plan.route_flops)
    default = RewardSettings(full_flops=model.full_flops, cost_weight=0.3)
    explicit = RewardSettings(
        full_flops=model.full_flops, cost_weight=0.3, cost=measure
    )
    np.testing.assert_allclose(
        default.reward(trace, y), explicit.reward(trace, y)
    )


def test_the_relaxed_latency_equals_the_hard_one_in_value():
    model = small_high_low()
    x, _ = toy_data(8)
    trace = model.trace(
        x, training=True, mode="masked", straight_through={"gate": 1.0}
    )
    measure = CostMeasure.latency(model.plan, DEAR_HIGH)
    np.testing.assert_allclose(
        measure.soft_executed(trace), measure.executed(trace), rtol=1e-6
    )


@pytest.mark.parametrize(
    "cost, profile, message",
    [
        ("time", None, r"`cost` should be one of .*cost='time'"),
        ("latency", None, r"cost='latency' needs a `latency_profile`"),
        ("flops", CHEAP_HIGH, r"used only with cost='latency'"),
    ],
)
def test_check_cost(cost, profile, message):
    with pytest.raises(ValueError, match=message):
        check_cost(cost, profile)


def test_latency_needs_a_profile_object():
    with pytest.raises(ValueError, match="should be a keras_d2nn.profiling"):
        CostMeasure.latency(small_high_low().plan, {"low": 1.0})
