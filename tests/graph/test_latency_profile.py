"""`LatencyProfile`: predicted milliseconds of routes, JSON, bad inputs."""

import numpy as np
import pytest

from keras_d2nn.profiling import LatencyProfile
from keras_d2nn.testing import small_high_low
from keras_d2nn.testing import toy_data

MS = {"low": 0.5, "low_head": 0.25, "gate": 0.125, "high": 4.0}
CHEAP = MS["low"] + MS["low_head"] + MS["gate"]  # gate=stop
FULL = sum(MS.values())  # gate=high: every node


def test_routes_and_full_cost_are_the_sums_of_their_nodes():
    model = small_high_low()
    profile = LatencyProfile(MS, runtime="tf_cpu", batch_size=8)
    assert profile.full_ms() == FULL
    stop = model.plan.nodes["gate"].actions.index("stop")
    route_ms = profile.route_ms(model.plan)
    assert route_ms[stop] == pytest.approx(CHEAP)
    assert route_ms[1 - stop] == pytest.approx(FULL)


def test_predict_from_decisions_is_the_mean_of_the_hand_sums():
    model = small_high_low()
    profile = LatencyProfile(MS)
    stop = model.plan.nodes["gate"].actions.index("stop")
    decisions = {"gate": np.array([stop, 1 - stop, 1 - stop, stop])}
    predicted = profile.predict(decisions, plan=model.plan)
    assert predicted == pytest.approx((2 * CHEAP + 2 * FULL) / 4)


def test_predict_from_a_trace_or_routes_reads_what_ran():
    model = small_high_low()
    profile = LatencyProfile(MS)
    x, _ = toy_data(6)
    stop = model.plan.nodes["gate"].actions.index("stop")
    forced = np.array([stop, 1 - stop] * 3, np.int32)
    trace = model.trace(x, decisions={"gate": forced})
    expected = np.where(forced == stop, CHEAP, FULL)
    np.testing.assert_allclose(
        profile.per_example({k: v.numpy() for k, v in trace.executed.items()}),
        expected,
    )
    assert profile.predict(trace) == pytest.approx(expected.mean())
    routes = model.route(x, decisions={"gate": forced})
    assert profile.predict(routes) == pytest.approx(expected.mean())


# Measured at batch 4: each batch pays 2 ms, and 0.8 ms more when any of
# its examples runs high.
FITTED = LatencyProfile(
    MS, batch_size=4, node_fixed_ms={"high": 0.8}, base_ms=2.0
)


def test_fixed_costs_are_shared_by_a_batch_that_takes_the_route():
    model = small_high_low()
    assert FITTED.example_ms("high") == pytest.approx(4.0 + 0.8 / 4)
    assert FITTED.base_example_ms() == pytest.approx(0.5)
    assert FITTED.full_ms() == pytest.approx(0.5 + FULL + 0.2)
    stop = model.plan.nodes["gate"].actions.index("stop")
    route_ms = FITTED.route_ms(model.plan)
    assert route_ms[stop] == pytest.approx(0.5 + CHEAP)
    assert route_ms[1 - stop] == pytest.approx(0.5 + FULL + 0.2)


def test_predict_pays_fixed_costs_once_per_batch_that_runs_the_node():
    model = small_high_low()
    stop = model.plan.nodes["gate"].actions.index("stop")
    high = 1 - stop
    # Batches of 4: the first runs high for one example, the second (two
    # examples, the last partial batch) for none.
    decisions = {"gate": np.array([high, stop, stop, stop, stop, stop])}
    first = 2.0 + 4 * CHEAP + 0.8 + MS["high"]
    second = 2.0 + 2 * CHEAP
    predicted = FITTED.predict(decisions, plan=model.plan)
    assert predicted == pytest.approx((first + second) / 6)
    # One batch of 6: the fixed cost is paid once, the base once.
    one_batch = (2.0 + 6 * CHEAP + 0.8 + MS["high"]) / 6
    assert FITTED.predict(
        decisions, plan=model.plan, batch_size=6
    ) == pytest.approx(one_batch)
    with pytest.raises(ValueError, match="`batch_size` should be an integer"):
        FITTED.predict(decisions, plan=model.plan, batch_size=0)
    with pytest.raises(ValueError, match="holds no example"):
        FITTED.predict({"gate": np.array([], int)}, plan=model.plan)


def test_json_round_trip(tmp_path):
    for profile in (LatencyProfile(MS, runtime="litert"), FITTED):
        path = tmp_path / "latency.json"
        profile.save(path)
        assert LatencyProfile.load(path) == profile
        assert LatencyProfile.from_config(profile.get_config()) == profile


def test_a_profile_saved_before_fixed_costs_still_loads():
    # What `get_config` wrote before fixed costs: node_ms only.
    old = {"node_ms": MS, "runtime": "tf_cpu", "batch_size": 64}
    profile = LatencyProfile.from_config(old)
    assert (profile.node_fixed_ms, profile.base_ms) == ({}, 0.0)
    assert profile.full_ms() == FULL


def test_check_accepts_a_profile_of_every_computing_node():
    LatencyProfile(MS).check(small_high_low().plan)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"runtime": "gpu"}, r"`runtime` should be one of .*runtime='gpu'"),
        ({"batch_size": 0}, r"`batch_size` should be an integer >= 1"),
        ({"node_ms": {"low": -1.0}}, r"finite number .* node_ms\['low'\]=-1"),
        ({"node_ms": {"low": float("nan")}}, r"node_ms\['low'\]=nan"),
        ({"base_ms": -0.5}, r"finite number .* base_ms=-0.5"),
        (
            {"node_fixed_ms": {"extra": 1.0}},
            r"`node_fixed_ms` names nodes \['extra'\] that `node_ms` lacks",
        ),
    ],
)
def test_bad_arguments(kwargs, message):
    arguments = {"node_ms": MS, **kwargs}
    with pytest.raises(ValueError, match=message):
        LatencyProfile(**arguments)


def test_check_names_missing_and_unknown_nodes():
    plan = small_high_low().plan
    missing = {k: v for k, v in MS.items() if k != "high"}
    with pytest.raises(ValueError, match=r"no time for the nodes \['high'\]"):
        LatencyProfile(missing).check(plan)
    with pytest.raises(ValueError, match=r"names nodes \['extra'\]"):
        LatencyProfile({**MS, "extra": 1.0}).check(plan)


def test_predict_from_decisions_needs_every_controller():
    plan = small_high_low().plan
    with pytest.raises(ValueError, match="should name every controller"):
        LatencyProfile(MS).predict({"other": np.array([0])}, plan=plan)


def test_an_all_zero_profile_is_refused():
    # Every cost fraction divides by the full network's time: with 0,
    # every route would be reported free.
    with pytest.raises(ValueError, match="positive time"):
        LatencyProfile({"low": 0.0, "gate": 0.0, "high": 0.0})
    LatencyProfile({"low": 0.0}, base_ms=0.5)  # a base time is a time
