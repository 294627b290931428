"""Baselines: measurement, static networks, threshold exit, random routing
(their static routes: tests/export/test_static_network.py)."""

import keras
import numpy as np
import pytest

from keras_d2nn import architectures
from keras_d2nn.experiments import baselines

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def compile_model(model):
    model.compile("adam", LOSS, metrics=["accuracy"], cost_weight=0.1)


@pytest.fixture(scope="module")
def trained_high_low(fashion_mnist):
    x_train, y_train, x_test, y_test = fashion_mnist
    keras.utils.set_random_seed(0)
    model = architectures.high_low()
    compile_model(model)
    model.fit(
        x_train[:3000], y_train[:3000], epochs=1, batch_size=64, verbose=0
    )
    return model, x_test[:1000], y_test[:1000]


def test_measure_matches_a_hand_count(trained_high_low):
    model, x, y = trained_high_low
    accuracy, flops, decisions = baselines.measure(model, x, y)
    predicted = model.predict(x, verbose=0).argmax(axis=-1)
    assert accuracy == pytest.approx(np.mean(predicted == y))
    plan = model.plan
    cheap = plan.flops["low"] + plan.flops["low_head"] + plan.flops["gate"]
    expected = cheap + plan.flops["high"] * np.mean(decisions["gate"] == 1)
    assert flops == pytest.approx(expected, rel=1e-6)
    _, static_flops, _ = baselines.measure(
        model,
        x,
        y,
        {"gate": np.ones(len(x), np.int32)},
        count_controllers=False,
    )
    assert static_flops == pytest.approx(model.full_flops - plan.flops["gate"])


def test_threshold_exit_sweeps_from_all_to_no_exits(trained_high_low):
    model, x, y = trained_high_low
    points = baselines.threshold_exit_curve(model, x, y)
    rates = [p.details["exit_rate"] for p in points]
    assert rates[0] == 1.0 and rates[-1] == 0.0
    assert all(a >= b for a, b in zip(rates, rates[1:]))
    plan = model.plan
    cheap = plan.flops["low"] + plan.flops["low_head"]
    assert points[0].mean_flops == pytest.approx(cheap)
    assert points[-1].mean_flops == pytest.approx(cheap + plan.flops["high"])
    # Without exits the prediction is the high network's, as forced.
    accuracy, _, _ = baselines.measure(
        model, x, y, {"gate": np.ones(len(x), np.int32)}
    )
    assert points[-1].test_accuracy == pytest.approx(accuracy)


def test_threshold_at_a_cost_is_the_sweep_point_nearest_that_cost(
    trained_high_low,
):
    model, x, y = trained_high_low
    plan = model.plan
    cheap = plan.flops["low"] + plan.flops["low_head"]
    target = cheap + 0.3 * plan.flops["high"]  # 30% continue
    point = baselines.threshold_exit_at_cost(model, x, y, target)
    # 1,000 examples: one more continuing moves the cost by high / 1000.
    assert abs(point.mean_flops - target) <= 2 * plan.flops["high"] / 1000
    assert point.details["exit_rate"] == pytest.approx(0.7, abs=0.002)
    [again] = baselines.threshold_exit_curve(
        model, x, y, [point.details["threshold"]]
    )
    assert again.test_accuracy == point.test_accuracy
    assert again.mean_flops == point.mean_flops
    assert (
        baselines.threshold_exit_at_cost(architectures.chain(), x, y, 1) is None
    )


def test_threshold_exit_needs_declared_exits(trained_high_low):
    _, x, y = trained_high_low
    assert baselines.threshold_exit_curve(architectures.chain(), x, y) == []


def test_action_rates_ignore_examples_a_controller_skipped():
    model = architectures.cascade()
    decisions = {
        "exit1": np.array([0, 1, 1, 1]),
        "exit2": np.array([-1, 0, 1, 1]),
    }
    rates = baselines.action_rates(model, decisions)
    assert rates == {"exit1": [0.25, 0.75], "exit2": [1 / 3, 2 / 3]}


def test_static_and_random_baselines_train_and_measure(fashion_mnist):
    x_train, y_train, x_test, y_test = fashion_mnist
    import tensorflow as tf

    train = tf.data.Dataset.from_tensor_slices(
        (x_train[:512], y_train[:512])
    ).batch(128)
    x, y = x_test[:500], y_test[:500]
    statics, full = baselines.static_baselines(
        architectures.high_low, train, x, y, 1, compile_model, log=None
    )
    assert full.routing == {"gate": ("constant", 1)}
    assert [p.name for p in statics] == ["static gate=stop", "static gate=high"]
    assert statics[0].mean_flops < statics[1].mean_flops
    point = baselines.random_routing_baseline(
        architectures.high_low,
        {"gate": [0.75, 0.25]},
        train,
        x,
        y,
        1,
        compile_model,
    )
    plan = architectures.high_low().plan
    cheap = plan.flops["low"] + plan.flops["low_head"] + plan.flops["gate"]
    expected = cheap + 0.25 * plan.flops["high"]
    assert point.mean_flops == pytest.approx(expected, rel=0.15)
    assert point.kind == "random"
