"""Warm-up routing and schedules, in real `fit` runs."""

import keras
import numpy as np
import pytest
from test_model import LOSS
from test_model import small_high_low
from test_model import toy_data

from keras_d2nn import GumbelSoftmax
from keras_d2nn import schedules


def test_linear_ramp_and_constant():
    ramp = schedules.linear_ramp(0.0, 0.2, epochs=4, delay=1)
    assert [ramp(e) for e in range(7)] == pytest.approx(
        [0.0, 0.0, 0.05, 0.1, 0.15, 0.2, 0.2])
    assert schedules.constant(0.3)(10) == 0.3
    with pytest.raises(ValueError, match="`epochs` should be >= 1"):
        schedules.linear_ramp(0, 1, epochs=0)


def test_cost_weight_schedule_sets_each_epoch_and_logs_it():
    model = small_high_low()
    model.compile("adam", LOSS)
    x, y = toy_data()
    history = model.fit(x, y, epochs=3, batch_size=64, verbose=0, callbacks=[
        schedules.CostWeightSchedule(schedules.linear_ramp(0.0, 0.4, 2))])
    assert history.history["cost_weight"] == pytest.approx([0.0, 0.2, 0.4])


def test_warm_up_routes_randomly_then_hands_over():
    model = small_high_low()
    model.compile("adam", LOSS, cost_weight=5.0)
    gate = model.plan.nodes["gate"].layer
    x, y = toy_data(n=1024)
    before = [w.numpy().copy() for w in gate.trainable_weights]

    class Spy(keras.callbacks.Callback):
        routings = []

        def on_epoch_end(self, epoch, logs=None):
            self.routings.append(dict(self.model.routing))

    history = model.fit(x, y, epochs=3, batch_size=64, verbose=0,
                        callbacks=[schedules.WarmUp(epochs=2), Spy()])
    # Random routing: about half the examples take each branch, whatever
    # the (very high) cost weight says.
    assert 0.35 < history.history["gate_high"][0] < 0.65
    assert Spy.routings[0] == {"gate": ("random", [0.5, 0.5])}
    assert Spy.routings[2] == {}
    assert model.routing == {}
    # The controller learnt only in the last epoch.
    assert any(not np.allclose(b, w.numpy())
               for b, w in zip(before, gate.trainable_weights))


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
    model.fit(x, y, epochs=3, initial_epoch=1, batch_size=64, verbose=0,
              callbacks=[schedules.WarmUp(epochs=2), Spy()])
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

    model.fit(x, y, epochs=3, batch_size=64, verbose=0, callbacks=[
        schedules.VariableSchedule(estimator.temperature,
                                   schedules.linear_ramp(2.0, 0.5, 2)), Spy()])
    assert seen == pytest.approx([2.0, 1.25, 0.5])
