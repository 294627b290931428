"""Budget calibration: a price on cost, set after training, that lands the
greedy decisions on the budget, saved and exported with the model."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_d2nn
from keras_d2nn import architectures
from keras_d2nn.models import calibration
from keras_d2nn.testing import LOSS
from keras_d2nn.testing import run_export_test
from keras_d2nn.testing import small_high_low
from keras_d2nn.testing import toy_data

# small_high_low: low 112 + low_head 51 + gate 34 FLOPs; high 1283 of 1480.
HIGH = 1283 / 1480


def trained_toy():
    model = small_high_low()
    model.compile("adam", LOSS, cost_weight=0.05)
    x, y = toy_data(512, seed=0)
    model.fit(x, y, epochs=1, batch_size=64, verbose=0)
    return model


def gate_logits(model, x):
    """The gate network's raw logits, without any offset."""
    low = model.plan.nodes["low"].layer(x)
    gate = model.plan.nodes["gate"].layer
    return gate.network(low).numpy()


def test_committed_costs_are_the_flops_each_action_commits_to():
    model = small_high_low()
    costs = calibration.committed_costs(model.plan)
    np.testing.assert_allclose(costs["gate"], [0.0, HIGH], rtol=1e-6)


def test_a_cascade_exit_commits_to_the_cheapest_route_through_it():
    model = architectures.cascade(gate_input="logits")
    flops, full = model.plan.flops, model.plan.full_flops
    costs = calibration.committed_costs(model.plan)
    # exit1 continue: at least stage 2, its head and the second exit.
    after_exit1 = flops["stage2"] + flops["head2"] + flops["exit2"]
    np.testing.assert_allclose(
        costs["exit1"], [0.0, after_exit1 / full], rtol=1e-6
    )
    np.testing.assert_allclose(
        costs["exit2"],
        [0.0, (flops["stage3"] + flops["head3"]) / full],
        rtol=1e-6,
    )


@pytest.mark.parametrize("target", [0.3, 0.6])
def test_calibration_lands_on_the_budget_and_the_model_keeps_it(target):
    model = trained_toy()
    x, _ = toy_data(400, seed=1)
    result = model.calibrate_budget(x, target_cost=target)
    # 400 examples: each one sent high moves the cost by HIGH / 400.
    assert abs(result.cost - target) <= HIGH / 400 + 1e-6
    assert result.target_cost == target
    assert model.route(x).mean_cost_fraction == pytest.approx(result.cost)


def test_the_price_takes_the_decisions_of_value_logits_minus_the_cost():
    model = trained_toy()
    x, _ = toy_data(200, seed=2)
    result = model.calibrate_budget(x, target_cost=0.4)
    logits = gate_logits(model, x)
    expected = np.argmax(logits - result.delta * np.array([0.0, HIGH]), axis=-1)
    np.testing.assert_array_equal(model.route(x).decisions["gate"], expected)


def test_a_bernoulli_gate_gets_one_offset():
    model = architectures.high_low(
        controller=keras_d2nn.Controller(2, distribution="bernoulli"),
        gate_input="features",
    )
    offsets = calibration.logit_offsets(model.plan, 2.0)
    full, high = model.plan.full_flops, model.plan.flops["high"]
    np.testing.assert_allclose(offsets["gate"], [-2.0 * high / full], rtol=1e-5)


def test_price_zero_restores_the_trained_decisions():
    model = trained_toy()
    x, _ = toy_data(200, seed=3)
    before = model.route(x).decisions["gate"]
    model.calibrate_budget(x, target_cost=0.2)
    calibration.set_price(model, 0.0)
    np.testing.assert_array_equal(model.route(x).decisions["gate"], before)


def test_the_price_is_saved_and_exported(tmp_path):
    model = trained_toy()
    x, _ = toy_data(64, seed=4)
    model.calibrate_budget(x, target_cost=0.3)
    path = tmp_path / "calibrated.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(
        loaded.plan.nodes["gate"].layer.logit_offset.numpy(),
        model.plan.nodes["gate"].layer.logit_offset.numpy(),
    )
    np.testing.assert_array_equal(
        loaded.route(x).decisions["gate"], model.route(x).decisions["gate"]
    )
    runs = run_export_test(model, "saved_model", inputs=x)
    decisions = runs["saved_model"].outputs["decision_gate"]
    np.testing.assert_array_equal(
        np.asarray(decisions), model.route(x).decisions["gate"]
    )


@pytest.mark.parametrize(
    "target, message",
    [
        (0.01, "at least the cost of the graph's cheapest route"),
        (0.0, "fraction of the full network's FLOPs, in (0, 1]"),
        (1.5, "Received: target_cost=1.5"),
    ],
)
def test_an_unreachable_or_invalid_budget_is_refused(target, message):
    model = small_high_low()
    x, _ = toy_data(16)
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        model.calibrate_budget(x, target_cost=target)


def test_controllers_of_earlier_files_load_with_no_offset():
    controller = keras_d2nn.Controller(2)
    controller(tf.zeros([1, 4]))
    # What 0.1.0 stored: epsilon and temperature, no offset.
    store = {"0": np.float32(0.1), "1": np.float32(2.0)}
    controller.load_own_variables(store)
    assert float(controller.epsilon.numpy()) == pytest.approx(0.1)
    assert float(controller.temperature.numpy()) == pytest.approx(2.0)
    np.testing.assert_array_equal(controller.logit_offset.numpy(), [0, 0])
