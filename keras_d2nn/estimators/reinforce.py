"""REINFORCE (score-function) estimator with a choice of baseline."""

import keras
import tensorflow as tf

from keras_d2nn.api_export import keras_d2nn_export
from keras_d2nn.estimators.base import Estimator
from keras_d2nn.execution import replicas

BASELINES = ("moving_average", "value", "self_critical", "none")


@keras_d2nn_export
class Reinforce(Estimator):
    """REINFORCE with a baseline, optional advantage normalisation and an
    entropy bonus. Training stays routed: only the decisions taken matter.

    For per-example rewards `r`, summed log-probabilities `log_p` of the
    decisions taken and summed entropies `h`, the loss is
    `mean(-(r - b) * log_p) - entropy_weight * mean(h)` (+ the critic's
    regression loss for `baseline="value"`), where `b` is:

    - `"moving_average"`: an exponential moving average of past mean
      rewards, bias-corrected so the first batches are not pulled to 0;
    - `"value"`: a learned value head (critic) reading the controllers'
      logits and whether they ran, trained by regression to the reward;
    - `"self_critical"`: the reward the greedy decisions get on the same
      examples (as in BlockDrop; one more forward pass per step);
    - `"none"`: 0.

    Args:
        baseline: one of `BASELINES`.
        entropy_weight: weight of the entropy bonus (>= 0).
        baseline_momentum: momentum of the moving average, in [0, 1).
        normalize_advantage: divide advantages by their batch std (after
            centring) so the step size does not depend on the reward scale.
        value_units: hidden units of the critic.
        value_weight: weight of the critic's regression loss.

    Example:

    ```python
    model.compile("adam", loss, estimator=keras_d2nn.Reinforce(
        baseline="self_critical", normalize_advantage=True))
    ```

    References:
        Williams, "Simple statistical gradient-following algorithms for
        connectionist reinforcement learning", Machine Learning 1992;
        Rennie et al., "Self-critical sequence training", CVPR 2017.
    """

    def __init__(
        self,
        baseline="moving_average",
        entropy_weight=0.01,
        baseline_momentum=0.9,
        normalize_advantage=False,
        value_units=32,
        value_weight=0.5,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if baseline not in BASELINES:
            raise ValueError(
                f"`baseline` should be one of {BASELINES}. Received: "
                f"baseline={baseline!r}"
            )
        self.baseline = baseline
        self.entropy_weight = entropy_weight
        self.baseline_momentum = baseline_momentum
        self.normalize_advantage = bool(normalize_advantage)
        self.value_units = int(value_units)
        self.value_weight = float(value_weight)
        # Under tf.distribute every replica assigns the same values: the
        # mean reward is taken over the global batch (`replicas.mean`).
        self.reward_average = self.add_weight(
            shape=(),
            initializer="zeros",
            trainable=False,
            name="reward_average",
            aggregation="mean",
        )
        self.updates = self.add_weight(
            shape=(),
            initializer="zeros",
            trainable=False,
            name="updates",
            aggregation="only_first_replica",
        )
        self.critic = None

    @property
    def entropy_weight(self):
        """Weight of the policy's entropy bonus (>= 0); assignable, e.g.
        by a schedule between epochs.

        Example: `estimator.entropy_weight = 0.0`.
        """
        return self._entropy_weight

    @entropy_weight.setter
    def entropy_weight(self, value):
        value = float(value)
        if not value >= 0:
            raise ValueError(
                "`entropy_weight` should be >= 0. Received: "
                f"entropy_weight={value}"
            )
        self._entropy_weight = value

    @property
    def baseline_momentum(self):
        """Momentum of the moving-average reward baseline, in [0, 1).

        Example: `Reinforce(baseline="moving_average").baseline_momentum`.
        """
        return self._baseline_momentum

    @baseline_momentum.setter
    def baseline_momentum(self, value):
        value = float(value)
        if not 0.0 <= value < 1.0:
            raise ValueError(
                f"`baseline_momentum` should be in [0, 1). Received: {value}"
            )
        self._baseline_momentum = value

    def configure(self, model, controllers):
        if self.baseline != "value":
            return
        width = sum(
            model.plan.nodes[q].layer.num_logits + 1 for q in controllers
        )
        self.critic = keras.Sequential(
            [
                keras.layers.Dense(self.value_units, activation="relu"),
                keras.layers.Dense(1),
            ],
            name="critic",
        )
        self.critic.build((None, width))

    def moving_average(self):
        """The current bias-corrected moving average (0 before updates).

        Example:

        ```python
        estimator = keras_d2nn.Reinforce()  # baseline="moving_average"
        model.compile("adam", loss, estimator=estimator)
        model.fit(images, labels, epochs=1, verbose=0)
        estimator.moving_average()  # the mean reward of recent batches
        ```
        """
        correction = 1.0 - tf.pow(self.baseline_momentum, self.updates)
        return tf.math.divide_no_nan(self.reward_average, correction)

    def _critic_features(self, batch):
        trace = batch.trace
        parts = []
        for q in batch.controllers:
            parts.append(trace.logits[q])
            parts.append(tf.cast(trace.executed[q], tf.float32)[:, None])
        return tf.stop_gradient(tf.concat(parts, axis=-1))

    def policy_gradient_loss(self, log_prob_sum, entropy_sum, reward, baseline):
        """The REINFORCE surrogate for given log-probs, rewards, baseline.

        Example:

        ```python
        estimator = keras_d2nn.Reinforce(entropy_weight=0.0)
        log_prob = tf.math.log([0.5, 0.5])  # of the actions taken
        estimator.policy_gradient_loss(log_prob, entropy_sum=tf.zeros([2]),
                                       reward=tf.constant([1.0, 0.0]),
                                       baseline=0.0)
        # 0.35: -mean((reward - baseline) * log_prob) = -log(0.5) / 2
        ```
        """
        advantage = tf.stop_gradient(reward - baseline)
        if self.normalize_advantage:
            # Over the global batch: under tf.distribute each replica
            # holds a slice of it.
            mean, variance = replicas.moments(advantage)
            advantage = (advantage - mean) * tf.math.rsqrt(variance + 1e-8)
        loss = -tf.reduce_mean(advantage * log_prob_sum)
        return loss - self.entropy_weight * tf.reduce_mean(entropy_sum)

    def controller_loss(self, batch):
        trace = batch.trace
        reward = tf.stop_gradient(tf.cast(batch.reward, tf.float32))
        log_prob_sum = tf.add_n([trace.log_probs[q] for q in batch.controllers])
        entropy_sum = tf.add_n([trace.entropies[q] for q in batch.controllers])
        extra = 0.0
        mean_reward = replicas.mean(reward)
        if self.baseline == "moving_average":
            baseline = tf.where(
                self.updates > 0, self.moving_average(), mean_reward
            )
        elif self.baseline == "value":
            value = self.critic(self._critic_features(batch))[:, 0]
            extra = self.value_weight * tf.reduce_mean(
                tf.square(value - reward)
            )
            baseline = value
        elif self.baseline == "self_critical":
            baseline = tf.stop_gradient(batch.greedy_reward())
        else:
            baseline = tf.zeros_like(reward)
        loss = self.policy_gradient_loss(
            log_prob_sum, entropy_sum, reward, baseline
        )
        momentum = self.baseline_momentum
        self.reward_average.assign(
            momentum * self.reward_average + (1 - momentum) * mean_reward
        )
        self.updates.assign_add(1.0)
        return loss + extra

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "baseline": self.baseline,
                "entropy_weight": self.entropy_weight,
                "baseline_momentum": self.baseline_momentum,
                "normalize_advantage": self.normalize_advantage,
                "value_units": self.value_units,
                "value_weight": self.value_weight,
            }
        )
        return config
