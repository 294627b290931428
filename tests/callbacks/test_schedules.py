"""Warm-up routing and schedules, in real `fit` runs."""

import keras
import numpy as np
import pytest

from keras_d2nn import GumbelSoftmax
from keras_d2nn import schedules
from keras_d2nn.testing import LOSS
from keras_d2nn.testing import RoutingSpy
from keras_d2nn.testing import small_high_low
from keras_d2nn.testing import toy_data


def test_linear_ramp_and_constant():
    ramp = schedules.linear_ramp(0.0, 0.2, epochs=4, delay=1)
    assert [ramp(e) for e in range(7)] == pytest.approx(
        [0.0, 0.0, 0.05, 0.1, 0.15, 0.2, 0.2]
    )
    assert schedules.constant(0.3)(10) == 0.3
    with pytest.raises(ValueError, match="`epochs` should be >= 1"):
        schedules.linear_ramp(0, 1, epochs=0)


def test_cost_weight_schedule_sets_each_epoch_and_logs_it():
    model = small_high_low()
    model.compile("adam", LOSS)
    x, y = toy_data()
    history = model.fit(
        x,
        y,
        epochs=3,
        batch_size=64,
        verbose=0,
        callbacks=[
            schedules.CostWeightSchedule(schedules.linear_ramp(0.0, 0.4, 2))
        ],
    )
    assert history.history["cost_weight"] == pytest.approx([0.0, 0.2, 0.4])


def test_warm_up_routes_randomly_then_hands_over():
    model = small_high_low()
    model.compile("adam", LOSS, cost_weight=5.0)
    gate = model.plan.nodes["gate"].layer
    x, y = toy_data(n=1024)
    before = [w.numpy().copy() for w in gate.trainable_weights]

    class Spy(keras.callbacks.Callback):
        routings = []
        weights = []

        def on_epoch_end(self, epoch, logs=None):
            self.routings.append(dict(self.model.routing))
            self.weights.append([w.numpy() for w in gate.trainable_weights])

    history = model.fit(
        x,
        y,
        epochs=3,
        batch_size=64,
        verbose=0,
        callbacks=[schedules.WarmUp(epochs=2), Spy()],
    )
    # Random routing: about half the examples take each branch, whatever
    # the (very high) cost weight says (1,024 fair coins: outside 0.35 to
    # 0.65 with probability below 1e-20).
    assert 0.35 < history.history["gate_high"][0] < 0.65
    assert 0.35 < history.history["gate_high"][1] < 0.65
    assert Spy.routings[:2] == [{"gate": ("random", [0.5, 0.5])}] * 2
    assert Spy.routings[2] == {}
    assert model.routing == {}
    # The controller learnt only in the last epoch: untouched through
    # both warm-up epochs, every weight moved in the third.
    for epoch in (0, 1):
        for b, w in zip(before, Spy.weights[epoch]):
            np.testing.assert_array_equal(w, b)
    assert all(not np.allclose(b, w) for b, w in zip(before, Spy.weights[2]))


def test_warm_up_resumed_mid_warm_up_still_routes_randomly():
    model = small_high_low()
    model.compile("adam", LOSS, cost_weight=5.0)
    x, y = toy_data(n=256)
    seen = []

    class Spy(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if batch == 0:
                seen.append(dict(self.model.routing))

    # Resumed at epoch 1 of a 2-epoch warm-up (as from a checkpoint).
    model.fit(
        x,
        y,
        epochs=3,
        initial_epoch=1,
        batch_size=64,
        verbose=0,
        callbacks=[schedules.WarmUp(epochs=2), Spy()],
    )
    assert seen == [{"gate": ("random", [0.5, 0.5])}, {}]
    assert model.routing == {}


def test_variable_schedule_anneals_a_temperature():
    model = small_high_low()
    estimator = GumbelSoftmax(temperature=2.0)
    model.compile("adam", LOSS, estimator=estimator, cost_weight=0.1)
    x, y = toy_data()
    seen = []

    class Spy(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(float(estimator.temperature.numpy()))

    model.fit(
        x,
        y,
        epochs=3,
        batch_size=64,
        verbose=0,
        callbacks=[
            schedules.VariableSchedule(
                estimator.temperature, schedules.linear_ramp(2.0, 0.5, 2)
            ),
            Spy(),
        ],
    )
    assert seen == pytest.approx([2.0, 1.25, 0.5])


@pytest.mark.parametrize(
    "epochs, warmup, ramp, weights",
    [
        (1, 0, 0, [0.1]),
        (2, 1, 0, [0.1, 0.1]),
        (3, 1, 1, [0.0, 0.0, 0.1]),  # the default main job, unchanged
        (5, 1, 1, [0.0, 0.0, 0.1, 0.1, 0.1]),
    ],
)
def test_d2nn_schedule_ends_every_run_at_the_target(
    epochs, warmup, ramp, weights
):
    schedule = schedules.d2nn_schedule(
        0.1, epochs, warmup_epochs=1, ramp_epochs=1
    )
    assert (schedule.warmup_epochs, schedule.ramp_epochs) == (warmup, ramp)
    assert schedule.cost_weights() == pytest.approx(weights)
    assert schedule.cost_weights()[-1] == pytest.approx(0.1)
    assert schedule.shortened == (epochs < 3)
    assert ("shortened" in schedule.describe()) == (epochs < 3)


def test_d2nn_schedule_shortens_long_warm_ups_and_ramps():
    # Asked for 3 warm-up and 4 ramp epochs in a 5-epoch run.
    schedule = schedules.d2nn_schedule(0.2, 5, warmup_epochs=3, ramp_epochs=4)
    assert (schedule.warmup_epochs, schedule.ramp_epochs) == (3, 1)
    assert schedule.cost_weights() == pytest.approx([0, 0, 0, 0, 0.2])
    # Long enough: as asked.
    schedule = schedules.d2nn_schedule(0.2, 8, warmup_epochs=2, ramp_epochs=4)
    assert (schedule.warmup_epochs, schedule.ramp_epochs) == (2, 4)
    assert schedule.cost_weights() == pytest.approx(
        [0, 0, 0, 0.05, 0.1, 0.15, 0.2, 0.2]
    )
    assert not schedule.shortened
    with pytest.raises(ValueError, match="`epochs` should be >= 1"):
        schedules.d2nn_schedule(0.1, 0)
    with pytest.raises(ValueError, match="`warmup_epochs` should be >= 0"):
        schedules.d2nn_schedule(0.1, 3, warmup_epochs=-1)


@pytest.mark.parametrize("epochs", [1, 2, 3])
def test_d2nn_callbacks_train_the_last_epoch_at_the_target(epochs):
    model = small_high_low()
    model.compile("adam", LOSS, cost_weight=0.0)
    x, y = toy_data(n=128)
    spy = RoutingSpy()
    history = model.fit(
        x,
        y,
        epochs=epochs,
        batch_size=64,
        verbose=0,
        callbacks=schedules.d2nn_callbacks(
            0.3, epochs, warmup_epochs=1, ramp_epochs=1
        )
        + [spy],
    )
    random = {"gate": ("random", [0.5, 0.5])}
    expected = {
        1: [(0, {}, 0.3)],
        2: [(0, random, 0.3), (1, {}, 0.3)],
        3: [(0, random, 0.0), (1, {}, 0.0), (2, {}, 0.3)],
    }[epochs]
    assert spy.seen == expected
    assert history.history["cost_weight"][-1] == pytest.approx(0.3)
    assert model.routing == {}


def test_d2nn_callbacks_resumed_mid_run_follow_the_whole_run():
    # A 4-epoch run (2 warm-up epochs, then 0, then the target) resumed
    # at epoch 1, still warming up, as from a checkpoint: the same
    # schedule as uninterrupted.
    model = small_high_low()
    model.compile("adam", LOSS)
    x, y = toy_data(n=128)
    spy = RoutingSpy()
    model.fit(
        x,
        y,
        epochs=4,
        initial_epoch=1,
        batch_size=64,
        verbose=0,
        callbacks=schedules.d2nn_callbacks(
            0.2, 4, warmup_epochs=2, ramp_epochs=1
        )
        + [spy],
    )
    assert spy.seen == [
        (1, {"gate": ("random", [0.5, 0.5])}, 0.0),
        (2, {}, 0.0),
        (3, {}, 0.2),
    ]
    # Resumed after the warm-up: no random routing at all.
    spy = RoutingSpy()
    model.fit(
        x,
        y,
        epochs=4,
        initial_epoch=3,
        batch_size=64,
        verbose=0,
        callbacks=schedules.d2nn_callbacks(
            0.2, 4, warmup_epochs=2, ramp_epochs=1
        )
        + [spy],
    )
    assert spy.seen == [(3, {}, 0.2)]
