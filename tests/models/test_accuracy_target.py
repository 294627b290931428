"""Landing on an accuracy target: the cheapest routing that loses at most
`max_drop` against the D2NN's own full network, on the data given."""

import numpy as np
import pytest

from keras_d2nn.models import accuracy_target
from keras_d2nn.models import calibration
from keras_d2nn.testing import LOSS
from keras_d2nn.testing import small_high_low
from keras_d2nn.testing import toy_data


@pytest.fixture(scope="module")
def trained():
    model = small_high_low()
    model.compile("adam", LOSS, cost_weight=0.05)
    x, y = toy_data(1024, seed=0)
    model.fit(x, y, epochs=3, batch_size=64, verbose=0)
    return model, toy_data(512, seed=1)


def accuracy_and_cost(model, data, delta):
    calibration.set_price(model, delta)
    x, y = data
    routes = model.route(x, labels=y)
    return routes.accuracy, routes.mean_cost_fraction


@pytest.mark.parametrize("max_drop", [0.0, 0.02, 0.1])
def test_the_promise_holds_and_no_price_on_a_fine_grid_is_cheaper(
    trained, max_drop
):
    model, data = trained
    result = model.calibrate_accuracy(data, max_drop=max_drop)
    # The model keeps the price: routing again gives what it reported.
    accuracy, cost = accuracy_and_cost(model, data, result.delta)
    assert (accuracy, cost) == pytest.approx((result.accuracy, result.cost))
    reference, full_cost = accuracy_and_cost(model, data, -calibration.LIMIT)
    assert result.reference_accuracy == pytest.approx(reference)
    assert full_cost == pytest.approx(1.0, abs=0.05)
    assert result.drop <= max_drop + 1e-9
    # Cheapest: a brute-force sweep of prices finds nothing cheaper that
    # keeps the promise (up to one bisection step's worth of cost).
    passing = [
        c
        for a, c in (
            accuracy_and_cost(model, data, d)
            for d in np.concatenate(
                [
                    -np.geomspace(1e-2, 1e2, 12),
                    [0.0],
                    np.geomspace(1e-2, 1e2, 24),
                ]
            )
        )
        if a >= reference - max_drop - 1e-9
    ]
    assert result.cost <= min(passing) + 0.01


def test_a_larger_drop_buys_a_cheaper_routing(trained):
    model, data = trained
    strict = model.calibrate_accuracy(data, max_drop=0.0)
    loose = model.calibrate_accuracy(data, max_drop=0.2)
    assert loose.cost < strict.cost
    assert loose.accuracy < strict.accuracy


def test_labels_may_be_passed_apart(trained):
    model, (x, y) = trained
    apart = model.calibrate_accuracy(x, max_drop=0.02, labels=y)
    together = model.calibrate_accuracy((x, y), max_drop=0.02)
    assert apart == together


@pytest.mark.parametrize("bad", [-0.1, 1.0, "half", float("nan")])
def test_a_drop_that_is_not_a_fraction_is_refused(trained, bad):
    model, data = trained
    with pytest.raises(ValueError, match="max_drop"):
        accuracy_target.calibrate_accuracy(model, data, bad)


def test_unlabelled_data_is_refused_with_a_clear_message(trained):
    model, (x, _) = trained
    with pytest.raises(ValueError, match="accuracy needs labels"):
        model.calibrate_accuracy(x, max_drop=0.01)
