"""Budgets: `compile(target_cost=...)` moves the cost weight (a Lagrange
multiplier) until the greedy decisions cost the target."""

import warnings

import keras
import numpy as np
import pytest

import keras_d2nn
from keras_d2nn import schedules
from keras_d2nn.estimators import budget as budget_lib
from keras_d2nn.testing import LOSS
from keras_d2nn.testing import routing_data
from keras_d2nn.testing import small_high_low
from keras_d2nn.testing import toy_data

# small_high_low: low 112 + low_head 51 + gate 34 FLOPs of 1480.
CHEAPEST = (112 + 51 + 34) / 1480


def steer_gate(model, action):
    """Makes the gate's greedy decision `action` for every example, by a
    bias far larger than its inputs move the logits (a few Adam steps
    leave it so)."""
    dense = model.plan.nodes["gate"].layer.trainable_weights
    kernel, bias = dense[0], dense[1]
    kernel.assign(np.zeros(kernel.shape, "float32"))
    index = model.plan.nodes["gate"].actions.index(action)
    bias.assign(np.where(np.arange(bias.shape[0]) == index, 20.0, -20.0))


def test_the_multiplier_rises_over_budget_and_falls_not_below_zero():
    model = small_high_low()
    model.compile("adam", LOSS, target_cost=0.5, budget_learning_rate=0.01)
    x, y = toy_data(256)
    # Every example runs the high network: cost 1, over the budget by 0.5
    # at each of the 4 steps.
    steer_gate(model, "high")
    history = model.fit(x, y, epochs=1, batch_size=64, verbose=0)
    assert model.cost_weight == pytest.approx(4 * 0.01 * 0.5, abs=1e-6)
    assert history.history["greedy_cost"] == [pytest.approx(1.0)]
    assert history.history["cost_weight"] == [pytest.approx(0.02, abs=1e-6)]
    # Every example stops: under the budget by 0.5 - CHEAPEST per step.
    steer_gate(model, "stop")
    history = model.fit(x, y, epochs=2, batch_size=64, verbose=0)
    under = 0.01 * (0.5 - CHEAPEST)
    assert history.history["cost_weight"][0] == pytest.approx(
        0.02 - 4 * under, abs=1e-6
    )
    # Then at 0, not below.
    assert history.history["cost_weight"][1] == 0.0
    assert model.cost_weight == 0.0
    assert history.history["greedy_cost"][-1] == pytest.approx(CHEAPEST)


# Over half a minute of training: slow (runs on CI, not in a plain
# pytest).
@pytest.mark.slow
def test_forced_routing_leaves_the_multiplier_where_it_is():
    model = small_high_low()
    model.compile(
        "adam",
        LOSS,
        target_cost=0.3,
        cost_weight=0.25,
        budget_learning_rate=0.05,
    )
    x, y = toy_data(256)
    history = model.fit(
        x,
        y,
        epochs=2,
        batch_size=64,
        verbose=0,
        callbacks=[schedules.WarmUp(epochs=1)],
    )
    weights = history.history["cost_weight"]
    # The warm-up's random routing costs ~0.57, over the target: had it
    # counted, the multiplier would have risen by ~0.05 in its 4 steps.
    assert weights[0] == 0.25
    assert weights[1] != 0.25
    model.set_routing({"gate": "high"})
    before = model.cost_weight
    model.fit(x, y, epochs=1, batch_size=64, verbose=0)
    assert model.cost_weight == before


@pytest.mark.parametrize("target", [0.3, 0.6])
def test_a_short_fit_lands_near_the_budget(target):
    # routing_data: the high network pays off for part of the examples
    # only, so the cost moves smoothly with the cost weight. Full
    # information (with every module trained on every example) follows
    # the multiplier at once, where REINFORCE lags and overshoots.
    keras.utils.set_random_seed(0)
    model = small_high_low()
    model.compile(
        keras.optimizers.Adam(0.003),
        LOSS,
        target_cost=target,
        estimator=keras_d2nn.FullInformation(),
    )
    # FullInformation's step: its controllers follow the reward at once.
    assert model.cost_budget.learning_rate == 0.02
    x, y = routing_data(1024)
    history = model.fit(
        x,
        y,
        epochs=25,
        batch_size=64,
        verbose=0,
        callbacks=[schedules.WarmUp(epochs=1)],
    )
    # 384 steps after the warm-up. What the multiplier steers, the cost
    # of the greedy decisions on the training batches, averaged over the
    # last epoch: within 0.02 of the target for seeds 0-2 (0.03 allowed).
    assert history.history["greedy_cost"][-1] == pytest.approx(target, abs=0.03)
    # The trained model on held-out examples: the last step's weights
    # (the gate's decisions move by a few points from one step to the
    # next) on other data; within 0.036 for seeds 0-2 (0.05 allowed).
    x_test, _ = routing_data(4000, seed=100)
    assert model.route(x_test).mean_cost_fraction == pytest.approx(
        target, abs=0.05
    )
    assert model.cost_weight > 0


def test_target_cost_and_multiplier_survive_saving(tmp_path):
    model = small_high_low()
    model.compile(
        "adam",
        LOSS,
        metrics=["accuracy"],
        target_cost=0.4,
        budget_learning_rate=0.05,
    )
    x, y = toy_data(256)
    steer_gate(model, "high")
    model.fit(x, y, epochs=1, batch_size=64, verbose=0)
    assert model.cost_weight > 0
    config = model.get_compile_config()
    assert config["target_cost"] == 0.4
    assert config["budget_learning_rate"] == 0.05
    assert config["cost_weight"] == model.cost_weight
    path = tmp_path / "budget.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.target_cost == 0.4
    assert loaded.cost_budget.learning_rate == 0.05
    assert loaded.cost_weight == pytest.approx(model.cost_weight)
    # predict runs batches of 32, the call one of 256: oneDNN may sum in
    # another order (a unit in the last place), so not bit for bit.
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), model(x), rtol=1e-5, atol=1e-6
    )
    # It keeps moving the multiplier from there.
    before = loaded.cost_weight
    history = loaded.fit(x, y, epochs=1, batch_size=64, verbose=0)
    assert "cost_weight" in history.history
    assert loaded.cost_weight != before


def test_the_multipliers_step_suits_the_estimators():
    model = small_high_low()
    model.compile("adam", LOSS, target_cost=0.3)  # REINFORCE
    assert model.cost_budget.learning_rate == 0.005
    model.compile(
        "adam", LOSS, target_cost=0.3, estimator=keras_d2nn.FullInformation()
    )
    assert model.cost_budget.learning_rate == 0.02
    model.compile(
        "adam",
        LOSS,
        target_cost=0.3,
        estimator=keras_d2nn.FullInformation(),
        budget_learning_rate=0.1,
    )
    assert model.cost_budget.learning_rate == 0.1


def test_files_without_a_budget_load_without_one(tmp_path):
    model = small_high_low()
    model.compile("adam", LOSS, cost_weight=0.2)
    assert model.get_compile_config()["target_cost"] is None
    model.save(tmp_path / "plain.keras")
    loaded = keras.models.load_model(tmp_path / "plain.keras")
    assert loaded.target_cost is None
    assert loaded.cost_weight == pytest.approx(0.2)
    # A file of release 0.1.0, whose compile config has no budget keys.
    old = keras.models.load_model("tests/fixtures/high_low_0.1.0.keras")
    assert old.target_cost is None


def test_recompiling_replaces_the_budget():
    model = small_high_low()
    model.compile("adam", LOSS, target_cost=0.3)
    x, y = toy_data(128)
    logs = model.fit(x, y, batch_size=64, verbose=0).history
    assert {"cost_weight", "greedy_cost"} <= set(logs)
    model.compile("adam", LOSS, target_cost=0.5)
    names = [m.name for m in model.metrics]
    assert names.count("greedy_cost") == 1
    model.compile("adam", LOSS, cost_weight=0.1)
    assert model.target_cost is None
    logs = model.fit(x, y, batch_size=64, verbose=0).history
    assert not {"cost_weight", "greedy_cost"} & set(logs)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            {"target_cost": 0},
            "`target_cost` should be a fraction of the full network's "
            "FLOPs, in (0, 1]. Received: target_cost=0",
        ),
        ({"target_cost": 1.5}, "Received: target_cost=1.5"),
        ({"target_cost": "low"}, "Received: target_cost='low'"),
        ({"target_cost": float("nan")}, "Received: target_cost=nan"),
        (
            {"target_cost": 0.3, "budget_learning_rate": 0},
            "`budget_learning_rate` should be a finite number > 0. "
            "Received: budget_learning_rate=0",
        ),
        ({"budget_learning_rate": -1.0}, "budget_learning_rate=-1.0"),
    ],
)
def test_bad_budgets_are_refused(kwargs, message):
    with pytest.raises(ValueError) as error:
        small_high_low().compile("adam", LOSS, **kwargs)
    assert message in str(error.value)


def test_a_budget_below_the_cheapest_route_warns():
    model = small_high_low()
    assert budget_lib.cheapest_cost(model.plan) == pytest.approx(CHEAPEST)
    with pytest.warns(UserWarning, match="below the cost of the cheapest"):
        model.compile("adam", LOSS, target_cost=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.compile("adam", LOSS, target_cost=0.2)


def test_cost_weight_schedules_do_not_fight_the_multiplier():
    model = small_high_low()
    model.compile("adam", LOSS, target_cost=0.3)
    x, y = toy_data(64)
    with pytest.raises(ValueError, match="CostWeightSchedule would overwrite"):
        model.fit(
            x,
            y,
            verbose=0,
            callbacks=[schedules.CostWeightSchedule(schedules.constant(0.1))],
        )
    # With a budget, the fitted schedule is the warm-up alone.
    schedule = schedules.d2nn_schedule(0.0, epochs=4, target_cost=0.3)
    assert (schedule.warmup_epochs, schedule.ramp_epochs) == (1, 0)
    assert schedule.cost_weights() is None and not schedule.shortened
    assert "budget 0.3" in schedule.describe()
    [warm_up] = schedule.callbacks()
    assert isinstance(warm_up, schedules.WarmUp)
    model.fit(x, y, epochs=2, verbose=0, callbacks=schedule.callbacks())
