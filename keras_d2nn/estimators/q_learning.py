"""Q-learning of controllers, as in the D2NN paper."""

import tensorflow as tf

from keras_d2nn.api_export import keras_d2nn_export
from keras_d2nn.estimators.base import Estimator


def next_controllers(plan):
    """Per controller, the controllers downstream of it, in plan order.

    Downstream means reachable through data or control edges: the decisions
    that may follow this one for the same example.

    Example: `next_controllers(cascade.plan)  # {"exit1": ("exit2",), ...}`.
    """
    children = {node.name: set() for node in plan.order}
    for node in plan.order:
        for parent in list(node.inputs) + list(node.control):
            children[parent].add(node.name)
    result = {}
    for q in plan.controllers:
        seen, frontier = set(), [q]
        while frontier:
            for child in children[frontier.pop()]:
                if child not in seen:
                    seen.add(child)
                    frontier.append(child)
        result[q] = tuple(c for c in plan.controllers if c in seen)
    return result


@keras_d2nn_export
class QLearning(Estimator):
    """Q-learning: the controller's outputs are Q-values, one per action.

    Exploration is epsilon-greedy (the controllers are switched to
    `exploration="epsilon_greedy"` with this `epsilon`). Each decision's
    Q(state, action) regresses, by squared error, to a target:

    - the example's reward, when no further decision follows it;
    - `discount * max_a' Q(next state, a')` of the next decision taken for
      that example (the first downstream controller that ran), otherwise.

    Training stays routed. Needs categorical controllers (one Q-value per
    action); Bernoulli gates are refused at `compile`.

    Args:
        epsilon: exploration rate (a `Controller` variable, so callbacks may
            anneal it; see `keras_d2nn.schedules`).
        discount: discount of the next decision's value.

    Example:

    ```python
    model.compile("adam", loss, estimator=keras_d2nn.QLearning(epsilon=0.1))
    ```

    References:
        Watkins & Dayan, "Q-learning", Machine Learning 1992; Liu & Deng,
        AAAI 2018 (section 3.3).
    """

    def __init__(self, epsilon=0.1, discount=1.0, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(
                f"`epsilon` should be in [0, 1]. Received: epsilon={epsilon}"
            )
        if not 0.0 <= discount <= 1.0:
            raise ValueError(
                f"`discount` should be in [0, 1]. Received: discount={discount}"
            )
        self.epsilon = float(epsilon)
        self.discount = float(discount)
        self._next = {}

    def configure(self, model, controllers):
        plan = model.plan
        for q in controllers:
            controller = plan.nodes[q].layer
            if controller.distribution != "categorical":
                raise ValueError(
                    f"QLearning needs one Q-value per action, but controller "
                    f"'{q}' is a {controller.distribution} gate with one "
                    "logit. Use Controller(..., distribution='categorical')."
                )
            controller.exploration = "epsilon_greedy"
            controller.epsilon.assign(self.epsilon)
        self._next = next_controllers(plan)

    def targets(self, batch):
        """Per controller, the regression target `(batch,)` (no gradient).

        Example:

        ```python
        model = keras_d2nn.architectures.cascade()  # exit1, then exit2
        estimator = keras_d2nn.QLearning(epsilon=0.1, discount=0.9)
        estimator.configure(model, model.plan.controllers)
        batch = keras_d2nn.estimators.PolicyBatch(
            trace=model.trace(images[:8], training=True),
            controllers=model.plan.controllers, reward=tf.ones([8]),
            greedy_reward=None, plan=model.plan)
        targets = estimator.targets(batch)
        # exit1: 0.9 * max Q of exit2 where exit2 ran, else the reward 1.
        targets["exit1"], targets["exit2"]
        ```
        """
        trace, reward = batch.trace, tf.cast(batch.reward, tf.float32)
        targets = {}
        for q in batch.controllers:
            target = reward
            # Walk the downstream controllers last to first, so the first
            # one that ran for an example wins.
            for follower in reversed(self._next.get(q, ())):
                value = self.discount * tf.reduce_max(
                    trace.logits[follower], axis=-1
                )
                target = tf.where(trace.executed[follower], value, target)
            targets[q] = tf.stop_gradient(target)
        return targets

    def controller_loss(self, batch):
        trace = batch.trace
        total = 0.0
        for q, target in self.targets(batch).items():
            taken = tf.maximum(trace.decisions[q], 0)
            q_value = tf.gather(trace.logits[q], taken, batch_dims=1)
            ran = tf.cast(trace.executed[q], tf.float32)
            total += tf.reduce_mean(ran * tf.square(q_value - target))
        return total

    def get_config(self):
        config = super().get_config()
        config.update({"epsilon": self.epsilon, "discount": self.discount})
        return config
