"""Straight-through Gumbel-softmax training of controllers."""

import tensorflow as tf

from keras_d2nn.api_export import keras_d2nn_export
from keras_d2nn.estimators.base import Estimator


@keras_d2nn_export
class GumbelSoftmax(Estimator):
    """Straight-through Gumbel-softmax: decisions are hard one-hot in the
    forward pass, and gradients flow through their relaxed sample.

    Every node's output is multiplied by its relaxed execution indicator,
    so the supervised loss trains the controllers directly; the cost term
    `cost_weight * executed cost / full cost` (FLOPs, or milliseconds with
    `compile(cost="latency")`) is differentiable too and is this
    estimator's loss. The gradient of a decision needs the outputs of
    the branches not taken, so **training runs masked** (every branch is
    computed); inference stays routed.

    Args:
        temperature: temperature of the relaxation (a variable: anneal it
            with `keras_d2nn.schedules.VariableSchedule`).
        entropy_weight: optional entropy bonus.

    Example:

    ```python
    model.compile("adam", loss, estimator=keras_d2nn.GumbelSoftmax(0.5))
    ```

    References:
        Jang, Gu & Poole, "Categorical reparameterization with
        Gumbel-softmax", ICLR 2017.
    """

    needs_all_branches = True
    straight_through = True

    def __init__(self, temperature=1.0, entropy_weight=0.0, **kwargs):
        super().__init__(**kwargs)
        if not temperature > 0:
            raise ValueError(
                f"`temperature` should be > 0. Received: "
                f"temperature={temperature}"
            )
        self.initial_temperature = float(temperature)
        self.entropy_weight = float(entropy_weight)
        self.temperature = self.add_weight(
            shape=(), initializer="ones", trainable=False, name="temperature"
        )
        self.temperature.assign(self.initial_temperature)

    def controller_loss(self, batch):
        trace = batch.trace
        if batch.cost is None:
            cost = tf.reduce_mean(trace.soft_executed_flops) / batch.full_flops
        else:
            cost = tf.reduce_mean(batch.cost.soft_executed(trace)) / (
                batch.cost.full or 1.0
            )
        entropy = tf.add_n(
            [tf.reduce_mean(trace.entropies[q]) for q in batch.controllers]
        )
        return batch.cost_weight * cost - self.entropy_weight * entropy

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "temperature": self.initial_temperature,
                "entropy_weight": self.entropy_weight,
            }
        )
        return config
