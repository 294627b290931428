"""Gradient estimators for controllers' discrete decisions.

`Reinforce` is the default: the score-function (REINFORCE) estimator with a
moving-average baseline and an entropy bonus. It needs only the decisions
that were taken, so training stays routed: skipped branches cost nothing.
"""

import keras
import tensorflow as tf

from keras_d2nn.api_export import keras_d2nn_export


@keras_d2nn_export
class Reinforce(keras.layers.Layer):
    """REINFORCE with a moving-average baseline and an entropy bonus.

    For a batch with per-example rewards `r`, summed log-probabilities of
    the decisions taken `log_p` and summed entropies `h`, the loss is
    `mean(-(r - b) * log_p) - entropy_weight * mean(h)`, where `b` is an
    exponential moving average of past mean rewards (bias-corrected, so the
    first batches are not pulled towards 0). The baseline is a variable and
    is saved with the model.

    Args:
        entropy_weight: weight of the entropy bonus (>= 0).
        baseline_momentum: momentum of the moving average, in [0, 1).

    Example:

    ```python
    estimator = keras_d2nn.Reinforce(entropy_weight=0.01)
    loss = estimator.policy_loss(log_prob_sum, entropy_sum, reward)
    ```

    References:
        Williams, "Simple statistical gradient-following algorithms for
        connectionist reinforcement learning", Machine Learning 1992.
    """

    def __init__(self, entropy_weight=0.01, baseline_momentum=0.9, **kwargs):
        super().__init__(**kwargs)
        self.entropy_weight = entropy_weight
        self.baseline_momentum = baseline_momentum
        # Under tf.distribute each replica assigns these; replicas see the
        # same schedule, and their rewards are averaged.
        self.reward_average = self.add_weight(
            shape=(), initializer="zeros", trainable=False,
            name="reward_average", aggregation="mean")
        self.updates = self.add_weight(
            shape=(), initializer="zeros", trainable=False, name="updates",
            aggregation="only_first_replica")
        self.built = True

    @property
    def entropy_weight(self):
        return self._entropy_weight

    @entropy_weight.setter
    def entropy_weight(self, value):
        value = float(value)
        if not value >= 0:
            raise ValueError(
                f"`entropy_weight` should be >= 0. Received: {value}")
        self._entropy_weight = value

    @property
    def baseline_momentum(self):
        return self._baseline_momentum

    @baseline_momentum.setter
    def baseline_momentum(self, value):
        value = float(value)
        if not 0.0 <= value < 1.0:
            raise ValueError(
                f"`baseline_momentum` should be in [0, 1). Received: {value}")
        self._baseline_momentum = value

    def baseline(self):
        """The current bias-corrected baseline (0 before any update)."""
        momentum = self.baseline_momentum
        correction = 1.0 - tf.pow(momentum, self.updates)
        return tf.math.divide_no_nan(self.reward_average, correction)

    def policy_loss(self, log_prob_sum, entropy_sum, reward, training=True):
        """The surrogate loss whose gradient is the REINFORCE estimate.

        Updates the baseline with this batch's mean reward when `training`.
        """
        reward = tf.stop_gradient(tf.cast(reward, tf.float32))
        mean_reward = tf.reduce_mean(reward)
        baseline = tf.where(self.updates > 0, self.baseline(), mean_reward)
        advantage = reward - baseline
        loss = -tf.reduce_mean(advantage * log_prob_sum)
        loss -= self.entropy_weight * tf.reduce_mean(entropy_sum)
        if training:
            momentum = self.baseline_momentum
            self.reward_average.assign(
                momentum * self.reward_average + (1 - momentum) * mean_reward)
            self.updates.assign_add(1.0)
        return loss

    def get_config(self):
        config = super().get_config()
        config.update({
            "entropy_weight": self.entropy_weight,
            "baseline_momentum": self.baseline_momentum,
        })
        return config
