"""`compile(cost="latency", latency_profile=...)`: training, budgets,
calibration and reports in milliseconds; FLOPs stay the default."""

import keras
import numpy as np
import pytest

from keras_d2nn.models import calibration
from keras_d2nn.profiling import LatencyProfile
from keras_d2nn.testing import LOSS
from keras_d2nn.testing import small_high_low
from keras_d2nn.testing import toy_data

MS = {"low": 0.5, "low_head": 0.25, "gate": 0.25, "high": 3.0}
CHEAP = 1.0  # low + low_head + gate: the gate stops
FULL = 4.0
PROFILE = LatencyProfile(MS, runtime="tf_cpu", batch_size=16)


def steer_gate(model, action):
    """Makes the gate take `action` for every example (as test_budget)."""
    kernel, bias = model.plan.nodes["gate"].layer.trainable_weights[:2]
    kernel.assign(np.zeros(kernel.shape, "float32"))
    index = model.plan.nodes["gate"].actions.index(action)
    bias.assign(np.where(np.arange(bias.shape[0]) == index, 20.0, -20.0))


def latency_model(**kwargs):
    model = small_high_low()
    model.compile(
        "adam", LOSS, cost="latency", latency_profile=PROFILE, **kwargs
    )
    return model


@pytest.mark.parametrize("action, ms", [("high", FULL), ("stop", CHEAP)])
def test_fit_logs_milliseconds_and_the_latency_fraction(action, ms):
    model = latency_model(target_cost=0.5)
    steer_gate(model, action)
    x, y = toy_data(128)
    logs = model.fit(x, y, epochs=1, batch_size=64, verbose=0).history
    assert logs["latency_ms"] == [pytest.approx(ms)]
    assert logs["cost"] == [pytest.approx(ms / FULL)]
    assert logs["greedy_cost"] == [pytest.approx(ms / FULL)]
    evaluated = model.evaluate(x, y, verbose=0, return_dict=True)
    assert evaluated["latency_ms"] == pytest.approx(ms)


def test_the_default_cost_is_flops_and_logs_no_milliseconds():
    model = small_high_low()
    model.compile("adam", LOSS)
    assert model.cost_measure.kind == "flops"
    x, y = toy_data(64)
    logs = model.fit(x, y, epochs=1, batch_size=64, verbose=0).history
    assert "latency_ms" not in logs
    assert model.route(x).executed_ms is None


def test_route_and_report_show_predicted_milliseconds():
    model = latency_model()
    x, y = toy_data(8)
    stop = model.plan.nodes["gate"].actions.index("stop")
    forced = np.array([stop, 1 - stop] * 4, np.int32)
    routes = model.route(x, labels=y, decisions={"gate": forced})
    expected = np.where(forced == stop, CHEAP, FULL)
    np.testing.assert_allclose(routes.executed_ms, expected)
    assert routes.mean_ms == pytest.approx(expected.mean())
    assert routes.mean_cost_fraction == pytest.approx(expected.mean() / FULL)
    # FLOPs stay FLOPs.
    assert routes.mean_flop_fraction == pytest.approx(
        routes.mean_flops / model.full_flops
    )
    lines = []
    report = model.routing_report(routes=routes, print_fn=lines.append)
    assert report["mean_ms"] == pytest.approx(expected.mean())
    by_route = {r["route"]: r["mean_ms"] for r in report["routes"]}
    assert by_route == {
        "gate=stop": pytest.approx(CHEAP),
        "gate=high": pytest.approx(FULL),
    }
    assert "mean ms" in lines[0]


def test_calibration_prices_committed_milliseconds():
    model = latency_model()
    costs = calibration.committed_costs(model.plan, model.cost_measure)
    stop = model.plan.nodes["gate"].actions.index("stop")
    assert costs["gate"][stop] == 0.0
    assert costs["gate"][1 - stop] == pytest.approx((FULL - CHEAP) / FULL)


def test_calibrate_budget_refuses_below_the_cheapest_latency():
    model = latency_model()
    x, _ = toy_data(32)
    with pytest.raises(ValueError, match=r"\(0\.25 of the full latency\)"):
        model.calibrate_budget(x, target_cost=0.1)


def test_a_budget_below_the_cheapest_route_warns_in_latency():
    with pytest.warns(UserWarning, match=r"0\.25 of the full latency"):
        latency_model(target_cost=0.1)


def test_the_cost_and_profile_survive_a_keras_file(tmp_path):
    model = latency_model(target_cost=0.5)
    x, y = toy_data(64)
    model.fit(x, y, epochs=1, batch_size=64, verbose=0)
    config = model.get_compile_config()
    assert config["cost"] == "latency"
    assert config["latency_profile"] == PROFILE.get_config()
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.cost_measure.kind == "latency"
    assert loaded.cost_measure.profile == PROFILE
    assert loaded.target_cost == 0.5
    logs = loaded.fit(x, y, epochs=1, batch_size=64, verbose=0).history
    assert "latency_ms" in logs


def test_recompiling_with_flops_drops_the_latency_metric():
    model = latency_model()
    model.compile("adam", LOSS)
    assert model.cost_measure.kind == "flops"
    assert "latency_ms" not in [m.name for m in model.metrics]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"cost": "time"}, r"`cost` should be one of .*cost='time'"),
        ({"cost": "latency"}, r"cost='latency' needs a `latency_profile`"),
        ({"latency_profile": PROFILE}, r"used only with cost='latency'"),
        (
            {
                "cost": "latency",
                "latency_profile": LatencyProfile({"low": 1.0}),
            },
            r"no time for the nodes \['low_head', 'gate', 'high'\]",
        ),
    ],
)
def test_bad_compile_arguments(kwargs, message):
    model = small_high_low()
    with pytest.raises(ValueError, match=message):
        model.compile("adam", LOSS, **kwargs)
