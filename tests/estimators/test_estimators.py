"""Estimators on hand-checkable cases, and their effect on routing."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_d2nn
from keras_d2nn import Controller
from keras_d2nn import D2NNModel
from keras_d2nn import Graph
from keras_d2nn import GumbelSoftmax
from keras_d2nn import QLearning
from keras_d2nn import Reinforce
from keras_d2nn.estimators import PolicyBatch
from keras_d2nn.estimators import rewards
from keras_d2nn.execution import ExecutionTrace

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def one_controller_batch(logits, action, reward, greedy=None):
    """A PolicyBatch for one controller that ran on every example."""
    controller = Controller(2, hidden_units=())
    _, log_prob, entropy = controller.decide(logits, action=action)
    trace = ExecutionTrace(
        outputs={},
        values={},
        executed={"q": tf.ones_like(action, tf.bool)},
        decisions={"q": action},
        log_probs={"q": log_prob},
        entropies={"q": entropy},
        logits={"q": logits},
        executed_flops=tf.zeros_like(reward),
    )
    return PolicyBatch(
        trace=trace,
        controllers=("q",),
        reward=reward,
        greedy_reward=lambda: greedy,
        plan=None,
    )


def gradient(estimator, logits_value, action, reward, greedy=None):
    logits = tf.Variable(logits_value)
    with tf.GradientTape() as tape:
        batch = one_controller_batch(
            logits, tf.constant(action), tf.constant(reward), greedy
        )
        loss = estimator.controller_loss(batch)
    return loss, tape.gradient(loss, logits)


def test_reinforce_gradient_sign_and_size():
    # One example, uniform policy, action 1 rewarded 2: the surrogate is
    # -2 log(0.5) and its gradient -2 (onehot(1) - p) = [1, -1]: descending
    # it raises the logit of the rewarded action.
    estimator = Reinforce(baseline="none", entropy_weight=0.0)
    loss, grad = gradient(estimator, [[0.0, 0.0]], [1], [2.0])
    np.testing.assert_allclose(loss, -2.0 * np.log(0.5), rtol=1e-6)
    np.testing.assert_allclose(grad, [[1.0, -1.0]], rtol=1e-6)
    # A negative reward pushes the other way.
    _, grad = gradient(estimator, [[0.0, 0.0]], [1], [-2.0])
    np.testing.assert_allclose(grad, [[-1.0, 1.0]], rtol=1e-6)


def test_moving_average_baseline_removes_a_constant_reward():
    estimator = Reinforce(baseline="moving_average", entropy_weight=0.0)
    gradient(estimator, [[0.0, 0.0]], [1], [3.0])
    # Bias-corrected: after one batch of reward 3 the baseline is 3.
    np.testing.assert_allclose(estimator.moving_average(), 3.0, rtol=1e-6)
    _, grad = gradient(estimator, [[0.0, 0.0]], [1], [3.0])
    np.testing.assert_allclose(grad, [[0.0, 0.0]], atol=1e-6)


def test_self_critical_baseline_is_the_greedy_reward():
    estimator = Reinforce(baseline="self_critical", entropy_weight=0.0)
    _, grad = gradient(
        estimator,
        [[0.0, 0.0], [0.0, 0.0]],
        [1, 1],
        [1.0, 0.0],
        greedy=tf.constant([0.0, 0.0]),
    )
    # Example 0 beat its greedy decision by 1, example 1 tied: mean over 2.
    np.testing.assert_allclose(grad, [[0.25, -0.25], [0.0, 0.0]], atol=1e-6)


def test_normalized_advantages_have_unit_scale():
    estimator = Reinforce(
        baseline="none", entropy_weight=0.0, normalize_advantage=True
    )
    _, small = gradient(estimator, [[0.0, 0.0]] * 2, [1, 1], [0.1, -0.1])
    _, large = gradient(estimator, [[0.0, 0.0]] * 2, [1, 1], [10.0, -10.0])
    np.testing.assert_allclose(small, large, rtol=1e-3)


def test_entropy_bonus_pushes_towards_uniform():
    estimator = Reinforce(baseline="none", entropy_weight=1.0)
    _, grad = gradient(estimator, [[2.0, 0.0]], [0], [0.0])
    # Descending lowers the dominant logit and raises the other.
    assert grad[0, 0] > 0 > grad[0, 1]


def two_decision_chain():
    """q1 stops or continues to `a`, where q2 decides between b and c."""
    graph = Graph()
    graph.input("x", shape=(2,))
    graph.q_node(
        "q1", Controller(2, hidden_units=()), inputs="x", actions=("stop", "go")
    )
    graph.dummy("stop", inputs="x", when=("q1", "stop"))
    graph.f_node("a", keras.layers.Dense(2), inputs="x", when=("q1", "go"))
    graph.q_node("q2", Controller(2, hidden_units=()), inputs="a")
    graph.f_node("b", keras.layers.Dense(2), inputs="a", when=("q2", 0))
    graph.f_node("c", keras.layers.Dense(2), inputs="a", when=("q2", 1))
    graph.merge("out", inputs=["stop", "b", "c"])
    graph.output("out")
    return D2NNModel(graph)


def test_q_learning_targets_for_a_two_decision_chain():
    model = two_decision_chain()
    estimator = QLearning(epsilon=0.0, discount=0.9)
    estimator.configure(model, model.plan.controllers)
    x = np.random.default_rng(0).normal(size=(4, 2)).astype("float32")
    trace = model.trace(
        x,
        decisions={
            "q1": tf.constant([0, 1, 1, 0]),
            "q2": tf.constant([0, 0, 1, 1]),
        },
    )
    reward = tf.constant([1.0, 2.0, 3.0, 4.0])
    batch = PolicyBatch(
        trace=trace,
        controllers=("q1", "q2"),
        reward=reward,
        greedy_reward=None,
        plan=model.plan,
    )
    targets = estimator.targets(batch)
    q2_best = np.max(trace.logits["q2"].numpy(), axis=-1)
    # q1 stopped on examples 0 and 3: terminal, the reward. Elsewhere the
    # next decision is q2's: 0.9 * max Q.
    np.testing.assert_allclose(
        targets["q1"], [1.0, 0.9 * q2_best[1], 0.9 * q2_best[2], 4.0], rtol=1e-6
    )
    np.testing.assert_allclose(targets["q2"], reward)
    # The loss regresses Q(state, action taken) where the controller ran.
    loss = estimator.controller_loss(batch)
    q1_taken = trace.logits["q1"].numpy()[np.arange(4), [0, 1, 1, 0]]
    q2_taken = trace.logits["q2"].numpy()[np.arange(4), [0, 0, 1, 1]]
    ran2 = np.array([0, 1, 1, 0])
    expected = np.mean((q1_taken - targets["q1"].numpy()) ** 2) + np.mean(
        ran2 * (q2_taken - reward.numpy()) ** 2
    )
    np.testing.assert_allclose(loss, expected, rtol=1e-5)


def test_q_learning_refuses_bernoulli_gates():
    graph = Graph()
    graph.input("x", shape=(2,))
    graph.q_node("q", Controller(2, distribution="bernoulli"), inputs="x")
    graph.f_node("a", keras.layers.Dense(2), inputs="x", when=("q", 0))
    graph.f_node("b", keras.layers.Dense(2), inputs="x", when=("q", 1))
    graph.merge("m", inputs=["a", "b"])
    graph.output("m")
    with pytest.raises(ValueError, match="QLearning needs one Q-value"):
        D2NNModel(graph).compile("adam", LOSS, estimator=QLearning())


def test_gumbel_gates_are_hard_forward_soft_backward():
    controller = Controller(3, hidden_units=(), seed=0)
    logits = tf.Variable([[0.5, 0.0, -0.5]] * 4)
    noise = np.random.default_rng(0).uniform(0.05, 0.95, (4, 3))
    values = np.array([1.0, 2.0, 3.0])
    temperature = 0.5
    with tf.GradientTape() as tape:
        action, _, _, gate = controller.gumbel_decide(
            logits, temperature, noise=tf.constant(noise, tf.float32)
        )
        picked = tf.reduce_sum(gate * values[None].astype("float32"))
    # Forward: the one-hot of the Gumbel-max sample.
    perturbed = logits.numpy() - np.log(-np.log(noise))
    np.testing.assert_array_equal(action, np.argmax(perturbed, axis=-1))
    np.testing.assert_allclose(gate, tf.one_hot(action, 3))
    # Backward: the gradient of the relaxed sample s = softmax(perturbed /
    # T), d(s . v) / d logits = s * (v - s . v) / T, row by row.
    relaxed = np.exp(perturbed / temperature)
    relaxed /= relaxed.sum(axis=-1, keepdims=True)
    expected = relaxed * (values - (relaxed @ values)[:, None]) / temperature
    grad = tape.gradient(picked, logits).numpy()
    np.testing.assert_allclose(grad, expected, rtol=1e-4, atol=1e-6)
    assert np.abs(expected).min() > 1e-4  # every entry has a gradient


def test_gumbel_soft_flops_equal_the_executed_flops():
    model = two_decision_chain()
    x = np.random.default_rng(1).normal(size=(16, 2)).astype("float32")
    trace = model.trace(
        x, mode="masked", training=True, straight_through={"q1": 1.0, "q2": 1.0}
    )
    np.testing.assert_allclose(
        trace.soft_executed_flops, trace.executed_flops, rtol=1e-6
    )
    with pytest.raises(ValueError, match="use mode='masked'"):
        model.trace(x, straight_through={"q1": 1.0})


def test_f1_and_mini_bag_rewards_by_hand():
    labels = tf.constant([1, 0, 1, 1, 0])
    # Predictions: 1, 1, 0, 1, 0.
    logits = tf.constant(
        [[0.0, 1.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]
    )
    # Class 1: tp 2, fp 1, fn 1 -> F1 = 4/6.
    np.testing.assert_allclose(rewards.f1_score(labels, logits, 1), 2 / 3)
    # Class 0: tp 1, fp 1, fn 1 -> 0.5; macro = (2/3 + 1/2) / 2.
    np.testing.assert_allclose(rewards.f1_score(labels, logits), 7 / 12)
    # Bags of 2: [1,0 | 1,1 | 0]; positive-class F1 per bag.
    bagged = rewards.minibag(
        lambda t, p: rewards.f1_score(t, p, 1), 2, labels, logits
    )
    # Bag 1: pred 1,1 vs 1,0 -> tp 1 fp 1 -> 2/3. Bag 2: pred 0,1 vs 1,1
    # -> tp 1 fn 1 -> 2/3. Bag 3: no positive at all -> 1.
    np.testing.assert_allclose(
        bagged, [2 / 3, 2 / 3, 2 / 3, 2 / 3, 1.0], rtol=1e-6
    )


def toy_high_low(seed=0):
    keras.utils.set_random_seed(seed)
    low = keras.Sequential([keras.Input((2,)), keras.layers.Dense(4)])
    high = keras.Sequential(
        [
            keras.Input((2,)),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dense(2),
        ]
    )
    return keras_d2nn.architectures.high_low(
        input_shape=(2,),
        num_classes=2,
        low_network=low,
        high_network=high,
        controller=Controller(2, hidden_units=(8,)),
        value_range=None,  # toy features, not [0, 1] images
    )


def xor_data(n=1024):
    x = np.random.default_rng(0).uniform(-1, 1, size=(n, 2)).astype("float32")
    return x, ((x[:, 0] > 0) != (x[:, 1] > 0)).astype("int32")


ESTIMATORS = {
    "reinforce": lambda: Reinforce(),
    "reinforce_value": lambda: Reinforce(baseline="value"),
    "reinforce_self_critical": lambda: Reinforce(baseline="self_critical"),
    "q_learning": lambda: QLearning(epsilon=0.2),
    "gumbel": lambda: GumbelSoftmax(),
}


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_training_moves_routing_the_way_the_reward_favours(name):
    # XOR: the linear low path cannot solve it, the MLP can. Without cost
    # the reward favours the expensive branch; with a cost above the
    # accuracy it buys, stopping.
    x, y = xor_data()
    shares = {}
    for cost_weight in (0.0, 2.0):
        model = toy_high_low()
        model.compile(
            keras.optimizers.Adam(0.01),
            LOSS,
            cost_weight=cost_weight,
            estimator=ESTIMATORS[name](),
        )
        model.fit(x, y, epochs=12, batch_size=64, verbose=0)
        shares[cost_weight] = np.mean(model.route(x)["decisions"]["gate"] == 1)
    assert shares[0.0] > 0.7, shares
    assert shares[2.0] < 0.3, shares


def test_estimators_per_controller_survive_saving(tmp_path):
    model = two_decision_chain()
    model.compile(
        "adam",
        LOSS,
        cost_weight=0.1,
        reward_bag_size=4,
        estimator={
            "q1": QLearning(epsilon=0.2),
            "q2": Reinforce(baseline="value"),
        },
    )
    x = np.random.default_rng(0).normal(size=(32, 2)).astype("float32")
    y = np.random.default_rng(1).integers(0, 2, 32)
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    kinds = {qs: type(est).__name__ for est, qs in loaded._estimator_groups}
    assert kinds == {("q1",): "QLearning", ("q2",): "Reinforce"}
    assert loaded.reward_bag_size == 4
    critic = model._estimator_groups[1][0].critic
    loaded_critic = loaded._estimator_groups[1][0].critic
    for a, b in zip(critic.weights, loaded_critic.weights):
        np.testing.assert_allclose(a, b)
    with pytest.raises(ValueError, match="not controllers"):
        model.compile("adam", LOSS, estimator={"nope": QLearning()})
