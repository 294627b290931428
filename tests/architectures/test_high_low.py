"""The high-low architecture: its cost of each route, and learning on real
Fashion-MNIST images."""

import keras
import numpy as np
import pytest

from keras_d2nn import architectures
from keras_d2nn.testing import shape_images

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def train_high_low(x, y, cost_weight, epochs, seed=0):
    keras.utils.set_random_seed(seed)
    model = architectures.high_low(gate_input="features")
    model.compile(
        keras.optimizers.Adam(1e-3),
        LOSS,
        metrics=["accuracy"],
        cost_weight=cost_weight,
    )
    history = model.fit(x, y, epochs=epochs, batch_size=128, verbose=0)
    return model, history.history


def test_high_low_structure_and_flops():
    model = architectures.high_low(gate_input="features")
    plan = model.plan
    assert plan.controllers == ("gate",)
    assert plan.nodes["gate"].actions == ("stop", "high")
    # The expensive branch costs over 10x the cheap path.
    cheap = plan.flops["low"] + plan.flops["low_head"] + plan.flops["gate"]
    assert plan.flops["high"] > 10 * cheap
    assert model.full_flops == cheap + plan.flops["high"]


def test_high_low_learns_on_real_images(fashion_mnist):
    x_train, y_train, x_test, y_test = fashion_mnist
    model, history = train_high_low(
        x_train[:4000], y_train[:4000], cost_weight=0.1, epochs=2
    )
    # Both actions were sampled while training: each branch is reached.
    assert 0.0 < history["gate_high"][0] < 1.0
    results = model.evaluate(
        x_test[:2000], y_test[:2000], verbose=0, return_dict=True
    )
    assert results["accuracy"] > 0.6  # chance is 0.1


def test_each_route_costs_the_flops_it_runs():
    keras.utils.set_random_seed(0)
    model = architectures.high_low(gate_input="features")
    # Rectangles on black: the untrained gate sends some of them high.
    routes = model.route(shape_images(200))
    executed = routes["executed_flops"]
    plan = model.plan
    cheap = plan.flops["low"] + plan.flops["low_head"] + plan.flops["gate"]
    ran_high = routes["decisions"]["gate"] == 1
    assert 0 < ran_high.sum() < len(ran_high), "both routes taken"
    np.testing.assert_allclose(executed[~ran_high], cheap)
    np.testing.assert_allclose(executed[ran_high], model.full_flops)


@pytest.mark.slow
def test_raising_cost_weight_lowers_the_mean_cost(fashion_mnist):
    x_train, y_train, x_test, y_test = fashion_mnist
    costs = {}
    for cost_weight in (0.0, 0.5):
        model, _ = train_high_low(
            x_train[:20000], y_train[:20000], cost_weight=cost_weight, epochs=2
        )
        results = model.evaluate(x_test, y_test, verbose=0, return_dict=True)
        costs[cost_weight] = results["cost"]
    assert costs[0.5] < costs[0.0]
