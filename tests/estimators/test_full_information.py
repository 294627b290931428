"""FullInformation: every action's reward, value and expected-reward
objectives, module routing, saving, and its errors."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_d2nn import Controller
from keras_d2nn import D2NNModel
from keras_d2nn import FullInformation
from keras_d2nn import Graph
from keras_d2nn.architectures import cascade
from keras_d2nn.architectures import high_low
from keras_d2nn.estimators import NAMED
from keras_d2nn.estimators import PolicyBatch
from keras_d2nn.estimators import by_name
from keras_d2nn.execution import ExecutionTrace
from keras_d2nn.testing import LOSS
from keras_d2nn.testing import small_high_low
from keras_d2nn.testing import toy_data


def bernoulli_high_low():
    low = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8)])
    high = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3)])
    return high_low(
        input_shape=(6,),
        num_classes=3,
        low_network=low,
        high_network=high,
        controller=Controller(
            2, hidden_units=(), distribution="bernoulli", seed=0
        ),
        value_range=None,  # toy features, not [0, 1] images
    )


def hand_batch(plan, logits, action_rewards, decisions=None):
    """A PolicyBatch whose `reward_of` returns `action_rewards[joint]`
    (a `(batch,)` list per joint decision of the plan's controllers)."""
    controllers = tuple(plan.controllers)
    size = len(next(iter(action_rewards.values())))
    decisions = decisions or {
        q: tf.zeros([size], tf.int32) for q in controllers
    }
    calls = []

    def reward_of(forced):
        joint = tuple(int(forced[q][0]) for q in controllers)
        calls.append(joint)
        return tf.constant(action_rewards[joint], tf.float32)

    trace = ExecutionTrace(
        outputs={},
        values={},
        executed={q: tf.ones([size], tf.bool) for q in controllers},
        decisions=decisions,
        log_probs={},
        entropies={},
        logits=logits,
        executed_flops=tf.zeros([size]),
    )
    batch = PolicyBatch(
        trace=trace,
        controllers=controllers,
        reward=tf.zeros([size]),
        greedy_reward=None,
        plan=plan,
        reward_of=reward_of,
    )
    return batch, calls


def configured(model, **kwargs):
    estimator = FullInformation(**kwargs)
    estimator.configure(model, model.plan.controllers)
    return estimator


def descend(estimator, plan, start, action_rewards, steps=300, rate=0.2):
    """Gradient descent of the controller loss on free logits."""
    logits = tf.Variable(start)
    for _ in range(steps):
        with tf.GradientTape() as tape:
            batch, _ = hand_batch(plan, {"gate": logits}, action_rewards)
            loss = estimator.controller_loss(batch)
        logits.assign_sub(rate * tape.gradient(loss, logits))
    return logits.numpy(), float(loss)


# Two examples; action 1 ("high") is right for the first only.
REWARDS = {(0,): [0.2, 1.0], (1,): [0.9, -0.1]}


def test_value_objective_asks_every_action_and_regresses_to_rewards():
    model = small_high_low()
    estimator = configured(model, objective="value", centered=False)
    batch, calls = hand_batch(model.plan, {"gate": tf.zeros([2, 2])}, REWARDS)
    loss = estimator.controller_loss(batch)
    assert sorted(calls) == [(0,), (1,)]
    # sum over actions of squared error, mean over examples.
    expected = ((0.2**2 + 0.9**2) + (1.0**2 + 0.1**2)) / 2
    np.testing.assert_allclose(loss, expected, rtol=1e-5)
    logits, _ = descend(estimator, model.plan, [[0.0, 0.0]] * 2, REWARDS)
    np.testing.assert_allclose(logits, [[0.2, 0.9], [1.0, -0.1]], atol=1e-3)
    # The controller's argmax is then the better action.
    greedy = model.plan.nodes["gate"].layer.greedy_action(logits)
    np.testing.assert_array_equal(greedy, [1, 0])


def test_centered_values_learn_the_differences_between_actions():
    model = small_high_low()
    estimator = configured(model, objective="value")
    logits, loss = descend(
        estimator, model.plan, [[3.0, 0.0], [0.0, 0.0]], REWARDS
    )
    assert loss < 1e-5
    np.testing.assert_allclose(
        logits[:, 1] - logits[:, 0], [0.7, -1.1], atol=1e-3
    )


def test_bernoulli_gate_logit_regresses_to_the_reward_difference():
    model = bernoulli_high_low()
    estimator = configured(model, objective="value")
    logits, _ = descend(estimator, model.plan, [[0.0], [0.0]], REWARDS)
    np.testing.assert_allclose(logits[:, 0], [0.7, -1.1], atol=1e-3)
    greedy = model.plan.nodes["gate"].layer.greedy_action(logits)
    np.testing.assert_array_equal(greedy, [1, 0])


def test_expected_objective_is_the_exact_expected_reward():
    model = small_high_low()
    estimator = configured(model, objective="expected", entropy_weight=0.0)
    logits = tf.Variable([[0.0, 0.0], [0.0, np.log(3.0)]])
    with tf.GradientTape() as tape:
        batch, _ = hand_batch(model.plan, {"gate": logits}, REWARDS)
        loss = estimator.controller_loss(batch)
    # Example 0: 0.5 * 0.2 + 0.5 * 0.9; example 1: 0.25 * 1.0 + 0.75 * -0.1.
    np.testing.assert_allclose(loss, -(0.55 + 0.175) / 2, rtol=1e-5)
    grad = tape.gradient(loss, logits).numpy()
    # Descending raises the better action of each example (1, then 0).
    assert grad[0, 1] < 0 < grad[0, 0]
    assert grad[1, 0] < 0 < grad[1, 1]


def test_entropy_bonus_lowers_the_loss_of_an_undecided_policy():
    model = small_high_low()
    plain = configured(model, objective="expected")
    bonus = configured(model, objective="expected", entropy_weight=0.5)
    batch, _ = hand_batch(model.plan, {"gate": tf.zeros([2, 2])}, REWARDS)
    np.testing.assert_allclose(
        plain.controller_loss(batch) - bonus.controller_loss(batch),
        0.5 * np.log(2.0),
        rtol=1e-5,
    )


def test_nested_controllers_enumerate_joint_decisions():
    model = toy_cascade()
    estimator = configured(model, objective="value", centered=False)
    # Joint rewards R[(exit1, exit2)] for one example.
    rewards = {(0, 0): [0.5], (0, 1): [0.5], (1, 0): [0.2], (1, 1): [0.8]}
    logits = {"exit1": tf.zeros([1, 2]), "exit2": tf.zeros([1, 2])}
    batch, calls = hand_batch(
        model.plan,
        logits,
        rewards,
        decisions={"exit1": tf.constant([1]), "exit2": tf.constant([0])},
    )
    joints, table = estimator.action_rewards(batch)
    assert sorted(calls) == sorted(rewards) and len(joints) == 4
    targets = estimator.value_targets(batch, joints, table)
    # exit1: stop is worth 0.5; continue the best of exit2's actions, 0.8.
    np.testing.assert_allclose(targets["exit1"], [[0.5, 0.8]])
    # exit2: with exit1 at its training decision (continue).
    np.testing.assert_allclose(targets["exit2"], [[0.2, 0.8]])


def test_greedy_downstream_asks_one_pass_per_action_of_each_controller():
    model = toy_cascade()
    estimator = configured(model, downstream="greedy")
    seen = []

    def reward_of(forced):
        # exit2 left out: it takes its own argmax in that pass.
        seen.append({q: int(d[0]) for q, d in forced.items()})
        return tf.constant([float(len(seen))])

    batch, _ = hand_batch(
        model.plan,
        {"exit1": tf.zeros([1, 2]), "exit2": tf.zeros([1, 2])},
        {(0, 0): [0.0]},
        decisions={"exit1": tf.constant([1]), "exit2": tf.constant([0])},
    )
    batch.reward_of = reward_of
    targets = estimator.greedy_targets(batch)
    # exit1's actions with exit2 deciding for itself; then exit2's, with
    # exit1 at its training decision (continue): 2 + 2 passes, not 4
    # joint decisions each.
    assert seen == [
        {"exit1": 0},
        {"exit1": 1},
        {"exit1": 1, "exit2": 0},
        {"exit1": 1, "exit2": 1},
    ]
    np.testing.assert_allclose(targets["exit1"], [[1.0, 2.0]])
    np.testing.assert_allclose(targets["exit2"], [[3.0, 4.0]])


def test_auto_takes_greedy_downstream_beyond_max_joint_decisions():
    x, y = toy_data(64)
    model = toy_cascade()  # 2 x 2 joint decisions
    model.compile(
        "adam", LOSS, estimator=FullInformation(max_joint_decisions=3)
    )
    assert model.estimators[0]._greedy
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)
    model.compile("adam", LOSS, estimator=FullInformation())
    assert not model.estimators[0]._greedy


def toy_cascade():
    stages = [
        keras.Sequential(
            [keras.Input((6,)), keras.layers.Dense(4, activation="relu")]
        ),
        keras.Sequential(
            [keras.Input((4,)), keras.layers.Dense(4, activation="relu")]
        ),
        keras.Sequential(
            [keras.Input((4,)), keras.layers.Dense(4, activation="relu")]
        ),
    ]
    return cascade(
        input_shape=(6,),
        num_classes=3,
        stages=stages,
        controller_hidden_units=(),
        value_range=None,  # toy features, not [0, 1] images
    )


def test_cascade_trains_end_to_end_with_every_stage_on_every_example():
    model = toy_cascade()
    model.compile(
        "adam",
        LOSS,
        cost_weight=0.1,
        estimator=FullInformation(objective="expected"),
    )
    assert model._training_routing == {"exit1": 1, "exit2": 1}
    x, y = toy_data(128)
    history = model.fit(x, y, epochs=1, batch_size=64, verbose=0)
    rates = (
        history.history["exit1_stop"][-1]
        + history.history["exit1_continue"][-1]
    )
    assert rates == pytest.approx(1.0)


def test_the_progress_bar_shows_the_cost_of_the_greedy_routes():
    # Every stage ran on every example in training (cost 1); `cost` shows
    # what the controllers' own decisions would have cost. With a zero
    # learning rate the model does not move, so it equals the cost of
    # routing the same examples at inference.
    model = toy_cascade()
    model.compile(
        keras.optimizers.SGD(0.0),
        LOSS,
        cost_weight=0.1,
        estimator=FullInformation(objective="value"),
    )
    x, y = toy_data(128)
    history = model.fit(x, y, epochs=1, batch_size=128, verbose=0)
    routed = model.route(x).mean_cost_fraction
    assert routed < 0.99  # some example stops early
    assert history.history["cost"][-1] == pytest.approx(routed, rel=1e-5)
    # `trained_cost`: what the training pass ran, every stage.
    assert history.history["trained_cost"] == [pytest.approx(1.0)]


def test_trained_cost_is_logged_only_where_routes_are_forced():
    model = toy_cascade()
    x, y = toy_data(64)
    # Uniformly random routes: half the examples stop at each exit.
    model.compile(
        "adam", LOSS, estimator=FullInformation(module_routing="uniform")
    )
    history = model.fit(x, y, epochs=1, batch_size=64, verbose=0)
    assert 0.1 < history.history["trained_cost"][0] < 0.9
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    assert "trained_cost" not in logs and "cost" in logs
    model.compile("adam", LOSS, estimator=FullInformation(module_routing=None))
    history = model.fit(x, y, epochs=1, batch_size=64, verbose=0)
    assert "trained_cost" not in history.history


def test_too_many_joint_decisions_is_a_clear_error():
    # The expected reward weighs every joint decision: no greedy fallback.
    model = toy_cascade()
    with pytest.raises(ValueError, match="max_joint_decisions=3"):
        model.compile(
            "adam",
            LOSS,
            estimator=FullInformation(
                objective="expected", max_joint_decisions=3
            ),
        )
    with pytest.raises(ValueError, match="max_joint_decisions=3"):
        model.compile(
            "adam",
            LOSS,
            estimator=FullInformation(downstream="best", max_joint_decisions=3),
        )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"objective": "reinforce"}, "objective"),
        ({"entropy_weight": -1.0}, "entropy_weight"),
        ({"module_routing": "everything"}, "module_routing"),
        ({"max_joint_decisions": 1}, "max_joint_decisions"),
        ({"downstream": "worst"}, "downstream"),
        ({"downstream": "greedy", "objective": "expected"}, "greedy"),
    ],
)
def test_bad_arguments_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FullInformation(**kwargs)


def test_module_routing_is_checked_against_the_graph():
    model = small_high_low()
    with pytest.raises(ValueError, match="no action 'fast'"):
        model.compile(
            "adam",
            LOSS,
            estimator=FullInformation(module_routing={"gate": "fast"}),
        )
    with pytest.raises(ValueError, match="not controllers"):
        model.compile(
            "adam", LOSS, estimator=FullInformation(module_routing={"other": 0})
        )
    model.compile(
        "adam", LOSS, estimator=FullInformation(module_routing={"gate": "stop"})
    )
    assert model._training_routing == {"gate": 0}
    no_exits = exit_rule_model(declare_exit=False)
    with pytest.raises(ValueError, match="early exit"):
        no_exits.compile(
            "adam", LOSS, estimator=FullInformation(module_routing="continue")
        )
    # "auto" without exits: every action equally likely in training.
    no_exits.compile("adam", LOSS, estimator=FullInformation())
    assert no_exits._training_routing == {"gate": [0.5, 0.5]}
    no_exits.compile(
        "adam", LOSS, estimator=FullInformation(module_routing=None)
    )
    assert no_exits._training_routing == {}


def test_missing_reward_of_is_a_clear_error():
    model = small_high_low()
    estimator = configured(model)
    batch, _ = hand_batch(model.plan, {"gate": tf.zeros([2, 2])}, REWARDS)
    batch.reward_of = None
    with pytest.raises(ValueError, match="reward_of"):
        estimator.controller_loss(batch)


def exit_rule_model(declare_exit=True):
    """Input 6 features; a linear cheap head; the gate reads the input.
    The expensive branch is an MLP. `declare_exit`: the gate is declared
    an early exit."""
    graph = Graph()
    graph.input("x", shape=(6,))
    graph.f_node("low", keras.layers.Dense(2, name="low"), inputs="x")
    graph.q_node(
        "gate",
        Controller(2, hidden_units=(16,), seed=0),
        inputs="x",
        actions=("stop", "high"),
    )
    graph.dummy("stop", inputs="low", when=("gate", "stop"))
    graph.f_node(
        "high",
        keras.Sequential(
            [
                keras.Input((6,)),
                keras.layers.Dense(32, activation="relu"),
                keras.layers.Dense(2),
            ]
        ),
        inputs="x",
        when=("gate", "high"),
    )
    graph.merge("logits", inputs=["stop", "high"])
    graph.output("logits")
    graph.supervise("low")
    if declare_exit:
        graph.early_exit("gate", head="low", stop="stop", proceed="high")
    return D2NNModel(graph)


def exit_rule_data(n, seed=0):
    """The label is x0 > 0 where x2 < 0 (a linear head gets it right) and
    x0 * x1 > 0 where x2 > 0 (only the MLP can). The best linear head
    predicts x0 > 0, right where x2 < 0 or x1 > 0: the expensive branch
    fixes the examples with x2 > 0 and x1 < 0."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype("float32")
    y = np.where(x[:, 2] < 0, x[:, 0] > 0, x[:, 0] * x[:, 1] > 0)
    return x, y.astype("int32")


@pytest.mark.parametrize("objective", ["value", "expected"])
def test_gate_learns_which_examples_need_the_expensive_branch(objective):
    keras.utils.set_random_seed(0)
    model = exit_rule_model()
    model.compile(
        keras.optimizers.Adam(1e-2),
        LOSS,
        cost_weight=0.3,
        estimator=FullInformation(objective=objective),
    )
    x, y = exit_rule_data(2048)
    model.fit(x, y, epochs=10, batch_size=128, verbose=0)
    x_test, y_test = exit_rule_data(1000, seed=1)
    decisions = model.route(x_test).decisions["gate"]
    hard = (x_test[:, 2] > 0) & (x_test[:, 1] < 0)
    assert decisions[hard].mean() > 0.7
    assert decisions[~hard].mean() < 0.3


def test_save_and_load_keep_the_estimator(tmp_path):
    model = small_high_low()
    model.compile(
        "adam",
        LOSS,
        cost_weight=0.1,
        estimator=FullInformation(
            objective="expected",
            entropy_weight=0.01,
            centered=False,
            module_routing={"gate": "high"},
            max_joint_decisions=4,
        ),
    )
    x, y = toy_data(128)
    model.fit(x, y, epochs=1, batch_size=64, verbose=0)
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    assert isinstance(loaded.policy, FullInformation)
    config = loaded.policy.get_config()
    assert (
        config["objective"],
        config["entropy_weight"],
        config["centered"],
        config["module_routing"],
        config["max_joint_decisions"],
    ) == ("expected", 0.01, False, {"gate": "high"}, 4)
    assert loaded._training_routing == {"gate": 1}
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5
    )
    loaded.fit(x, y, epochs=1, batch_size=64, verbose=0)


def test_named_estimators():
    assert "full_information" in NAMED
    assert by_name("full_information").objective == "value"
    assert by_name("full_information_expected").objective == "expected"


def test_a_graph_may_name_the_route_its_modules_train_on():
    from keras_d2nn.architectures import hierarchical

    model = hierarchical()
    model.compile("adam", LOSS, estimator=FullInformation())
    # Every expert on every example: the sets' last action, "all".
    assert model._training_routing == {"route": 6}
    model.graph.metadata["training_routing"] = {"route": "every"}
    with pytest.raises(
        ValueError,
        match=r"training_routing'\] names action 'every' of 'route'",
    ):
        model.compile("adam", LOSS, estimator=FullInformation())
