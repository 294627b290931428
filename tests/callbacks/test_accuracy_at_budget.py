"""`AccuracyAtBudget`: each epoch's accuracy after landing on the budget,
in the logs EarlyStopping and ModelCheckpoint read; training goes on with
the controllers' own decisions."""

import keras
import numpy as np
import pytest

from keras_d2nn.callbacks import AccuracyAtBudget
from keras_d2nn.testing import LOSS
from keras_d2nn.testing import routing_data
from keras_d2nn.testing import small_high_low

BUDGET = 0.5


@pytest.fixture
def trained(tmp_path):
    model = small_high_low()
    model.compile("adam", LOSS)
    x, y = routing_data(512)
    validation = routing_data(256, seed=1)
    checkpoint = tmp_path / "best.keras"
    history = model.fit(
        x,
        y,
        epochs=3,
        batch_size=64,
        verbose=0,
        callbacks=[
            AccuracyAtBudget(validation, budget=BUDGET),
            keras.callbacks.ModelCheckpoint(
                checkpoint,
                monitor="val_accuracy_at_budget",
                mode="max",
                save_best_only=True,
            ),
        ],
    )
    return model, validation, history, checkpoint


def test_the_logs_hold_the_accuracy_at_the_budget(trained):
    model, (x, y), history, _ = trained
    logged = history.history["val_accuracy_at_budget"]
    assert len(logged) == 3
    # The last epoch's figure is what landing the final model gives.
    model.calibrate_budget(x, target_cost=BUDGET)
    routes = model.route(x, labels=y)
    assert logged[-1] == pytest.approx(routes.accuracy)
    assert history.history["val_cost_at_budget"][-1] == pytest.approx(
        routes.mean_cost_fraction
    )
    assert abs(routes.mean_cost_fraction - BUDGET) < 0.05


def test_training_keeps_the_controllers_own_decisions(trained):
    model, _, _, checkpoint = trained
    for q in model.plan.controllers:
        offset = model.plan.nodes[q].layer.logit_offset.numpy()
        np.testing.assert_array_equal(offset, np.zeros_like(offset))
    # ModelCheckpoint saved on the logged figure.
    assert checkpoint.exists()


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match=r"pair \(inputs, integer labels\)"):
        AccuracyAtBudget(np.zeros((4, 6)), budget=0.5)
    with pytest.raises(ValueError, match="in \\(0, 1\\]"):
        AccuracyAtBudget(routing_data(8), budget=1.5)
    model = small_high_low()
    model.compile("adam", LOSS)
    x, y = routing_data(64)
    with pytest.raises(ValueError, match="cheapest route"):
        model.fit(
            x,
            y,
            epochs=1,
            verbose=0,
            callbacks=[AccuracyAtBudget((x, y), budget=1e-9)],
        )
