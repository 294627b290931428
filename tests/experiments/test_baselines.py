"""Baselines: measurement, static networks, threshold exit, random routing
(their static routes: tests/export/test_static_network.py)."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_d2nn import architectures
from keras_d2nn.experiments import baselines

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def compile_model(model):
    model.compile("adam", LOSS, metrics=["accuracy"], cost_weight=0.1)


def synthetic_images(n, seed):
    """`(x, y)`: `n` noisy 28x28 images whose class (0..9) is a bright
    band of two rows at rows 4 + 2 * class: a task the high-low learns in
    one epoch (about 0.9 accuracy), without the Fashion-MNIST files."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, n).astype("int32")
    x = 0.5 * rng.random((n, 28, 28, 1)).astype("float32")
    for k in range(10):
        x[y == k, 2 * k + 4 : 2 * k + 6] += 0.5
    return x, y


def seeded_high_low():
    """A high-low whose weights and routing seed are the same each call."""
    keras.utils.set_random_seed(0)
    return architectures.high_low(gate_input="features")


@pytest.fixture(scope="module")
def trained_high_low():
    x_train, y_train = synthetic_images(3000, seed=0)
    x_test, y_test = synthetic_images(1000, seed=1)
    model = seeded_high_low()
    compile_model(model)
    model.fit(x_train, y_train, epochs=1, batch_size=64, verbose=0)
    return model, x_test, y_test


def binomial_bounds(n, p, failure):
    """`(low, high)`: a Binomial(n, p) count falls below `low` or above
    `high` with probability at most `failure` (exact tails, half each)."""
    pmf = np.array(
        [math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(n + 1)]
    )
    below = np.cumsum(pmf)  # P(X <= k)
    above = np.cumsum(pmf[::-1])[::-1]  # P(X >= k)
    low = int(np.sum(below <= failure / 2))  # P(X < low) <= failure / 2
    high = int(np.sum(above > failure / 2)) - 1  # P(X > high) <= ...
    return low, high


def test_binomial_bounds_hold_their_failure_probability():
    low, high = binomial_bounds(500, 0.25, 1e-6)
    pmf = [math.comb(500, k) * 0.25**k * 0.75 ** (500 - k) for k in range(501)]
    assert sum(pmf[:low]) <= 5e-7 < sum(pmf[: low + 1])
    assert sum(pmf[high + 1 :]) <= 5e-7 < sum(pmf[high:])
    assert low < 125 < high


def test_measure_matches_a_hand_count(trained_high_low):
    model, x, y = trained_high_low
    accuracy, flops, decisions = baselines.measure(model, x, y)
    predicted = model.predict(x, verbose=0).argmax(axis=-1)
    assert accuracy == pytest.approx(np.mean(predicted == y))
    # Both branches taken: the count below weighs the high network.
    assert 0 < np.mean(decisions["gate"] == 1) < 1
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


def test_threshold_exit_needs_declared_exits(trained_high_low):
    _, x, y = trained_high_low
    chain = architectures.chain()
    with pytest.raises(ValueError, match="'chain' declares none"):
        baselines.threshold_exit_curve(chain, x, y)
    with pytest.raises(ValueError, match="needs the graph's early exits"):
        baselines.threshold_exit_at_cost(chain, x, y, 1)


def test_action_rates_ignore_examples_a_controller_skipped():
    model = architectures.cascade(gate_input="logits")
    decisions = {
        "exit1": np.array([0, 1, 1, 1]),
        "exit2": np.array([-1, 0, 1, 1]),
    }
    rates = baselines.action_rates(model, decisions)
    assert rates == {"exit1": [0.25, 0.75], "exit2": [1 / 3, 2 / 3]}


def test_static_and_random_baselines_train_and_measure():
    x_train, y_train = synthetic_images(512, seed=0)
    train = tf.data.Dataset.from_tensor_slices((x_train, y_train)).batch(128)
    n = 500
    x, y = synthetic_images(n, seed=1)
    statics, full = baselines.static_baselines(
        seeded_high_low, train, x, y, 1, compile_model, log=None
    )
    plan = architectures.high_low(gate_input="features").plan
    cheap = plan.flops["low"] + plan.flops["low_head"]
    assert full.routing == {"gate": ("constant", 1)}
    assert [p.name for p in statics] == ["static gate=stop", "static gate=high"]
    # Without the controller's FLOPs: the low path, then every module.
    assert [p.mean_flops for p in statics] == pytest.approx(
        [cheap, cheap + plan.flops["high"]], rel=1e-9
    )
    point = baselines.random_routing_baseline(
        seeded_high_low,
        {"gate": [0.75, 0.25]},
        train,
        x,
        y,
        1,
        compile_model,
    )
    assert point.kind == "random"
    assert point.details == {"rates": {"gate": [0.75, 0.25]}}
    # Each example runs the high network with probability 0.25, apart
    # from the others: `high_count` of the 500 did, a Binomial(500, 0.25)
    # count, outside these bounds with probability below 1e-6.
    with_gate = cheap + plan.flops["gate"]
    high_count = (point.mean_flops - with_gate) / plan.flops["high"] * n
    assert high_count == pytest.approx(round(high_count), abs=1e-6)
    low, high = binomial_bounds(n, 0.25, failure=1e-6)
    assert low <= round(high_count) <= high
