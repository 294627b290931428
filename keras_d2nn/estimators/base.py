"""What every controller-training estimator receives and returns."""

import dataclasses

import keras
import tensorflow as tf

from keras_d2nn.estimators import budget
from keras_d2nn.estimators.cost import CostMeasure


@dataclasses.dataclass
class PolicyBatch:
    """One training batch as an estimator sees it.

    Attributes:
        trace: the `ExecutionTrace` of the batch (training mode).
        controllers: names of the controllers this estimator trains here
            (those with forced routing are left out).
        reward: per-example reward `(batch,)` of the decisions taken.
        greedy_reward: callable returning the per-example reward the greedy
            (inference) decisions would have got; runs one more forward pass.
        reward_of: callable `(decisions) -> (batch,)`: the per-example
            reward had the controllers taken `decisions` (`{controller: int
            (batch,)}`; controllers left out decide greedily), by one more
            forward pass in inference mode. Estimators that learn from
            every action's reward (full information) call it per action.
        plan: the model's `Plan`.
        cost_weight: the model's cost weight (a scalar tensor).
        full_flops: FLOPs per example of running every node.
        cost: the `cost.CostMeasure` the reward charges (FLOPs or
            latency); None means FLOPs.

    Example:

    ```python
    trace = model.trace(images[:8], training=True)  # the gate samples
    predicted = tf.argmax(trace.outputs["logits"], -1, output_type=tf.int32)
    correct = tf.cast(predicted == labels[:8], tf.float32)
    batch = keras_d2nn.estimators.PolicyBatch(
        trace=trace, controllers=("gate",), reward=correct,
        greedy_reward=None, plan=model.plan)
    keras_d2nn.Reinforce(baseline="none").controller_loss(batch)
    ```
    """

    trace: object
    controllers: tuple
    reward: tf.Tensor
    greedy_reward: object
    plan: object
    reward_of: object = None
    cost_weight: object = 0.0
    full_flops: float = 1.0
    cost: CostMeasure | None = None


class Estimator(keras.layers.Layer):
    """Base class: turns a `PolicyBatch` into the controllers' loss.

    Subclasses set `needs_all_branches` (True when training must compute
    every branch, i.e. masked execution) and implement `controller_loss`.
    `budget_learning_rate` is the step of a budget's multiplier that suits
    how fast the estimator's controllers follow a change of the reward
    (`compile(target_cost=...)` takes the smallest of the model's
    estimators' unless given one).
    `configure(model, controllers)` is called once at `compile`: it may
    check the controllers, adjust their exploration and create weights,
    and set `training_routing`, `{controller: action index}` (or a list
    of probabilities, one per action, to draw each example's action) that
    the training pass forces (so modules train on those routes whatever
    the controllers decide; `{}`, the default, lets the controllers
    sample).

    Example:

    ```python
    class NoLearning(keras_d2nn.Estimator):
        # Leaves the controllers as they are.
        def controller_loss(self, batch):
            return tf.constant(0.0)

    model.compile("adam", loss, estimator=NoLearning())
    model.fit(images, labels, epochs=1, verbose=0)
    ```
    """

    needs_all_branches = False
    straight_through = False
    budget_learning_rate = budget.DEFAULT_LEARNING_RATE

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.training_routing = {}
        self.built = True

    def configure(self, model, controllers):
        """Prepares for `controllers` of `model` (a `D2NNModel`).

        Example:

        ```python
        estimator = keras_d2nn.FullInformation(module_routing="continue")
        estimator.configure(model, ("gate",))  # as `compile` does
        estimator.training_routing  # {"gate": 1}: modules train on "high"
        ```
        """

    def controller_loss(self, batch):
        """A scalar loss whose gradient trains the controllers.

        Example:

        ```python
        estimator = keras_d2nn.Reinforce(baseline="none")
        gate = model.plan.nodes["gate"].layer
        with tf.GradientTape() as tape:
            trace = model.trace(images[:8], training=True)
            batch = keras_d2nn.estimators.PolicyBatch(
                trace=trace, controllers=("gate",),
                reward=tf.cast(trace.decisions["gate"], tf.float32),
                greedy_reward=None, plan=model.plan)
            controller_loss = estimator.controller_loss(batch)
        # Descending it makes the rewarded action ("high") likelier.
        tape.gradient(controller_loss, gate.trainable_variables)
        ```
        """
        raise NotImplementedError
