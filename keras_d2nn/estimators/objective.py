"""The training objective of a D2NN beyond its supervised loss.

`D2NNModel.train_step` composes the parts defined here:

- `RewardSettings.reward`: each example's reward for the decisions in a
  trace (task reward, per example or per mini-bag, minus the weighted
  cost fraction: FLOPs by default, or measured latency);
- `controllers_loss`: the loss of each estimator over the controllers it
  trains (those not under forced routing);
- `supervision_loss`: the loss of supervised intermediate nodes on the
  examples they ran on.
"""

import dataclasses

import tensorflow as tf

from keras_d2nn.estimators import rewards
from keras_d2nn.estimators.base import PolicyBatch
from keras_d2nn.estimators.cost import CostMeasure
from keras_d2nn.execution import replicas


def first(structure):
    """The first value of a dict (several outputs or losses), or the value
    itself."""
    if isinstance(structure, dict):
        return next(iter(structure.values()))
    return structure


@dataclasses.dataclass
class RewardSettings:
    """How the reward of a trace's decisions is computed.

    Attributes:
        task_reward: `"correct"`, `"neg_loss"` or a callable
            `(y_true, y_pred) -> (batch,)` (see `rewards.TASK_REWARDS`).
        loss: the compiled supervised loss (for `"neg_loss"`).
        full_flops: FLOPs per example of running every node.
        cost_weight: weight of the cost fraction (a scalar variable, so
            that schedules change it without retracing).
        bag_size: the paper's mini-bag size, or None for per-example
            rewards.
        bag_metric: callable `(y_true, y_pred) -> scalar` of one bag.
        cost: the `cost.CostMeasure` charged (`compile(cost=...)`); None
            charges the FLOP fraction `executed_flops / full_flops`.

    Example:

    ```python
    settings = RewardSettings(full_flops=model.full_flops, cost_weight=0.3)
    settings.reward(model.trace(images), labels)  # (batch,)
    ```
    """

    task_reward: object = "correct"
    loss: object = None
    full_flops: float = 1.0
    cost_weight: object = 0.0
    bag_size: object = None
    bag_metric: object = None
    cost: CostMeasure | None = None

    def cost_fraction(self, trace):
        """Each example's cost `(batch,)` as a fraction of the full
        network's, in the unit training charges.

        Example:

        ```python
        settings = keras_d2nn.estimators.objective.RewardSettings(
            full_flops=model.full_flops)
        settings.cost_fraction(model.trace(images[:8]))  # (8,)
        ```
        """
        if self.cost is None:
            return trace.executed_flops / self.full_flops
        return self.cost.fraction(trace)

    def reward(self, trace, y):
        """Per-example reward `(batch,)` of the decisions in `trace` (no
        gradient flows through it)."""
        y, y_pred = first(y), first(trace.outputs)
        cost_fraction = self.cost_fraction(trace)
        if self.bag_size:
            task = rewards.minibag(self.bag_metric, self.bag_size, y, y_pred)
        else:
            task = rewards.task_reward(
                self.task_reward, y, y_pred, loss=self.loss
            )
        return tf.stop_gradient(
            rewards.reward(task, cost_fraction, self.cost_weight)
        )


def controllers_loss(
    estimator_groups,
    learned,
    trace,
    y,
    settings,
    plan,
    greedy_trace,
    forced_trace=None,
):
    """The summed losses of the estimators, each over its learned
    controllers.

    Args:
        estimator_groups: `[(estimator, controllers)]` from `compile`.
        learned: the controllers that learn in this step (not forced).
        trace: the training `ExecutionTrace`.
        y: the labels.
        settings: `RewardSettings`.
        plan: the model's `Plan`.
        greedy_trace: callable returning the trace of the greedy
            (inference) decisions, for baselines that need it.
        forced_trace: callable `(decisions) -> ExecutionTrace` in
            inference mode with `decisions` forced, for estimators that
            learn from every action's reward.

    Example: `loss = controllers_loss(groups, {"gate"}, trace, y, settings,
    model.plan, lambda: model.trace(x))`.
    """
    total = tf.constant(0.0)
    if not learned:
        return total
    reward = settings.reward(trace, y)

    def greedy_reward():
        return settings.reward(greedy_trace(), y)

    def reward_of(decisions):
        return settings.reward(forced_trace(decisions), y)

    for estimator, controllers in estimator_groups:
        mine = tuple(q for q in controllers if q in learned)
        if mine:
            total += estimator.controller_loss(
                PolicyBatch(
                    trace=trace,
                    controllers=mine,
                    reward=reward,
                    greedy_reward=greedy_reward,
                    plan=plan,
                    reward_of=reward_of if forced_trace is not None else None,
                    cost_weight=settings.cost_weight,
                    full_flops=settings.full_flops,
                    cost=settings.cost,
                )
            )
    return total


def supervision_loss(plan, loss, trace, y):
    """Loss of the supervised intermediate nodes, on examples they ran.

    Divided by the global batch size, as `keras.Model.compute_loss` is.

    Example: `supervision_loss(model.plan, model.loss, trace, labels)`.
    """
    if not plan.supervised:
        return tf.constant(0.0)
    y = first(y)
    total = 0.0
    for supervision in plan.supervised:
        target = y
        if supervision.label_map is not None:
            target = tf.gather(
                supervision.label_map, tf.cast(tf.reshape(y, [-1]), tf.int32)
            )
        per_example = rewards.per_example_loss(
            first(loss), target, trace.values[supervision.node]
        )
        ran = tf.cast(trace.executed[supervision.node], per_example.dtype)
        if supervision.classes is not None:
            # Only the examples of its classes count (an expert's).
            labels = tf.cast(tf.reshape(y, [-1, 1]), tf.int32)
            ran *= tf.cast(
                tf.reduce_any(
                    tf.equal(labels, tf.constant([supervision.classes])), -1
                ),
                per_example.dtype,
            )
        total += supervision.weight * tf.reduce_sum(per_example * ran)
    global_batch = (
        tf.cast(tf.shape(trace.executed_flops)[0], tf.float32)
        * replicas.num_replicas()
    )
    return total / global_batch
