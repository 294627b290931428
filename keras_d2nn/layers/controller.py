"""The Q-node layer: a small network emitting a distribution over actions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING
from typing import Any

import keras
import tensorflow as tf

from keras_d2nn.api_export import keras_d2nn_export
from keras_d2nn.execution import sampling
from keras_d2nn.graph import flops
from keras_d2nn.layers.seed_state import SavesSeedState

if TYPE_CHECKING:
    import tensorflow_probability as tfp

DISTRIBUTIONS = ("categorical", "bernoulli")
EXPLORATIONS = ("softmax", "epsilon_greedy")
DEFAULT_HIDDEN_UNITS = (32,)


@keras_d2nn_export
class Controller(SavesSeedState, keras.layers.Layer):
    """A D2NN controller (Q-node): reads features, chooses one action.

    `call` returns logits (tensors only pass between layers); `decide` turns
    them into a `tfp.distributions` distribution and a decision: sampled in
    training (exploration), the argmax at inference. Exploration mixes the
    tempered policy with a uniform choice: the behaviour distribution is
    `(1 - epsilon) * softmax(logits / temperature) + epsilon / num_actions`,
    and log-probabilities and entropies are those of that distribution, so
    policy-gradient estimates stay unbiased for what was actually sampled.
    `epsilon` and `temperature` are non-trainable variables: schedules and
    callbacks may assign them between steps, and checkpoints keep them.

    Args:
        num_actions: number of actions, >= 2.
        hidden_units: sizes of the hidden Dense layers (ReLU) before the
            logits. `()` gives a linear controller. Default `(32,)`.
        network: instead of the Dense layers, any Keras layer or model
            mapping the controller's input to `(batch, num_logits)`
            logits, e.g. convolutions that score regions of a feature map
            (`architectures.attention`'s `look`). Its FLOPs must be
            countable (`graph.flops`).
        distribution: `"categorical"` (one logit per action) or
            `"bernoulli"` (a two-way gate with one logit; action 1 = open).
        epsilon: probability of a uniformly random action in training.
        temperature: divides the logits when sampling in training.
        exploration: `"softmax"` samples the tempered policy (policy
            gradient); `"epsilon_greedy"` takes the argmax except for the
            epsilon share (Q-learning, whose logits are Q-values).
        seed: seed of the sampling stream.
        stop_input_gradient: True (default): the controller's own loss
            trains the controller alone and does not flow back into the
            modules it reads (they learn from the task). Letting it flow
            cost the hierarchical D2NN 2.7 points of accuracy on every
            route (benchmarks/paper_experiments.py, docs/
            paper_experiments.md): regressing the rewards reshaped the
            shared trunk. The task loss still reaches the controller
            where decisions are relaxed (Gumbel straight-through).

    Input shape: `(batch, ...)`, flattened. Output shape: `(batch,
    num_logits)` with `num_logits` = `num_actions`, or 1 for Bernoulli.

    Example:

    ```python
    controller = keras_d2nn.Controller(num_actions=3, hidden_units=(16,))
    logits = controller(tf.random.normal([4, 32]))
    action, log_prob, entropy = controller.decide(logits, training=True)
    ```

    References:
        Liu & Deng, "Dynamic Deep Neural Networks: Optimizing Accuracy-
        Efficiency Trade-offs by Selective Execution", AAAI 2018.
    """

    # Saved with the weights, so a resumed training samples as an
    # uninterrupted one would (see layers/seed_state.py).
    SEED_ATTRIBUTES = ("seed_generator",)

    def __init__(
        self,
        num_actions: int,
        hidden_units: Sequence[int] | None = None,
        distribution: str = "categorical",
        epsilon: float = 0.0,
        temperature: float = 1.0,
        exploration: str = "softmax",
        seed: int | None = None,
        stop_input_gradient: bool = True,
        network: keras.Layer | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if network is not None and hidden_units is not None:
            raise ValueError(
                "Give a controller `hidden_units` (Dense layers) or a "
                "`network`, not both. Received: "
                f"hidden_units={hidden_units!r} and network={network!r}"
            )
        if network is not None and not isinstance(network, keras.Layer):
            raise ValueError(
                "`network` should be a Keras layer or model mapping the "
                "controller's input to logits. Received: "
                f"{type(network).__name__}"
            )
        if not isinstance(num_actions, int) or num_actions < 2:
            raise ValueError(
                f"`num_actions` should be an int >= 2. Received: "
                f"num_actions={num_actions!r}"
            )
        if distribution not in DISTRIBUTIONS:
            raise ValueError(
                f"`distribution` should be one of {DISTRIBUTIONS}. Received: "
                f"distribution={distribution!r}"
            )
        if distribution == "bernoulli" and num_actions != 2:
            raise ValueError(
                "A 'bernoulli' controller is a two-way gate: `num_actions` "
                f"should be 2. Received: num_actions={num_actions}"
            )
        if exploration not in EXPLORATIONS:
            raise ValueError(
                f"`exploration` should be one of {EXPLORATIONS}. Received: "
                f"exploration={exploration!r}"
            )
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(
                f"`epsilon` should be in [0, 1]. Received: epsilon={epsilon}"
            )
        if not temperature > 0:
            raise ValueError(
                f"`temperature` should be > 0. Received: "
                f"temperature={temperature}"
            )
        self.num_actions = num_actions
        self.custom_network = network is not None
        if network is not None:
            hidden_units = ()
        elif hidden_units is None:
            hidden_units = DEFAULT_HIDDEN_UNITS
        self.hidden_units = tuple(int(u) for u in hidden_units)
        self.distribution = distribution
        self.exploration = exploration
        self.initial_epsilon = float(epsilon)
        self.initial_temperature = float(temperature)
        self.seed = seed
        self.stop_input_gradient = bool(stop_input_gradient)
        self.num_logits = 1 if distribution == "bernoulli" else num_actions
        self.network = network or keras.Sequential(
            [keras.layers.Flatten()]
            + [
                keras.layers.Dense(u, activation="relu")
                for u in self.hidden_units
            ]
            + [keras.layers.Dense(self.num_logits)],
            name="network",
        )
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.epsilon = self.add_weight(
            shape=(),
            initializer=keras.initializers.Constant(epsilon),
            trainable=False,
            name="epsilon",
        )
        self.temperature = self.add_weight(
            shape=(),
            initializer=keras.initializers.Constant(temperature),
            trainable=False,
            name="temperature",
        )
        # Added to the logits at every call: 0 unless a budget calibration
        # (`D2NNModel.calibrate_budget`) put a price on the actions' costs.
        # A weight, so that it is saved and exported with the model.
        self.logit_offset = self.add_weight(
            shape=(self.num_logits,),
            initializer="zeros",
            trainable=False,
            name="logit_offset",
        )

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        if not self.network.built:
            self.network.build(input_shape)
        if self.custom_network:
            shape = self.network.compute_output_shape(input_shape)
            if len(shape) != 2 or shape[-1] != self.num_logits:
                raise ValueError(
                    "A controller's `network` should output logits of shape "
                    f"(batch, {self.num_logits}) for {self.num_actions} "
                    f"actions. It outputs {tuple(shape)} for inputs of "
                    f"shape {tuple(input_shape)}."
                )

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        if self.stop_input_gradient:
            inputs = tf.stop_gradient(inputs)
        logits = self.network(inputs)
        return logits + tf.cast(self.logit_offset, logits.dtype)

    def load_own_variables(self, store: Any) -> None:
        # Files of 0.1.0 have no `logit_offset` (the last of the
        # layer's own variables): it stays 0.
        own = [k for k in store.keys() if not k.startswith("seed_state_")]
        if len(own) == len(self._non_trainable_variables) - 1:
            store = {k: store[k] for k in store.keys()}
            store[str(len(own))] = self.logit_offset.numpy()
        super().load_own_variables(store)

    def compute_output_shape(
        self,
        input_shape: tuple[int | None, ...],
    ) -> tuple[int | None, int]:
        return (input_shape[0], self.num_logits)

    def compute_flops(self, inputs: keras.KerasTensor) -> float:
        """FLOPs per example of the controller network (see `graph.flops`).

        Example:

        ```python
        controller = keras_d2nn.Controller(2, hidden_units=(16,))
        controller.compute_flops(keras.KerasTensor((None, 32)))  # 1122.0
        ```
        """
        return flops.layer_flops(self.network, inputs)

    def action_probabilities(
        self, logits: tf.Tensor, training: bool = False
    ) -> tf.Tensor:
        """Probabilities of each action, `(batch, num_actions)`.

        In training they include temperature and epsilon exploration.

        Example:

        ```python
        controller = keras_d2nn.Controller(2, epsilon=0.2)
        logits = tf.constant([[5.0, -5.0]])
        controller.action_probabilities(logits)  # [[1.0, 0.0]]
        controller.action_probabilities(logits, training=True)  # [[0.9, 0.1]]
        ```
        """
        logits = tf.convert_to_tensor(logits)
        if training:
            logits = logits / tf.cast(self.temperature, logits.dtype)
        if training and self.exploration == "epsilon_greedy":
            probs = tf.one_hot(
                self.greedy_action(logits), self.num_actions, dtype=logits.dtype
            )
        elif self.distribution == "bernoulli":
            open_prob = tf.sigmoid(logits[:, 0])
            probs = tf.stack([1.0 - open_prob, open_prob], axis=-1)
        else:
            probs = tf.nn.softmax(logits, axis=-1)
        if training:
            epsilon = tf.cast(self.epsilon, probs.dtype)
            probs = (1.0 - epsilon) * probs + epsilon / self.num_actions
        return probs

    def distribution_for(
        self, logits: tf.Tensor, training: bool = False
    ) -> tfp.distributions.Distribution:
        """The `tfp.distributions` distribution over actions.

        Example:

        ```python
        controller = keras_d2nn.Controller(3)
        distribution = controller.distribution_for(tf.zeros([4, 3]))
        distribution.entropy()  # [1.0986, 1.0986, 1.0986, 1.0986]: log(3)
        ```
        """
        # Imported here, not with the module: TFP takes a second of
        # `import keras_d2nn`, and inference (greedy decisions) never
        # needs it.
        import tensorflow_probability as tfp

        probs = self.action_probabilities(logits, training)
        if self.distribution == "bernoulli":
            return tfp.distributions.Bernoulli(
                probs=probs[:, 1], dtype=tf.int32
            )
        return tfp.distributions.Categorical(probs=probs, dtype=tf.int32)

    def greedy_action(self, logits: tf.Tensor) -> tf.Tensor:
        """The inference decision: the most likely action, `int32`.

        Example:

        ```python
        controller = keras_d2nn.Controller(3)
        controller.greedy_action(tf.constant([[0.1, 2.0, -1.0]]))  # [1]
        ```
        """
        if self.distribution == "bernoulli":
            return tf.cast(logits[:, 0] > 0, tf.int32)
        return tf.argmax(logits, axis=-1, output_type=tf.int32)

    def exploration_noise(self, batch_size: int | tf.Tensor) -> tf.Tensor:
        """Uniform noise `(batch_size, num_actions)` for one training step's
        decisions, from the next seed of this controller's stream.

        `execute` draws it for the whole batch before routing, so that an
        example's decision depends only on the seed and its place in the
        global batch (see `keras_d2nn.execution.sampling`).

        Example:

        ```python
        controller = keras_d2nn.Controller(2, seed=0)
        noise = controller.exploration_noise(8)  # uniform in [0, 1)
        noise.shape  # (8, 2)
        logits = controller(tf.random.normal([8, 16]))
        action, _, _ = controller.decide(logits, training=True, noise=noise)
        ```
        """
        seed = self.seed_generator.next()
        return sampling.uniform_noise(seed, batch_size, self.num_actions)

    def decide(
        self,
        logits: tf.Tensor,
        training: bool = False,
        action: tf.Tensor | None = None,
        noise: tf.Tensor | None = None,
    ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """Chooses actions and reports their log-probability and entropy.

        Args:
            logits: output of `call`.
            training: sample from the exploring distribution if True, take
                the argmax otherwise.
            action: optional `int32` actions to use instead (forced routing);
                their log-probabilities are still reported.
            noise: optional uniform noise `(batch, num_actions)` to sample
                with (see `exploration_noise`); drawn here if omitted.

        Returns:
            `(action, log_prob, entropy)`, each of shape `(batch,)`.

        Example:

        ```python
        controller = keras_d2nn.Controller(2, hidden_units=(16,))
        logits = controller(tf.random.normal([4, 32]))
        action, log_prob, entropy = controller.decide(logits)  # the argmax
        sampled, _, _ = controller.decide(logits, training=True)
        forced, log_prob, _ = controller.decide(logits, action=tf.ones([4]))
        ```
        """
        dist = self.distribution_for(logits, training)
        if action is None:
            if training:
                if noise is None:
                    noise = self.exploration_noise(tf.shape(logits)[0])
                action = sampling.categorical(
                    self.action_probabilities(logits, training), noise
                )
            else:
                action = self.greedy_action(logits)
        action = tf.cast(action, tf.int32)
        return action, dist.log_prob(action), dist.entropy()

    def gumbel_decide(
        self,
        logits: tf.Tensor,
        temperature: float | tf.Tensor,
        action: tf.Tensor | None = None,
        noise: tf.Tensor | None = None,
    ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
        """Straight-through Gumbel-softmax decision.

        Samples `action` by the Gumbel-max trick (a sample of the policy)
        and returns a gate `(batch, num_actions)` that equals
        `one_hot(action)` in value but has the gradient of the relaxed
        sample `softmax((logits + gumbel) / temperature)`.

        Args:
            logits: output of `call`.
            temperature: of the relaxed sample.
            action: optional `int32` actions to use instead.
            noise: optional uniform noise `(batch, num_actions)` (see
                `exploration_noise`); drawn here if omitted.

        Returns:
            `(action, log_prob, entropy, gate)`.

        Example:

        ```python
        controller = keras_d2nn.Controller(2)
        logits = tf.Variable([[0.5, -0.5]])
        with tf.GradientTape() as tape:
            action, _, _, gate = controller.gumbel_decide(logits, 1.0)
            chosen = tf.reduce_sum(gate * [[1.0, 2.0]])  # one_hot(action)
        tape.gradient(chosen, logits)  # e.g. [[-0.08, 0.08]]: nonzero
        ```
        """
        logits = tf.convert_to_tensor(logits)
        if self.distribution == "bernoulli":
            logits = tf.concat([tf.zeros_like(logits), logits], axis=-1)
        if noise is None:
            noise = self.exploration_noise(tf.shape(logits)[0])
        relaxed = tf.nn.softmax(
            (logits + sampling.gumbel(tf.cast(noise, logits.dtype)))
            / temperature,
            axis=-1,
        )
        if action is None:
            action = tf.argmax(relaxed, axis=-1, output_type=tf.int32)
        hard = tf.one_hot(action, self.num_actions, dtype=relaxed.dtype)
        gate = hard + relaxed - tf.stop_gradient(relaxed)
        log_probs = tf.nn.log_softmax(logits, axis=-1)
        log_prob = tf.gather(log_probs, action, batch_dims=1)
        entropy = -tf.reduce_sum(tf.exp(log_probs) * log_probs, axis=-1)
        return action, log_prob, entropy, gate

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "num_actions": self.num_actions,
                "hidden_units": None
                if self.custom_network
                else list(self.hidden_units),
                "network": keras.saving.serialize_keras_object(self.network)
                if self.custom_network
                else None,
                "distribution": self.distribution,
                "epsilon": self.initial_epsilon,
                "temperature": self.initial_temperature,
                "exploration": self.exploration,
                "seed": self.seed,
                "stop_input_gradient": self.stop_input_gradient,
            }
        )
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Controller:
        config = dict(config)
        if config.get("network") is not None:
            config["network"] = keras.saving.deserialize_keras_object(
                config["network"]
            )
        return cls(**config)
