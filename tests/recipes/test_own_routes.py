"""`fit_modules_on_routes`: the modules learn on the routes the frozen,
greedy controllers take; the controllers do not move and get their
settings back."""

import keras
import numpy as np
import pytest

from keras_d2nn.recipes import fit_modules_on_routes
from keras_d2nn.recipes.own_routes import frozen_greedy_controllers
from keras_d2nn.testing import LOSS
from keras_d2nn.testing import routing_data
from keras_d2nn.testing import small_high_low


@pytest.fixture
def model():
    keras.utils.set_random_seed(0)
    model = small_high_low()
    x, _ = routing_data(8)
    model(x)
    # A gate that splits the examples (its fresh logits are near 0).
    gate = model.plan.nodes["gate"].layer
    for weight in gate.network.trainable_weights:
        weight.assign(np.random.default_rng(1).normal(0, 3, weight.shape))
    return model


def test_training_takes_the_greedy_routes(model):
    x, _ = routing_data(512)
    greedy = model.route(x).decisions["gate"]
    assert 0.1 < greedy.mean() < 0.9, "the gate should split the examples"
    with frozen_greedy_controllers(model):
        trained = model.trace(x, training=True).decisions["gate"]
    np.testing.assert_array_equal(trained, greedy)
    # Outside the block, training samples again.
    sampled = model.trace(x, training=True).decisions["gate"]
    assert np.mean(np.asarray(sampled) != greedy) > 0


def test_the_modules_learn_and_the_controllers_do_not(model):
    x, y = routing_data(512)
    gate = model.plan.nodes["gate"].layer
    settings = (gate.trainable, float(gate.temperature), float(gate.epsilon))
    controller = [w.numpy() for w in gate.network.weights]
    modules = [w.numpy() for w in model.plan.nodes["high"].layer.weights]
    history = fit_modules_on_routes(
        model, x, y, loss=LOSS, epochs=2, batch_size=64, verbose=0
    )
    assert len(history.history["loss"]) == 2
    for before, weight in zip(controller, gate.network.weights):
        np.testing.assert_array_equal(weight.numpy(), before)
    assert any(
        not np.array_equal(w.numpy(), before)
        for w, before in zip(model.plan.nodes["high"].layer.weights, modules)
    )
    assert (
        gate.trainable,
        float(gate.temperature),
        float(gate.epsilon),
    ) == settings


def test_settings_come_back_after_a_failure(model):
    gate = model.plan.nodes["gate"].layer
    with pytest.raises(RuntimeError, match="stop"):
        with frozen_greedy_controllers(model):
            assert not gate.trainable
            raise RuntimeError("stop")
    assert gate.trainable and float(gate.temperature) == 1.0


@pytest.mark.parametrize("epochs", [0, 1.5, True])
def test_bad_epochs_are_refused(model, epochs):
    x, y = routing_data(16)
    with pytest.raises(ValueError, match="`epochs` should be an int >= 1"):
        fit_modules_on_routes(model, x, y, loss=LOSS, epochs=epochs)
