"""`D2NNModel`: a Keras model that executes a D2NN graph and trains it."""

import math

import keras
import numpy as np
import tensorflow as tf

from keras_d2nn.api_export import keras_d2nn_export
from keras_d2nn.estimators import PolicyBatch
from keras_d2nn.estimators import Reinforce
from keras_d2nn.estimators import assignment
from keras_d2nn.estimators import rewards
from keras_d2nn.execution import engine
from keras_d2nn.execution import forced_routing
from keras_d2nn.execution import replicas
from keras_d2nn.graph import Graph
from keras_d2nn.inspection.batches import batches_with_labels
from keras_d2nn.inspection.batches import format_cost_table
from keras_d2nn.layers.seed_state import SavesSeedState
from keras_d2nn.models import input_checks
from keras_d2nn.models import non_finite

# Compile arguments that Keras's own compile config does not know about.
_D2NN_COMPILE_KEYS = (
    "cost_weight",
    "task_reward",
    "entropy_weight",
    "baseline_momentum",
    "estimator",
    "reward_bag_size",
    "bag_metric",
)


def check_cost_weight(value):
    """Returns `value` as a float, or raises naming what is expected."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(
            f"`cost_weight` should be a number >= 0. Received: {value!r}"
        ) from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(
            f"`cost_weight` should be a finite number >= 0. Received: {value}"
        )
    return value


@keras_d2nn_export
class D2NNModel(SavesSeedState, keras.Model):
    """A Dynamic Deep Neural Network: runs, per example, part of a graph.

    Executes a `keras_d2nn.Graph` with routed execution (each node runs on
    the sub-batch of examples that reach it) and trains modules and
    controllers jointly: the supervised loss of the produced outputs plus a
    REINFORCE loss whose per-example reward is the task reward (1 for a
    correct prediction by default) minus `cost_weight` times the executed
    FLOPs as a fraction of running every node.

    The `fit` progress bar shows `loss`, the compiled metrics, `cost` (mean
    executed FLOPs / full FLOPs) and, for each controller and action,
    `<controller>_<action>`: the share of examples that took that action.

    Args:
        graph: a `keras_d2nn.Graph` (validated here) or its config dict.
        execution: `"routed"` (default) or `"masked"` (reference mode that
            runs every node on every example).
        allow_non_finite: False (default): `fit`, `evaluate`, `predict`,
            `route`, `trace` and `model(x)` refuse inputs holding NaN or
            Inf with a ValueError naming the examples, since a D2NN gives
            them finite, confident and meaningless answers (see
            `keras_d2nn.models.non_finite`). True lets them through. Assignable:
            `model.allow_non_finite = True`.

    Example:

    ```python
    model = keras_d2nn.architectures.high_low(input_shape=(28, 28, 1))
    model.compile(optimizer="adam",
                  loss=keras.losses.SparseCategoricalCrossentropy(
                      from_logits=True),
                  metrics=["accuracy"], cost_weight=0.5)
    model.fit(images, labels, epochs=1)
    model.cost_report(images)
    ```

    References:
        Liu & Deng, "Dynamic Deep Neural Networks: Optimizing Accuracy-
        Efficiency Trade-offs by Selective Execution", AAAI 2018.
    """

    SEED_ATTRIBUTES = ("routing_seed",)  # see layers/seed_state.py

    def __init__(
        self, graph, execution="routed", allow_non_finite=False, **kwargs
    ):
        super().__init__(**kwargs)
        if isinstance(graph, dict):
            graph = Graph.from_config(graph)
        if not isinstance(graph, Graph):
            raise TypeError(
                "D2NNModel needs a keras_d2nn.Graph. Received: "
                f"{type(graph).__name__}"
            )
        if execution not in engine.MODES:
            raise ValueError(
                f"`execution` should be one of {engine.MODES}. "
                f"Received: {execution!r}"
            )
        self.graph = graph
        self.execution = execution
        self._allow_non_finite = bool(allow_non_finite)
        self.plan = graph.validate()
        # Keras tracks these for weights, saving and `model.layers`.
        unique = {}
        for node in self.plan.order:
            if node.layer is not None:
                unique.setdefault(id(node.layer), node.layer)
        self.node_layers = list(unique.values())
        self.estimators = []
        self._estimator_groups = []
        self._training_mode = execution
        self.reward_bag_size = None
        self.bag_metric = None
        self._cost_weight = self.add_weight(
            shape=(), initializer="zeros", trainable=False, name="cost_weight"
        )
        self.task_reward = "correct"
        self.cost_tracker = keras.metrics.Mean(name="cost")
        self.action_names = [
            (q, action)
            for q in self.plan.controllers
            for action in self.plan.nodes[q].actions
        ]
        self.rate_trackers = [
            keras.metrics.Mean(name=f"{q}_{action}")
            for q, action in self.action_names
        ]
        self._trace_function = None
        self._routing = {}
        self.routing_seed = keras.random.SeedGenerator()
        self.built = True

    # -- configuration ------------------------------------------------------

    @property
    def cost_weight(self):
        """Weight of the normalised cost in the reward; assignable any time.

        Example: `model.cost_weight = 0.3` (e.g. from a callback).
        """
        return float(self._cost_weight.numpy())

    @cost_weight.setter
    def cost_weight(self, value):
        self._cost_weight.assign(check_cost_weight(value))

    @property
    def allow_non_finite(self):
        """Whether inputs holding NaN or Inf are let through (default
        False: refused with a ValueError naming the examples).

        Example: `model.allow_non_finite = True`.
        """
        return self._allow_non_finite

    @allow_non_finite.setter
    def allow_non_finite(self, value):
        self._allow_non_finite = bool(value)
        # The steps' compiled functions hold (or lack) the assertions.
        self.train_function = self.test_function = None
        self.predict_function = None

    @property
    def full_flops(self):
        """FLOPs per example when every node runs."""
        return self.plan.full_flops

    @property
    def input_names(self):
        return [n.name for n in self.plan.order if n.kind == "input"]

    def compile(
        self,
        optimizer="adam",
        loss=None,
        metrics=None,
        *,
        cost_weight=0.0,
        task_reward="correct",
        estimator=None,
        entropy_weight=0.01,
        baseline_momentum=0.9,
        reward_bag_size=None,
        bag_metric="f1",
        jit_compile=False,
        **kwargs,
    ):
        """Configures training; see `keras.Model.compile` for the rest.

        Args:
            cost_weight: weight of the normalised cost in the controllers'
                reward (>= 0). Change it later with `model.cost_weight = x`.
            task_reward: `"correct"` (1 if top-1 is right), `"neg_loss"`
                (minus the per-example loss) or a callable
                `(y_true, y_pred) -> (batch,)`.
            estimator: how controllers learn: a `keras_d2nn.estimators`
                object for all of them, or `{controller: estimator}` (the
                others get the default). Default: `Reinforce` with a
                learned value baseline (critic) and the entropy bonus below.
            entropy_weight: entropy bonus of the default estimator.
            baseline_momentum: passed to the default estimator (it matters
                only with a moving-average baseline).
            reward_bag_size: if set, the paper's mini-bag reward: examples
                are grouped in bags of this size and every decision in a
                bag shares the bag's `bag_metric` (minus its own cost).
            bag_metric: `"f1"` (macro F1) or a callable
                `(y_true, y_pred) -> scalar` for one bag.
            jit_compile: default False: routed execution has data-dependent
                shapes, which XLA cannot compile.

        Example:

        ```python
        model.compile("adam", keras.losses.SparseCategoricalCrossentropy(
            from_logits=True), metrics=["accuracy"], cost_weight=0.5)
        ```
        """
        if loss is None:
            raise ValueError(
                "D2NNModel.compile needs a `loss` for the supervised part, "
                "e.g. keras.losses.SparseCategoricalCrossentropy("
                "from_logits=True)."
            )
        cost_weight = check_cost_weight(cost_weight)
        rewards.check_task_reward(task_reward)
        bag_metric_name = bag_metric if isinstance(bag_metric, str) else "f1"
        bag_metric = rewards.check_bag(reward_bag_size, bag_metric)
        # The value baseline: in benchmarks/estimators.py the moving
        # average let the gate collapse to the cheap path where the learned
        # critic kept a mixed policy (docs/estimators_and_schedules.md,
        # "Which estimator?").
        default = Reinforce(
            baseline="value",
            entropy_weight=entropy_weight,
            baseline_momentum=baseline_momentum,
        )
        groups = assignment.assign(self.plan.controllers, estimator, default)
        super().compile(
            optimizer=optimizer,
            loss=loss,
            metrics=metrics,
            jit_compile=jit_compile,
            **kwargs,
        )
        self.cost_weight = cost_weight
        self.task_reward = task_reward
        self.reward_bag_size = reward_bag_size
        self.bag_metric = bag_metric
        self._estimator_groups = groups
        self.estimators = [est for est, _ in groups]
        for est, controllers in groups:
            est.configure(self, controllers)
        # Built now with every variable: steps under forced routing give the
        # forced controllers no gradient, and a lazily built optimizer would
        # then never know them.
        if self.optimizer is not None:
            self.optimizer.build(self.trainable_variables)
        # Estimators that differentiate through decisions need every branch.
        self._training_mode = (
            "masked"
            if any(est.needs_all_branches for est in self.estimators)
            else self.execution
        )
        self.train_function = None
        self._d2nn_compile_config = {
            "cost_weight": cost_weight,
            "task_reward": task_reward
            if isinstance(task_reward, str)
            else "correct",
            "entropy_weight": entropy_weight,
            "baseline_momentum": baseline_momentum,
            "estimator": assignment.serialize(estimator),
            "reward_bag_size": reward_bag_size,
            # Callables (custom rewards and bag metrics) are not saved: pass
            # them to compile() again after loading.
            "bag_metric": bag_metric_name,
        }

    @property
    def policy(self):
        """The estimator of the first controller (the only one, usually)."""
        return self._estimator_groups[0][0] if self._estimator_groups else None

    def get_compile_config(self):
        config = super().get_compile_config()
        if config:
            config.update(self._d2nn_compile_config)
            config["cost_weight"] = self.cost_weight
        return config

    def compile_from_config(self, config):
        config = dict(config)
        extras = {k: config.pop(k) for k in _D2NN_COMPILE_KEYS if k in config}
        extras["estimator"] = assignment.deserialize(extras.get("estimator"))
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config, **extras)
        if self.optimizer is not None:
            self.optimizer.build(self.trainable_variables)

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "graph": self.graph.get_config(),
            "execution": self.execution,
            "allow_non_finite": self.allow_non_finite,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    @property
    def routing(self):
        """The forced routing set with `set_routing` (`{}`: all learned)."""
        return dict(self._routing)

    def set_routing(self, routing=None):
        """Forces controllers' decisions instead of using what they learned.

        Used for warm-up, for the static-network baselines (constant
        routing) and for random routing at a matched cost. Applies to
        `fit`, `evaluate`, `predict`, `trace` and `route`. Forced
        controllers get no policy-gradient update; the others learn as usual.

        Args:
            routing: `None` or `{}` to go back to learned decisions, or
                `{controller: action}` (index or name) for a constant
                decision, or `{controller: [p_0, ..., p_k]}` to sample the
                action with these probabilities for every example.

        Example:

        ```python
        model.set_routing({"gate": "high"})      # the full static network
        model.set_routing({"gate": [0.7, 0.3]})  # random, 30% expensive
        model.set_routing(None)                  # learned again
        ```
        """
        parsed = {}
        for controller, spec in (routing or {}).items():
            node = self.plan.nodes.get(controller)
            if node is None or node.kind != "q":
                raise ValueError(
                    f"set_routing: '{controller}' is not a controller of this "
                    f"model; controllers: {list(self.plan.controllers)}"
                )
            parsed[controller] = forced_routing.parse(
                controller, node.actions, spec
            )
        self._routing = parsed
        # Compiled functions captured the old routing. Rebuild those that
        # exist rather than dropping them: `fit` keeps calling the train
        # function it made, so callbacks may switch routing mid-training.
        if self.train_function is not None:
            self.make_train_function(force=True)
        if self.test_function is not None:
            self.make_test_function(force=True)
        self.predict_function = None
        self._trace_function = None

    # -- execution ----------------------------------------------------------

    @staticmethod
    def _is_concrete(value):
        return isinstance(value, np.ndarray) or (
            tf.is_tensor(value) and tf.executing_eagerly()
        )

    def _check_values(self, name, value, what, offset=0):
        """NaN/Inf check of a concrete (NumPy or eager) input value."""
        if self._is_concrete(value) and not self.allow_non_finite:
            non_finite.check_finite(name, value, what, offset)

    def _input_dict(self, inputs, what="trace", offset=0):
        """Maps `inputs` to input nodes, checking names, ranks, shapes and
        that they are finite: concrete values at once, symbolic ones (in a
        step, under `tf.function`) by assertions that gate every use."""
        checked = {}
        symbolic = {}
        for name, value in input_checks.pair_inputs(self.input_names, inputs):
            node = self.plan.nodes[name]
            value = tf.convert_to_tensor(value)
            input_checks.check_input(node, value.shape, value.dtype)
            self._check_values(name, value, what, offset)
            checked[name] = tf.cast(value, node.dtype)
            if not self._is_concrete(value):
                symbolic[name] = value
        if (
            symbolic
            and not self.allow_non_finite
            and non_finite.checks_enabled()
        ):
            assertions = non_finite.finite_assertions(symbolic)
            if assertions:
                with tf.control_dependencies(assertions):
                    checked = {k: tf.identity(v) for k, v in checked.items()}
        return checked

    def __call__(self, *args, **kwargs):
        # Checked here rather than in `call`, where Keras would bury the
        # message under "Exception encountered when calling D2NNModel".
        inputs = args[0] if args else kwargs.get("inputs")
        if inputs is not None:
            for name, value in input_checks.pair_inputs(
                self.input_names, inputs
            ):
                if hasattr(value, "shape") and hasattr(value, "dtype"):
                    input_checks.check_input(
                        self.plan.nodes[name], value.shape, value.dtype
                    )
                    self._check_values(name, value, "model(x)")
        return super().__call__(*args, **kwargs)

    def _straight_through(self):
        """`{controller: temperature}` of learned straight-through ones."""
        return {
            q: est.temperature
            for est, controllers in self._estimator_groups
            if est.straight_through
            for q in controllers
            if q not in self._routing
        }

    def trace(
        self,
        inputs,
        training=False,
        decisions=None,
        mode=None,
        straight_through=None,
        statistics=True,
    ):
        """Runs the graph and returns the full `ExecutionTrace`.

        Args:
            inputs: a batch (tensor, list or dict by input name).
            training: controllers sample when True, take the argmax else.
            decisions: optional `{controller: actions (batch,)}` to force.
            mode: `"routed"` or `"masked"`; defaults to `self.execution`.
            straight_through: `{controller: temperature}` for
                straight-through Gumbel decisions (masked mode only).
            statistics: False to skip the controllers' log-probabilities
                and entropies (inference only; see `execution.execute`).

        Example:

        ```python
        trace = model.trace(images[:8])
        trace.decisions["gate"], trace.executed_flops
        ```
        """
        inputs = self._input_dict(inputs)
        if next(iter(inputs.values())).shape[0] == 0:
            return self._empty_trace()
        if decisions is None and self._routing:
            batch_size = tf.shape(next(iter(inputs.values())))[0]
            decisions = forced_routing.forced_decisions(
                self._routing, batch_size, self.routing_seed
            )
        return engine.execute(
            self.plan,
            inputs,
            training=training,
            mode=mode or self.execution,
            decisions=decisions,
            straight_through=straight_through,
            statistics=statistics,
        )

    def _pack(self, outputs):
        if len(outputs) == 1:
            return next(iter(outputs.values()))
        return outputs

    def _empty_trace(self):
        """The trace of a batch of no example, made without running a node.

        A zero-size batch cannot be run through the layers: oneDNN's eager
        `Conv2D` returns a wrong shape for it and some controllers fail on
        it.
        """

        def empty(node):
            spec = self.plan.specs[node]
            return tf.zeros([0] + list(spec.shape[1:]), spec.dtype)

        nodes = [n.name for n in self.plan.order]
        controllers = self.plan.controllers
        zeros = tf.zeros([0], tf.float32)
        # As `execute`: a value for every node but the controllers.
        return engine.ExecutionTrace(
            outputs={out: empty(node) for out, node in self.plan.outputs},
            values={n: empty(n) for n in nodes if n not in controllers},
            executed={n: tf.zeros([0], tf.bool) for n in nodes},
            decisions={q: tf.zeros([0], tf.int32) for q in controllers},
            log_probs={q: zeros for q in controllers},
            entropies={q: zeros for q in controllers},
            logits={
                q: tf.zeros([0, self.plan.nodes[q].layer.num_logits])
                for q in controllers
            },
            executed_flops=zeros,
        )

    def _empty_outputs(self):
        return self._pack(self._empty_trace().outputs)

    def call(self, inputs, training=None):
        training = bool(training)

        def run():
            # Inference needs only the decisions: no TFP ops in serving
            # graphs.
            return self._pack(
                self.trace(
                    inputs, training=training, statistics=training
                ).outputs
            )

        first = tf.nest.flatten(inputs)[0]
        if first.shape[0] == 0:
            return self._empty_outputs()
        if first.shape[0] is None and not training:
            return tf.cond(tf.shape(first)[0] > 0, run, self._empty_outputs)
        return run()

    # -- training -----------------------------------------------------------

    def _first_output(self, y_pred):
        return (
            y_pred
            if not isinstance(y_pred, dict)
            else next(iter(y_pred.values()))
        )

    def _reward(self, trace, y):
        """Per-example reward of the decisions in `trace` (no gradient)."""
        y = self._first_output(y)
        y_pred = self._first_output(self._pack(trace.outputs))
        cost_fraction = trace.executed_flops / self.full_flops
        if self.reward_bag_size:
            task = rewards.minibag(
                self.bag_metric, self.reward_bag_size, y, y_pred
            )
        else:
            task = rewards.task_reward(
                self.task_reward, y, y_pred, loss=self.loss
            )
        return tf.stop_gradient(
            rewards.reward(task, cost_fraction, self._cost_weight)
        )

    def _controller_loss(self, x, trace, y):
        learned = set(self.plan.controllers) - set(self._routing)
        total = tf.constant(0.0)
        if not learned:
            return total
        reward = self._reward(trace, y)

        def greedy_reward():
            return self._reward(self.trace(x, training=False), y)

        for estimator, controllers in self._estimator_groups:
            mine = tuple(q for q in controllers if q in learned)
            if mine:
                total += estimator.controller_loss(
                    PolicyBatch(
                        trace=trace,
                        controllers=mine,
                        reward=reward,
                        greedy_reward=greedy_reward,
                        plan=self.plan,
                        cost_weight=self._cost_weight,
                        full_flops=self.full_flops,
                    )
                )
        return total

    def _supervision_loss(self, trace, y):
        """Loss of the supervised intermediate nodes, on examples they ran.

        Divided by the global batch size, as `compute_loss` is.
        """
        if not self.plan.supervised:
            return tf.constant(0.0)
        y = self._first_output(y)
        total = 0.0
        for supervision in self.plan.supervised:
            target = y
            if supervision.label_map is not None:
                target = tf.gather(
                    supervision.label_map,
                    tf.cast(tf.reshape(y, [-1]), tf.int32),
                )
            per_example = rewards.per_example_loss(
                self._first_output(self.loss),
                target,
                trace.values[supervision.node],
            )
            ran = tf.cast(trace.executed[supervision.node], per_example.dtype)
            total += supervision.weight * tf.reduce_sum(per_example * ran)
        global_batch = (
            tf.cast(tf.shape(trace.executed_flops)[0], tf.float32)
            * replicas.num_replicas()
        )
        return total / global_batch

    def _update_routing_metrics(self, trace):
        self.cost_tracker.update_state(trace.executed_flops / self.full_flops)
        for (q, action), tracker in zip(self.action_names, self.rate_trackers):
            index = self.plan.nodes[q].actions.index(action)
            tracker.update_state(
                tf.cast(tf.equal(trace.decisions[q], index), tf.float32)
            )

    def _track_loss(self, loss, x):
        # compute_loss divides by the replica count; the tracker wants the
        # plain mean, as in Keras's own train_step.
        batch = tf.shape(tf.nest.flatten(x)[0])[0]
        self._loss_tracker.update_state(
            loss * replicas.num_replicas(), sample_weight=batch
        )

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Keras 3.15 gets a batch to build from by `strategy.reduce("MEAN")`
        # of the first distributed batch, which fails under
        # MultiWorkerMirroredStrategy ("Attempt to convert a value
        # (PerReplica...)", keras-team/keras#20585). Building needs only
        # the shapes: this replica's part of the batch gives them.
        strategy = getattr(self, "_distribute_strategy", None)
        if iterator is None or strategy is None:
            return super()._maybe_symbolic_build(iterator, data_batch)
        for _, _, batches in iterator:
            data_batch = tf.nest.map_structure(
                lambda v: (
                    strategy.experimental_local_results(v)[0]
                    if isinstance(v, tf.distribute.DistributedValues)
                    else v
                ),
                next(batches),
            )
            break
        return super()._maybe_symbolic_build(data_batch=data_batch)

    def fit(self, x=None, y=None, *args, **kwargs):
        """`keras.Model.fit`, with the data checked first (see
        `keras_d2nn.models.input_checks`): a wrong shape, dtype or label, or no
        example at all, is a ValueError naming it before training starts.

        Example: `model.fit(images, labels, epochs=3, batch_size=128)`.
        """
        input_checks.check_data(self, x, y, "fit")
        validation = kwargs.get("validation_data")
        if isinstance(validation, tf.data.Dataset):
            input_checks.check_data(self, validation, what="validation_data")
        elif isinstance(validation, (list, tuple)) and len(validation) >= 2:
            input_checks.check_data(
                self, validation[0], validation[1], "validation_data"
            )
        with input_checks.clearer_step_errors("fit"):
            history = super().fit(x, y, *args, **kwargs)
        # A dataset of unknown size can turn out empty only now; Keras then
        # only warns, and logs nothing, not even a loss.
        if history.epoch and not history.history:
            raise ValueError(
                "fit: the data yielded no batch, so nothing was trained."
            )
        return history

    def evaluate(self, x=None, y=None, *args, **kwargs):
        """`keras.Model.evaluate`, with the data checked first (as `fit`).

        Example: `model.evaluate(test_images, test_labels, return_dict=True)`.
        """
        input_checks.check_data(self, x, y, "evaluate")
        with input_checks.clearer_step_errors("evaluate"):
            return super().evaluate(x, y, *args, **kwargs)

    def predict(self, x, *args, **kwargs):
        """`keras.Model.predict`, with the inputs checked first (as `fit`).

        Example: `logits = model.predict(test_images, batch_size=256)`.
        """
        input_checks.check_data(self, x, what="predict", labelled=False)
        with input_checks.clearer_step_errors("predict"):
            return super().predict(x, *args, **kwargs)

    def predict_step(self, data):
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        # `trace` asserts that the batch is finite (`_input_dict`).
        return self(x, training=False)

    def _checked_labels(self, y):
        """`y`, after assertions that it suits the loss (datasets and
        generators, whose labels `fit` could not check beforehand)."""
        checks = input_checks.label_assertions(self, y)
        if not checks:
            return y
        with tf.control_dependencies(checks):
            return tf.identity(y)

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        y = self._checked_labels(y)
        with tf.GradientTape() as tape:
            trace = self.trace(
                x,
                training=True,
                mode=self._training_mode,
                straight_through=self._straight_through(),
            )
            y_pred = self._pack(trace.outputs)
            loss = self.compute_loss(
                x=x,
                y=y,
                y_pred=y_pred,
                sample_weight=sample_weight,
                training=True,
            )
            self._track_loss(loss, x)
            # Unlike compute_loss, the policy term is not yet divided by the
            # replica count; gradients are summed across replicas.
            policy_loss = self._controller_loss(x, trace, y)
            total = (
                loss
                + self._supervision_loss(trace, y)
                + policy_loss / replicas.num_replicas()
            )
            total = self.optimizer.scale_loss(total)
        weights = self.trainable_weights
        gradients = tape.gradient(total, weights)
        # Controllers under forced routing (set_routing) get no gradient.
        self.optimizer.apply_gradients(
            [(g, w) for g, w in zip(gradients, weights) if g is not None]
        )
        self._update_routing_metrics(trace)
        return self._step_logs(
            self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)
        )

    def test_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        y = self._checked_labels(y)
        trace = self.trace(x, training=False)
        y_pred = self._pack(trace.outputs)
        loss = self.compute_loss(
            x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=False
        )
        self._track_loss(loss, x)
        self._update_routing_metrics(trace)
        return self._step_logs(
            self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)
        )

    def _step_logs(self, logs):
        # Keras 3.15 reduces a step's logs with `strategy.reduce("MEAN",
        # axis=0)` under MultiWorkerMirroredStrategy, which fails for
        # scalars (keras-team/keras#20585). The metrics are already
        # synchronised across replicas: as vectors of one element they
        # reduce to the same scalars.
        if not replicas.multi_worker():
            return logs
        return tf.nest.map_structure(lambda v: tf.reshape(v, [1]), logs)

    # -- reports ------------------------------------------------------------

    def _traced(self, x):
        if self._trace_function is None:

            def run(batch):
                trace = self.trace(batch, training=False, statistics=False)
                output = next(iter(trace.outputs.values()))
                return (
                    trace.executed,
                    trace.decisions,
                    trace.executed_flops,
                    output,
                )

            self._trace_function = tf.function(run, reduce_retracing=True)
        return self._trace_function(x)

    def route(self, data, batch_size=256, labels=None):
        """Inference decisions over a dataset, as NumPy arrays.

        Args:
            data: an array/tensor of inputs (or dict/list for several
                inputs), or a `tf.data.Dataset` of inputs or `(x, y)` pairs.
            labels: optional labels of array `data` (a dataset of `(x, y)`
                pairs brings its own).

        Returns:
            `{"executed": {node: bool (n,)}, "decisions": {controller: int
            (n,), -1 where it did not run}, "executed_flops": float (n,),
            "predictions": int (n,)}` (the argmax of the first output),
            plus `"labels"` when the data has labels.

        Example: `model.route(test_images)["decisions"]["gate"].mean()`.
        """
        if not isinstance(data, tf.data.Dataset):
            # Arrays whole, so that the message counts every bad example.
            for name, value in input_checks.pair_inputs(self.input_names, data):
                self._check_values(name, value, "route")
        executed, decisions, flops, predicted, truth = {}, {}, [], [], []
        seen = 0
        for x, y in batches_with_labels(data, labels, batch_size):
            inputs = self._input_dict(x, what="route", offset=seen)
            seen += int(tf.shape(next(iter(inputs.values())))[0])
            ran, chosen, cost, output = self._traced(inputs)
            for k, v in ran.items():
                executed.setdefault(k, []).append(v.numpy())
            for k, v in chosen.items():
                decisions.setdefault(k, []).append(v.numpy())
            flops.append(cost.numpy())
            predicted.append(np.argmax(output.numpy(), axis=-1))
            if y is not None:
                truth.append(np.asarray(y).reshape(-1))
        if not flops:
            raise ValueError("`data` is empty: no example to route.")
        routes = {
            "executed": {k: np.concatenate(v) for k, v in executed.items()},
            "decisions": {k: np.concatenate(v) for k, v in decisions.items()},
            "executed_flops": np.concatenate(flops),
            "predictions": np.concatenate(predicted),
        }
        if truth:
            routes["labels"] = np.concatenate(truth)
        return routes

    def routing_report(
        self,
        data,
        labels=None,
        batch_size=256,
        class_names=None,
        print_fn=print,
    ):
        """Which examples take which route, and how each route does.

        Per controller: the rate of each action overall and per true
        class; per route (the joint decisions an example got): its share,
        accuracy and mean FLOPs. Printed as tables and returned as data
        (see `keras_d2nn.routing_report.routing_report`).

        Example:

        ```python
        report = model.routing_report(test_images, test_labels)
        report["routes"][0]["route"], report["routes"][0]["accuracy"]
        ```
        """
        from keras_d2nn.inspection import routing_report

        return routing_report.routing_report(
            self,
            data,
            labels,
            batch_size=batch_size,
            class_names=class_names,
            print_fn=print_fn,
        )

    def cost_report(self, data=None, batch_size=256, print_fn=print):
        """Prints and returns, per node, its FLOPs and how often it ran.

        Args:
            data: optional inputs (as for `route`); without data only the
                static FLOPs are reported.
            print_fn: where the table goes (`None` for no printing).

        Returns:
            A list of `{"node", "kind", "flops", "run_rate",
            "mean_flops"}` dicts, plus a final `"total"` row.

        Example: `rows = model.cost_report(test_images)`.
        """
        routes = self.route(data, batch_size) if data is not None else None
        rows = []
        for node in self.plan.order:
            flops = self.plan.flops[node.name]
            rate = None
            if routes is not None:
                rate = float(routes["executed"][node.name].mean())
            rows.append(
                {
                    "node": node.name,
                    "kind": node.kind,
                    "flops": flops,
                    "run_rate": rate,
                    "mean_flops": None if rate is None else flops * rate,
                }
            )
        mean_total = None
        if routes is not None:
            mean_total = float(
                routes["executed_flops"].astype(np.float64).mean()
            )
        rows.append(
            {
                "node": "total",
                "kind": "",
                "flops": self.full_flops,
                "run_rate": None,
                "mean_flops": mean_total,
            }
        )
        if print_fn is not None:
            print_fn(format_cost_table(rows, self.full_flops))
        return rows
