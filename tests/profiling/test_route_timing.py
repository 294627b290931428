"""`route_timing`: the routes a graph has, forcing each one through the
controllers' offsets, and timing the routed model (no assertion on a
time beyond a positive one for every route and batch size: speed is for
the benchmarks)."""

import numpy as np

import keras_d2nn
from keras_d2nn.profiling import route_timing
from keras_d2nn.testing import small_high_low
from keras_d2nn.testing import toy_data


def test_the_high_low_has_two_routes_the_gate_tells_apart():
    plan = small_high_low().plan
    routes = route_timing.distinct_routes(plan)
    assert sorted(routes, key=len) == [
        ("low", "low_head", "gate"),
        ("low", "low_head", "gate", "high"),
    ]
    for route, index in routes.items():
        action = plan.nodes["gate"].actions[
            route_timing.joint_actions(plan, index)["gate"]
        ]
        assert (action == "high") == ("high" in route)


def test_joint_actions_invert_the_plans_joint_decision():
    plan = keras_d2nn.architectures.cascade(gate_input="logits").plan
    for index in range(len(plan.route_flops)):
        actions = route_timing.joint_actions(plan, index)
        decisions = {q: np.array([a]) for q, a in actions.items()}
        assert int(plan.joint_decision(decisions)[0]) == index


def test_forcing_sends_every_example_down_the_route():
    model = small_high_low()
    x, _ = toy_data(32)
    for route, index in route_timing.distinct_routes(model.plan).items():
        route_timing.force(
            model.plan, route_timing.joint_actions(model.plan, index)
        )
        ran_high = model.route(x).executed["high"]
        assert ran_high.all() == ("high" in route)
        assert ran_high.any() == ("high" in route)


def test_timing_every_route_puts_the_offsets_back():
    model = keras_d2nn.architectures.high_low(gate_input="features")
    offset = model.plan.nodes["gate"].layer.logit_offset
    offset.assign([0.25, -0.5])
    times = route_timing.time_routes(
        model,
        "tf_cpu",
        (1, 8),
        repeats=2,
        warmup=1,
        rng=np.random.default_rng(0),
    )
    np.testing.assert_array_equal(offset.numpy(), [0.25, -0.5])
    assert set(times) == set(route_timing.distinct_routes(model.plan))
    assert all(
        set(sizes) == {1, 8} and min(sizes.values()) > 0
        for sizes in times.values()
    )
