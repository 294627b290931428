"""Cost-weight search with keras-tuner: objectives, Pareto front, resuming
and distributed search, on small searches over synthetic images."""

import keras
import keras_tuner
import numpy as np
import pytest

import keras_d2nn
from keras_d2nn.experiments import tuning
from keras_d2nn.testing import RoutingSpy
from keras_d2nn.testing import shape_images
from keras_d2nn.testing import toy_data


def test_budget_prefers_any_feasible_model_then_accuracy():
    budget = tuning.Budget(0.3)
    assert budget.score(0.80, 0.29) == 0.80
    assert budget.score(0.80, 0.29) > budget.score(0.95, 0.31)
    # Over budget, nearer is better.
    assert budget.score(0.5, 0.35) > budget.score(0.9, 0.6)
    with pytest.raises(ValueError, match=r"in \(0, 1\]"):
        tuning.Budget(1.5)


def test_accuracy_target_prefers_cheapest_model_that_reaches_it():
    target = tuning.AccuracyTarget(0.88)
    assert target.score(0.88, 0.4) == -0.4
    assert target.score(0.89, 0.2) > target.score(0.95, 0.4)
    assert target.score(0.89, 0.99) > target.score(0.87, 0.01)
    assert target.score(0.87, 0.5) > target.score(0.80, 0.5)
    with pytest.raises(ValueError, match="accuracy"):
        tuning.AccuracyTarget(0)


def test_reward_is_the_scalarised_trade_off():
    assert tuning.Reward(0.1).score(0.9, 0.5) == pytest.approx(0.85)
    with pytest.raises(ValueError, match=">= 0"):
        tuning.Reward(float("nan"))


def test_pareto_front_and_best_point_on_a_hand_made_case():
    points = [
        {"trial_id": "0", "val_accuracy": 0.80, "val_flop_fraction": 0.1},
        {"trial_id": "1", "val_accuracy": 0.85, "val_flop_fraction": 0.3},
        {"trial_id": "2", "val_accuracy": 0.84, "val_flop_fraction": 0.4},
        {"trial_id": "3", "val_accuracy": 0.90, "val_flop_fraction": 0.9},
        {"trial_id": "4", "val_accuracy": 0.80, "val_flop_fraction": 0.2},
    ]
    front = tuning.pareto_front(points)
    assert [p["trial_id"] for p in front] == ["0", "1", "3"]
    assert tuning.best_point(points, tuning.Budget(0.35))["trial_id"] == "1"
    assert (
        tuning.best_point(points, tuning.AccuracyTarget(0.84))["trial_id"]
        == "1"
    )
    assert tuning.best_point(points, tuning.Budget(0.05)) is None


def test_hypermodel_refuses_bad_settings():
    with pytest.raises(ValueError, match="or a function hp -> D2NNModel"):
        tuning.D2NNHyperModel("resnet")
    with pytest.raises(ValueError, match="0 < min < max"):
        tuning.D2NNHyperModel(cost_weight_range=(0.0, 1.0))
    with pytest.raises(ValueError, match="should name some of"):
        tuning.D2NNHyperModel(estimators=("ppo",))
    with pytest.raises(ValueError, match="validation_data"):
        hypermodel = tuning.D2NNHyperModel()
        hp = keras_tuner.HyperParameters()
        hypermodel.fit(
            hp,
            hypermodel.build(hp),
            np.zeros((4, 28, 28, 1)),
            np.zeros(4),
            epochs=2,
        )


def own_graph(hp):
    """A user's graph: a gated toy D2NN whose expensive branch's width is
    a hyperparameter of its own."""
    width = hp.Int("high_units", 8, 32, step=8)
    high = keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(width, activation="relu"),
            keras.layers.Dense(3),
        ]
    )
    graph = keras_d2nn.Graph()
    graph.input("x", shape=(6,))
    graph.f_node("low", keras.layers.Dense(8, activation="relu"), "x")
    graph.q_node(
        "gate",
        keras_d2nn.Controller(2, hidden_units=()),
        "low",
        actions=("stop", "high"),
    )
    graph.f_node("exit", keras.layers.Dense(3), "low", when=("gate", "stop"))
    graph.f_node("high", high, "x", when=("gate", "high"))
    graph.merge("logits", ["exit", "high"])
    graph.output("logits")
    return keras_d2nn.D2NNModel(graph)


def test_a_users_own_graph_is_searched_with_its_own_hyperparameters():
    hypermodel = tuning.D2NNHyperModel(own_graph, tuning.Budget(0.5))
    hp = keras_tuner.HyperParameters()
    model = hypermodel.build(hp)
    # Its own hyperparameter and the trial's cost weight, compiled.
    assert set(hp.values) == {"high_units", "cost_weight"}
    assert model.cost_weight == pytest.approx(hp.get("cost_weight"))
    assert model.plan.nodes["high"].layer.layers[0].units == hp.get(
        "high_units"
    )
    x, y = toy_data(64)
    metrics = hypermodel.fit(
        hp, model, x, y, validation_data=(x, y), epochs=1, verbose=0
    )
    assert 0 <= metrics["val_flop_fraction"] <= 1


def test_a_build_function_must_return_an_uncompiled_d2nn():
    hypermodel = tuning.D2NNHyperModel(lambda hp: "a graph", tuning.Budget(0.5))
    with pytest.raises(ValueError, match="uncompiled keras_d2nn.D2NNModel"):
        hypermodel.build(keras_tuner.HyperParameters())


@pytest.fixture(scope="module")
def small_split():
    """500 training and 300 validation images of one to three rectangles
    of random brightness on black (garments on Fashion-MNIST's black
    background), with random labels of 10 classes: what a search runs on,
    not what it learns."""
    x, y = shape_images(800, labels=True)
    return (x[:500], y[:500]), (x[500:], y[500:])


@pytest.mark.parametrize(
    "objective",
    [tuning.Budget(0.5), tuning.AccuracyTarget(0.6), tuning.Reward(0.1)],
)
def test_each_objective_drives_a_small_search(objective, small_split, tmp_path):
    (x, y), validation = small_split
    hypermodel = tuning.D2NNHyperModel(
        "high_low", objective, cost_weight_range=(0.01, 0.3)
    )
    tuner = keras_tuner.RandomSearch(
        hypermodel,
        objective=tuning.OBJECTIVE,
        max_trials=2,
        seed=1,
        directory=str(tmp_path),
        project_name="p",
    )
    tuner.search(
        x, y, epochs=2, batch_size=128, validation_data=validation, verbose=0
    )
    points = tuning.trial_points(tuner)
    assert len(points) == 2
    for p in points:
        assert 0.01 <= p["cost_weight"] <= 0.3
        assert 0 < p["val_flop_fraction"] <= 1
        assert p["val_routes"] in (1, 2)
        assert (p["no_routing"] is None) == (p["val_routes"] == 2)
        assert p["score"] == pytest.approx(
            objective.score(p["val_accuracy"], p["val_flop_fraction"])
        )
    # The tuner's own ranking is the objective's.
    best_trial = tuner.oracle.get_best_trials(1)[0]
    assert best_trial.score == max(p["score"] for p in points)
    # The trial's weights come back: re-measured on the validation data,
    # the reloaded model gives the trial's figures.
    model = tuner.load_model(best_trial)
    again = tuning.measure_on_test(model, *validation)
    best = next(p for p in points if p["trial_id"] == best_trial.trial_id)
    assert again["test_accuracy"] == pytest.approx(best["val_accuracy"])
    assert again["test_flop_fraction"] == pytest.approx(
        best["val_flop_fraction"], rel=1e-5
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    "make",
    [
        lambda hm, **kw: keras_tuner.BayesianOptimization(
            hm, max_trials=2, num_initial_points=1, **kw
        ),
        lambda hm, **kw: keras_tuner.Hyperband(
            hm, max_epochs=2, factor=2, **kw
        ),
    ],
    ids=["bayesian", "hyperband"],
)
def test_other_keras_tuner_tuners_take_the_hypermodel(
    make, small_split, tmp_path
):
    (x, y), validation = small_split
    hypermodel = tuning.D2NNHyperModel("high_low", tuning.Budget(0.5))
    tuner = make(
        hypermodel,
        objective=tuning.OBJECTIVE,
        seed=1,
        directory=str(tmp_path),
        project_name="p",
    )
    # Hyperband's first round trains for one epoch: the warm-up gives way.
    tuner.search(
        x[:400],
        y[:400],
        epochs=2,
        batch_size=128,
        validation_data=validation,
        verbose=0,
    )
    points = tuning.trial_points(tuner)
    assert len(points) >= 2
    assert all(0 < p["val_flop_fraction"] <= 1 for p in points)


def trial_hp(cost_weight, **values):
    hp = keras_tuner.HyperParameters()
    hp.Float("cost_weight", 0.01, 0.3, sampling="log", default=cost_weight)
    for name, value in values.items():
        hp.Fixed(name, value)
    return hp


@pytest.mark.parametrize(
    "epochs, initial_epoch, continued, expected",
    [
        # A 1-epoch trial (Hyperband's first round): no warm-up.
        (1, 0, False, [(0, {}, 0.05)]),
        # 2 epochs: warm-up, then the trial's cost weight (once 0).
        (
            2,
            0,
            False,
            [(0, {"gate": ("random", [0.5, 0.5])}, 0.05), (1, {}, 0.05)],
        ),
        # Hyperband goes on from a 1-epoch trial: epoch 1 of 2, as it ended.
        (2, 1, True, [(1, {}, 0.05)]),
    ],
)
def test_a_short_trial_trains_at_its_cost_weight(
    epochs, initial_epoch, continued, expected, small_split
):
    (x, y), validation = small_split
    hypermodel = tuning.D2NNHyperModel(
        "high_low", tuning.Budget(0.5), cost_weight_range=(0.01, 0.3)
    )
    hp = trial_hp(0.05, **({"tuner/trial_id": "0"} if continued else {}))
    model = hypermodel.build(hp)
    spy = RoutingSpy()
    result = hypermodel.fit(
        hp,
        model,
        x,
        y,
        epochs=epochs,
        initial_epoch=initial_epoch,
        batch_size=128,
        validation_data=validation,
        verbose=0,
        callbacks=[spy],
    )
    assert spy.seen == expected
    assert model.cost_weight == pytest.approx(0.05)
    assert result["val_routes"] >= 1
    if result["val_routes"] > 1:
        assert result["val_no_routing"] == 0
    else:  # one controller, one route: stuck at its cheapest or costliest
        assert result["val_no_routing"] in (-1, 1)


def test_no_routing_warnings_name_the_trials_and_advise():
    flags = {"epochs": 2, "cost_weight_min": 0.01, "cost_weight_max": 0.5}

    def point(trial_id, cost_weight, no_routing, fraction):
        return {
            "trial_id": trial_id,
            "cost_weight": cost_weight,
            "no_routing": no_routing,
            "val_flop_fraction": fraction,
        }

    routed = point("2", 0.2, None, 0.4)
    stuck = [
        point("0", 0.023, "costliest", 1.0),
        point("1", 0.058, "costliest", 1.0),
    ]
    [warning] = tuning.no_routing_warnings(stuck + [routed], routed, flags)
    assert warning.startswith("WARNING: 2 of 3 trials did not route")
    assert "trial 0 (cost_weight 0.023: costliest route, 1.000" in warning
    assert "raise --cost_weight_min (was 0.01)" in warning
    assert "more than --epochs=2" in warning
    lines = tuning.no_routing_warnings(
        [point("0", 0.4, "cheapest", 0.01)],
        point("0", 0.4, "cheapest", 0.01),
        flags,
    )
    assert "lower --cost_weight_max (was 0.5)" in lines[0]
    assert "best_model.keras is a static network" in lines[1]
    assert tuning.no_routing_warnings([routed], routed, flags) == []


def test_infeasible_search_says_which_way_to_move():
    flags = {"epochs": 2, "cost_weight_min": 0.01, "cost_weight_max": 0.5}
    points = [
        {
            "trial_id": "0",
            "cost_weight": 0.0231,
            "val_accuracy": 0.89,
            "val_flop_fraction": 0.931,
        },
        {
            "trial_id": "1",
            "cost_weight": 0.0578,
            "val_accuracy": 0.87,
            "val_flop_fraction": 0.505,
        },
    ]
    [line] = tuning.infeasible_warnings(points, None, tuning.Budget(0.4), flags)
    assert "no trial met the budget of 0.4" in line
    assert "the cheapest (trial 1, cost_weight 0.0578) used 0.505" in line
    assert "raise --cost_weight_min, was 0.01" in line
    [line] = tuning.infeasible_warnings(
        points, None, tuning.AccuracyTarget(0.95), flags
    )
    assert (
        "the most accurate (trial 0, cost_weight 0.0231) reached 0.8900" in line
    )
    assert "lower --cost_weight_max, was 0.5" in line
    assert (
        tuning.infeasible_warnings(points, points[0], tuning.Budget(0.4), flags)
        == []
    )
    assert (
        tuning.infeasible_warnings(points, None, tuning.Reward(0.1), flags)
        == []
    )
