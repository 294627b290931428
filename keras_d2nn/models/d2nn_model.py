"""`D2NNModel`: a Keras model that executes a D2NN graph and trains it."""

from collections.abc import Callable
from collections.abc import Sequence
from typing import Any

import keras
import tensorflow as tf

from keras_d2nn import inspection
from keras_d2nn.api_export import keras_d2nn_export
from keras_d2nn.estimators import Estimator
from keras_d2nn.estimators import Reinforce
from keras_d2nn.estimators import assignment
from keras_d2nn.estimators import budget as budget_lib
from keras_d2nn.estimators import cost as cost_lib
from keras_d2nn.estimators import objective
from keras_d2nn.estimators import rewards
from keras_d2nn.execution import engine
from keras_d2nn.execution import forced_routing
from keras_d2nn.execution import replicas
from keras_d2nn.graph import Graph
from keras_d2nn.graph.latency_profile import LatencyProfile
from keras_d2nn.inspection import cost_report
from keras_d2nn.layers.seed_state import SavesSeedState
from keras_d2nn.models import accuracy_target
from keras_d2nn.models import batch_inputs
from keras_d2nn.models import calibration
from keras_d2nn.models import controller_size
from keras_d2nn.models import exporters
from keras_d2nn.models import input_checks
from keras_d2nn.models import loss_checks
from keras_d2nn.models import routing_pass
from keras_d2nn.models.multi_worker import MultiWorkerFixes

# Compile arguments that Keras's own compile config does not know about.
_D2NN_COMPILE_KEYS = (
    "cost_weight",
    "task_reward",
    "entropy_weight",
    "baseline_momentum",
    "estimator",
    "reward_bag_size",
    "bag_metric",
    "target_cost",
    "budget_learning_rate",
    "cost",
    "latency_profile",
)


class _Once:
    """A callable running `fn` at its first call and returning that result
    ever after: a training step's greedy pass, shared by the estimators
    and the budget."""

    def __init__(self, fn):
        self.fn = fn
        self.result = None

    def __call__(self):
        if self.result is None:
            self.result = self.fn()
        return self.result


@keras_d2nn_export
class D2NNModel(SavesSeedState, MultiWorkerFixes, keras.Model):
    """A Dynamic Deep Neural Network: runs, per example, part of a graph.

    Executes a `keras_d2nn.Graph` with routed execution (each node runs on
    the sub-batch of examples that reach it) and trains modules and
    controllers jointly: the supervised loss of the produced outputs plus a
    REINFORCE loss whose per-example reward is the task reward (1 for a
    correct prediction by default) minus `cost_weight` times the executed
    FLOPs as a fraction of running every node (or, with
    `compile(cost="latency", latency_profile=...)`, the predicted
    milliseconds as a fraction of the full network's; see
    docs/latency_cost.md).

    The `fit` progress bar shows `loss`, the compiled metrics, `cost` (mean
    executed FLOPs / full FLOPs, or the latency fraction; then also
    `latency_ms`) and, for each controller and action,
    `<controller>_<action>`: the share of examples that took that action.
    With a budget (`compile(target_cost=...)`) it also shows `cost_weight`,
    the multiplier the budget moves, and `greedy_cost`, the cost of the
    inference decisions on the training batches, which it steers.

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
    model.fit(images, labels, epochs=1, verbose=0)
    model.cost_report(images)
    ```

    References:
        Liu & Deng, "Dynamic Deep Neural Networks: Optimizing Accuracy-
        Efficiency Trade-offs by Selective Execution", AAAI 2018.
    """

    SEED_ATTRIBUTES = ("routing_seed",)  # see layers/seed_state.py

    def __init__(
        self,
        graph: Graph | dict,
        execution: str = "routed",
        allow_non_finite: bool = False,
        **kwargs: Any,
    ) -> None:
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
                f"Received: execution={execution!r}"
            )
        self.graph = graph
        self.execution = execution
        self._allow_non_finite = bool(allow_non_finite)
        self.plan = graph.validate()
        # Keras tracks these for weights, saving and `model.layers`.
        unique: dict[int, keras.Layer] = {}
        for node in self.plan.order:
            if node.layer is not None:
                unique.setdefault(id(node.layer), node.layer)
        self.node_layers = list(unique.values())
        self.estimators: list[Estimator] = []
        self._estimator_groups: list[tuple[Estimator, tuple]] = []
        self._training_mode = execution
        self._training_routing: dict[str, Any] = {}
        self.reward_bag_size: int | None = None
        self.bag_metric: Any = None
        # A budget (`compile(target_cost=...)`) moves it in the training
        # step, where every replica assigns the same value.
        self._cost_weight = self.add_weight(
            shape=(),
            initializer="zeros",
            trainable=False,
            name="cost_weight",
            aggregation="only_first_replica",
        )
        # The `CostBudget` of `compile(target_cost=...)`, or None.
        self.cost_budget: budget_lib.CostBudget | None = None
        self.task_reward: str | Callable = "correct"
        self.cost_tracker = keras.metrics.Mean(name="cost")
        # What the reward charges: FLOPs unless `compile(cost="latency")`.
        self.cost_measure = cost_lib.CostMeasure.flops(self.plan)
        # `latency_ms` in the logs, with `compile(cost="latency")` only.
        self.latency_tracker: keras.metrics.Mean | None = None
        # `trained_cost` in fit's logs, when the estimators force the
        # training pass's routes (FullInformation's module routing).
        self.trained_cost_tracker: keras.metrics.Mean | None = None
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
        self._routing: dict[str, Any] = {}
        self.routing_seed = keras.random.SeedGenerator()
        self.built = True

    # -- configuration ------------------------------------------------------

    @property
    def cost_weight(self):
        """Weight of the normalised cost in the reward; assignable any time.

        With a budget (`compile(target_cost=...)`) it is the Lagrange
        multiplier that training moves; assigning it restarts the
        multiplier from there.

        Example: `model.cost_weight = 0.3` (e.g. from a callback).
        """
        return float(self._cost_weight.numpy())

    @cost_weight.setter
    def cost_weight(self, value):
        self._cost_weight.assign(rewards.check_cost_weight(value))

    @property
    def target_cost(self):
        """The budget of `compile(target_cost=...)` (a fraction of the full
        FLOPs, or of the full latency with `cost="latency"`), or None when
        the cost weight stays where it is set."""
        if self.cost_budget is None:
            return None
        return self.cost_budget.target_cost

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
        """FLOPs per example of the dearest route (`Plan.full_flops`)."""
        return self.plan.full_flops

    @property
    def input_names(self):
        """The graph's input names, in order (the keys of a dict of
        inputs).

        Example: `model.input_names  # ["image"]`.
        """
        return [n.name for n in self.plan.order if n.kind == "input"]

    def compile(
        self,
        optimizer: Any = "adam",
        loss: Any = None,
        metrics: Any = None,
        *,
        cost_weight: float = 0.0,
        task_reward: str | Callable = "correct",
        estimator: Estimator | dict | None = None,
        entropy_weight: float = 0.01,
        baseline_momentum: float = 0.9,
        reward_bag_size: int | None = None,
        bag_metric: str | Callable = "f1",
        target_cost: float | None = None,
        budget_learning_rate: float | None = None,
        cost: str = "flops",
        latency_profile: LatencyProfile | dict | None = None,
        jit_compile: bool = False,
        **kwargs: Any,
    ) -> None:
        """Configures training; see `keras.Model.compile` for the rest.

        Args:
            cost_weight: weight of the normalised cost in the controllers'
                reward (>= 0). Change it later with `model.cost_weight = x`.
                With `target_cost`: where the multiplier starts.
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
            target_cost: a FLOP budget, a fraction of the full network's
                FLOPs in (0, 1], or None (default: the cost weight stays
                where it is set). With a budget the cost weight is a
                Lagrange multiplier that each training step moves by
                `budget_learning_rate * (cost - target_cost)`, not below
                0, where `cost` is the mean cost fraction of the greedy
                (inference) decisions on the step's batch (one more
                forward pass, in inference mode; see
                `keras_d2nn.estimators.budget`). It does not move while
                every controller's routing is forced (`WarmUp`,
                `set_routing`); `CostWeightSchedule` refuses such a
                model. Warns when the budget is below the cost of the
                graph's cheapest route.
            budget_learning_rate: the multiplier's step per training step
                and unit of overspending (> 0). Default: the smallest
                `budget_learning_rate` of the estimators (0.005 for
                REINFORCE, Q-learning and Gumbel, whose controllers follow
                a change of the reward gradually; 0.02 for
                `FullInformation`, whose controllers follow it within a
                few steps).
            cost: what the reward's cost term charges: `"flops"`
                (default; executed FLOPs / full FLOPs) or `"latency"`
                (predicted milliseconds of the nodes that ran / full
                milliseconds, from `latency_profile`). `target_cost`,
                the `cost` and `greedy_cost` logs and `calibrate_budget`
                use the same fraction; with `"latency"`, `fit` also logs
                `latency_ms`, the predicted milliseconds per example.
                Exported models still report `executed_flops`.
            latency_profile: a `keras_d2nn.profiling.LatencyProfile`
                (or its `get_config()` dict) covering every node that
                computes; needed by `cost="latency"` and only by it.
                Saved in the compile config (so in `.keras` files).
            jit_compile: default False: routed execution has data-dependent
                shapes, which XLA cannot compile.

        Example:

        ```python
        model.compile("adam", keras.losses.SparseCategoricalCrossentropy(
            from_logits=True), metrics=["accuracy"], cost_weight=0.5)
        model.compile("adam", keras.losses.SparseCategoricalCrossentropy(
            from_logits=True), metrics=["accuracy"], target_cost=0.3)
        profile = keras_d2nn.profiling.LatencyProfile(
            {"low": 0.01, "low_head": 0.001, "gate": 0.002, "high": 0.05})
        model.compile("adam", keras.losses.SparseCategoricalCrossentropy(
            from_logits=True), cost="latency", latency_profile=profile)
        ```
        """
        if loss is None:
            raise ValueError(
                "D2NNModel.compile needs a `loss` for the supervised part, "
                "e.g. keras.losses.SparseCategoricalCrossentropy("
                "from_logits=True)."
            )
        # Once per model: recipes compile it again for each phase.
        if not getattr(self, "_compile_warned", False):
            self._compile_warned = True
            loss_checks.warn_if_probability_loss(loss)
            controller_size.warn_if_oversized(self.plan)
        cost_weight = rewards.check_cost_weight(cost_weight)
        if isinstance(latency_profile, dict):
            latency_profile = LatencyProfile.from_config(latency_profile)
        cost_lib.check_cost(cost, latency_profile)
        cost_measure = (
            cost_lib.CostMeasure.flops(self.plan)
            if latency_profile is None
            else cost_lib.CostMeasure.latency(self.plan, latency_profile)
        )
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
        if budget_learning_rate is None:
            budget_learning_rate = min(
                (est.budget_learning_rate for est, _ in groups),
                default=budget_lib.DEFAULT_LEARNING_RATE,
            )
        cost_budget = None
        if target_cost is not None:
            cost_budget = budget_lib.CostBudget(
                target_cost, budget_learning_rate, name="cost_budget"
            )
            budget_lib.warn_if_out_of_reach(
                self.plan, cost_budget.target_cost, cost_measure
            )
        else:
            budget_learning_rate = budget_lib.check_budget_learning_rate(
                budget_learning_rate
            )
        super().compile(
            optimizer=optimizer,
            loss=loss,
            metrics=metrics,
            jit_compile=jit_compile,
            **kwargs,
        )
        self.cost_weight = cost_weight
        if self.cost_budget is not None:
            # Keras tracks what is assigned but never forgets it: a budget
            # replaced here would keep its weights and metrics in the model.
            self._tracker.untrack(self.cost_budget)
        self.cost_budget = cost_budget
        self._set_cost_measure(cost_measure)
        self.task_reward = task_reward
        self.reward_bag_size = reward_bag_size
        self.bag_metric = bag_metric
        self._estimator_groups = groups
        self.estimators = [est for est, _ in groups]
        for est, controllers in groups:
            est.configure(self, controllers)
        # Decisions the estimators force in the training pass (e.g.
        # FullInformation's module routing: every branch trains on every
        # example).
        self._training_routing = {
            q: a if isinstance(a, list) else int(a)
            for est, controllers in groups
            for q, a in getattr(est, "training_routing", {}).items()
            if q in controllers
        }
        if self.trained_cost_tracker is not None:
            # As for the budget: Keras would keep a replaced metric.
            self._tracker.untrack(self.trained_cost_tracker)
        self.trained_cost_tracker = (
            keras.metrics.Mean(name="trained_cost")
            if self._training_routing
            else None
        )
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
            "target_cost": None
            if cost_budget is None
            else cost_budget.target_cost,
            "budget_learning_rate": float(budget_learning_rate),
            "cost": cost,
            "latency_profile": None
            if latency_profile is None
            else latency_profile.get_config(),
        }

    def _set_cost_measure(self, measure):
        """Charges `measure` from now on; tracks `latency_ms` for a
        latency cost."""
        self.cost_measure = measure
        if self.latency_tracker is not None:
            # As for the budget: Keras would keep a replaced metric.
            self._tracker.untrack(self.latency_tracker)
        self.latency_tracker = (
            keras.metrics.Mean(name="latency_ms")
            if measure.kind == "latency"
            else None
        )

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

    def export(
        self,
        filepath,
        format="tf_saved_model",
        verbose=None,
        input_signature=None,
        **kwargs,
    ):
        """Writes the routed model for serving, as `keras.Model.export`
        does for a plain model, and returns the path.

        `format`: `"tf_saved_model"` (`export.export_saved_model`, for TF
        Serving), `"litert"` (`export.export_litert`, builtins only) or
        `"onnx"` (`export.export_onnx`). Each runs routed execution
        inside (skipped branches do not run), returns the routing
        outputs beside the logits (`decision_<controller>`,
        `executed_flops`, `valid`) and checks each request; Keras's
        generic export would have none of these, so other formats are a
        ValueError. The input signature is the graph's own input
        (`batch_size=` fixes the batch: LiteRT's default is 1).

        Args:
            filepath: where to write.
            format: one of the three above.
            verbose: if True, print the path written.
            input_signature: not taken (the graph declares its input); a
                ValueError if given.
            **kwargs: the exporter's arguments (`batch_size`,
                `quantization`, `representative_images`).

        Example:

        ```python
        # slow
        path = model.export("/tmp/high_low.tflite", format="litert")
        keras_d2nn.export.load_exported(path)(images[:1])["decision_gate"]
        ```
        """
        if input_signature is not None:
            raise ValueError(
                "D2NNModel.export takes the graph's input as it is declared "
                "(pass `batch_size=` to fix the batch size). Received: "
                f"input_signature={input_signature!r}"
            )
        path = exporters.export(self, filepath, format, **kwargs)
        if verbose:
            print(f"Saved the routed {format} model at {path}.")
        return path

    @property
    def routing(self):
        """The forced routing set with `set_routing` (`{}`: all learned)."""
        return dict(self._routing)

    def freeze_modules(self, frozen: bool = True) -> None:
        """Makes every module (F-node layer) untrainable, or trainable
        again: then `compile` and `fit` train the controllers alone.

        The second phase of the two-phase recipe: modules trained first
        with every branch on every example (`FullInformation`), then the
        controllers learn on modules that no longer move, so the rewards
        they regress to are those of the final modules (on Fashion-MNIST's
        high-low, docs/estimators_and_schedules.md, "Two phases"). As
        with any Keras layer, the change takes effect at the next
        `compile`.

        Args:
            frozen: True to freeze, False to make the modules trainable.

        Example:

        ```python
        model.freeze_modules()
        model.compile("adam", loss, estimator=keras_d2nn.FullInformation())
        model.fit(images, labels, epochs=1, verbose=0)
        model.freeze_modules(False)
        ```
        """
        for node in self.plan.order:
            if node.kind == "f" and node.layer is not None:
                node.layer.trainable = not frozen

    def set_routing(self, routing: dict | None = None) -> None:
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

    def _check_values(self, name, value, what, offset=0):
        batch_inputs.check_concrete_values(
            self.plan.nodes[name], value, what, offset, self.allow_non_finite
        )

    def _input_dict(self, inputs, what="trace", offset=0):
        return batch_inputs.checked_inputs(
            self.plan,
            self.input_names,
            inputs,
            self.allow_non_finite,
            what,
            offset,
        )

    def __call__(self, *args, **kwargs):
        # Checked here rather than in `call`, where Keras would bury the
        # message under "Exception encountered when calling D2NNModel".
        inputs = args[0] if args else kwargs.get("inputs")
        if inputs is not None:
            batch_inputs.check_call_inputs(
                self.plan, self.input_names, inputs, self.allow_non_finite
            )
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
        inputs: Any,
        training: bool = False,
        decisions: dict | None = None,
        mode: str | None = None,
        straight_through: dict | None = None,
        statistics: bool = True,
    ) -> engine.ExecutionTrace:
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
        return engine.empty_trace(self.plan)

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

    def _reward_settings(self):
        return objective.RewardSettings(
            task_reward=self.task_reward,
            loss=self.loss,
            full_flops=self.full_flops,
            cost_weight=self._cost_weight,
            bag_size=self.reward_bag_size,
            bag_metric=self.bag_metric,
            cost=None
            if self.cost_measure.kind == "flops"
            else self.cost_measure,
        )

    def _training_decisions(self, x):
        """The decisions the training pass forces: the estimators'
        `training_routing` for controllers not under `set_routing`, and
        the `set_routing` ones; None when nothing is forced."""
        own = {
            q: a
            for q, a in self._training_routing.items()
            if q not in self._routing
        }
        if not own:
            return None
        batch_size = tf.shape(tf.nest.flatten(x)[0])[0]
        decisions = forced_routing.forced_decisions(
            self._routing, batch_size, self.routing_seed
        )
        # An action index is forced on every example; a list of
        # probabilities draws each example's action (FullInformation's
        # "uniform" module routing).
        decisions.update(
            forced_routing.forced_decisions(
                {
                    q: ("random", a) if isinstance(a, list) else ("constant", a)
                    for q, a in own.items()
                },
                batch_size,
                self.routing_seed,
            )
        )
        return decisions

    def _update_routing_metrics(self, trace, greedy=()):
        """Cost and action rates of `trace`; for the controllers in
        `greedy` (forced in training by their estimator), the rates of
        the decisions they would take (argmax of their logits), and the
        cost of the route those decisions take: the training pass ran
        their forced routes (FullInformation: every module), whose cost
        says nothing of the routing learned; that cost is `trained_cost`
        (1 when every module trains on every example)."""
        if greedy and self.trained_cost_tracker is not None:
            self.trained_cost_tracker.update_state(
                self.cost_measure.executed(trace)
                / (self.cost_measure.full or 1.0)
            )
        decisions = dict(trace.decisions)
        for q in greedy:
            taken = self.plan.nodes[q].layer.greedy_action(trace.logits[q])
            decisions[q] = tf.where(trace.executed[q], taken, -1)
        measure = self.cost_measure
        if greedy:
            cost = tf.gather(
                tf.constant(measure.route_costs, tf.float32),
                self.plan.joint_decision(decisions),
            )
        else:
            cost = measure.executed(trace)
        self.cost_tracker.update_state(cost / (measure.full or 1.0))
        if self.latency_tracker is not None:
            self.latency_tracker.update_state(cost)
        for (q, action), tracker in zip(self.action_names, self.rate_trackers):
            index = self.plan.nodes[q].actions.index(action)
            tracker.update_state(
                tf.cast(tf.equal(decisions[q], index), tf.float32)
            )

    def _budget_step(self, greedy, move):
        """The budget's part of a step: with `move`, the multiplier's
        dual-ascent step on the global batch's mean cost of the greedy
        decisions (`greedy`, an inference trace); then its metrics."""
        budget = self.cost_budget
        fraction = self.cost_measure.fraction(greedy)
        if move:
            budget.update(self._cost_weight, replicas.mean(fraction))
        budget.track(self._cost_weight, fraction)

    def _track_loss(self, loss, x):
        # compute_loss divides by the replica count; the tracker wants the
        # plain mean, as in Keras's own train_step.
        batch = tf.shape(tf.nest.flatten(x)[0])[0]
        self._loss_tracker.update_state(
            loss * replicas.num_replicas(), sample_weight=batch
        )

    def fit(
        self, x: Any = None, y: Any = None, *args: Any, **kwargs: Any
    ) -> keras.callbacks.History:
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

    def evaluate(
        self, x: Any = None, y: Any = None, *args: Any, **kwargs: Any
    ) -> Any:
        """`keras.Model.evaluate`, with the data checked first (as `fit`).

        Example: `model.evaluate(test_images, test_labels, return_dict=True)`.
        """
        input_checks.check_data(self, x, y, "evaluate")
        with input_checks.clearer_step_errors("evaluate"):
            return super().evaluate(x, y, *args, **kwargs)

    def predict(self, x: Any, *args: Any, **kwargs: Any) -> Any:
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
        learned = set(self.plan.controllers) - set(self._routing)
        # One greedy (inference) pass at most, for the estimators that ask
        # for it and for the budget; rewards need no log-probabilities.
        greedy_trace = _Once(
            lambda: self.trace(x, training=False, statistics=False)
        )
        with tf.GradientTape() as tape:
            forced = self._training_decisions(x)
            trace = self.trace(
                x,
                training=True,
                mode=self._training_mode,
                straight_through=self._straight_through(),
                decisions=forced,
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
            policy_loss = objective.controllers_loss(
                self._estimator_groups,
                learned,
                trace,
                y,
                self._reward_settings(),
                self.plan,
                greedy_trace=greedy_trace,
                forced_trace=lambda decisions: self.trace(
                    x, training=False, decisions=decisions
                ),
            )
            total = (
                loss
                + objective.supervision_loss(self.plan, self.loss, trace, y)
                + policy_loss / replicas.num_replicas()
            )
            total = self.optimizer.scale_loss(total)
        weights = self.trainable_weights
        gradients = tape.gradient(total, weights)
        # Controllers under forced routing (set_routing) get no gradient.
        self.optimizer.apply_gradients(
            [(g, w) for g, w in zip(gradients, weights) if g is not None]
        )
        self._update_routing_metrics(
            trace,
            greedy=[
                q for q in self._training_routing if q not in self._routing
            ],
        )
        if self.cost_budget is not None:
            # With every controller forced (warm-up), the training pass
            # took the forced decisions: the multiplier stays, and the
            # metrics need no second pass.
            self._budget_step(
                greedy_trace() if learned else trace, move=bool(learned)
            )
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
        if self.cost_budget is not None:
            self._budget_step(trace, move=False)
        logs = self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)
        # An evaluation pass forces no route: nothing was trained.
        logs.pop("trained_cost", None)
        return self._step_logs(logs)

    # -- reports ------------------------------------------------------------

    def route(
        self,
        data: Any,
        batch_size: int = 256,
        labels: Any = None,
        decisions: dict | None = None,
        values: Sequence[str] = (),
    ) -> routing_pass.Routes:
        """One inference pass over a dataset: what every example did.

        Args:
            data: an array/tensor of inputs (or dict/list for several
                inputs), or a `tf.data.Dataset` of inputs or `(x, y)` pairs.
            labels: optional labels of array `data` (a dataset of `(x, y)`
                pairs brings its own).
            decisions: optional `{controller: int array (n,)}` to force
                (arrays only), e.g. the threshold baseline's.
            values: names of nodes whose outputs to keep
                (`routes.node_values`).

        Returns:
            A `keras_d2nn.models.Routes`: `executed`, `decisions`
            (-1 where a controller did not decide), `executed_flops`,
            `predictions` (argmax of the first output), `labels`, and
            `accuracy`, `mean_flops`, `mean_cost_fraction`. Every report
            takes it (`routes=`), so the data is routed once.

        Example:

        ```python
        routes = model.route(test_images, labels=test_labels)
        routes.accuracy, routes.decisions["gate"].mean()
        ```
        """
        return routing_pass.route(
            self, data, batch_size, labels, decisions, values
        )

    def calibrate_budget(
        self, data: Any, target_cost: float, batch_size: int = 256
    ) -> calibration.Calibration:
        """Lands the trained model on a budget: sets the price on cost at
        which its greedy decisions on `data` cost `target_cost` of the
        full FLOPs (or of the full latency, compiled with
        `cost="latency"`; see `keras_d2nn.models.calibration`).

        Use held-out examples (a validation split), not training ones. The
        price is a non-trainable weight of each controller
        (`logit_offset`): saved and exported with the model.

        Args:
            data: inputs, as `route` takes them.
            target_cost: the budget, a fraction of the full FLOPs (or
                latency) in (0, 1].
            batch_size: of the routing passes.

        Returns:
            A `keras_d2nn.models.Calibration` (`delta`, `cost`,
            `uncalibrated_cost`).

        Example:

        ```python
        # test_images: held-out examples (a validation split)
        result = model.calibrate_budget(test_images, target_cost=0.3)
        result.cost  # 0.30: within 0.002 of the target on test_images
        ```
        """
        return calibration.calibrate_budget(
            self, data, target_cost, batch_size=batch_size
        )

    def calibrate_accuracy(
        self,
        data: Any,
        max_drop: float,
        labels: Any = None,
        batch_size: int = 256,
    ) -> accuracy_target.AccuracyCalibration:
        """Lands the trained model on an accuracy target: the cheapest
        routing of `data` that loses at most `max_drop` accuracy against
        the model's own full network (every controller taking its
        costliest action); see `keras_d2nn.models.accuracy_target`.

        Use labelled held-out examples (a validation split). The price is
        kept in each controller's `logit_offset`, as `calibrate_budget`'s.

        Args:
            data: `(inputs, labels)`, a labelled dataset, or inputs with
                `labels=`.
            max_drop: accuracy it may lose, a fraction (0.005: half a
                point).
            labels: the labels, when `data` holds inputs only.
            batch_size: of the routing passes.

        Returns:
            A `keras_d2nn.models.AccuracyCalibration` (`accuracy`, `cost`,
            `reference_accuracy`, `drop`, `delta`).

        Example:

        ```python
        result = model.calibrate_accuracy(
            test_images, max_drop=0.01, labels=test_labels
        )
        result.drop <= 0.01  # True, on test_images
        ```
        """
        return accuracy_target.calibrate_accuracy(
            self, data, max_drop, labels=labels, batch_size=batch_size
        )

    def routing_report(
        self,
        data: Any = None,
        labels: Any = None,
        batch_size: int = 256,
        class_names: Sequence[str] | None = None,
        print_fn: Callable | None = print,
        routes: routing_pass.Routes | None = None,
    ) -> dict:
        """Which examples take which route, and how each route does.

        Per controller: the rate of each action overall and per true
        class; per route (the joint decisions an example got): its share,
        accuracy and mean FLOPs. Printed as tables and returned as data
        (see `keras_d2nn.inspection.routing_report.routing_report`). Give
        `data` (and `labels`), or the `routes` of an earlier `route` call.

        Example:

        ```python
        report = model.routing_report(test_images, test_labels)
        report["routes"][0]["route"], report["routes"][0]["accuracy"]
        ```
        """
        return inspection.routing_report.routing_report(
            self,
            data,
            labels,
            batch_size=batch_size,
            class_names=class_names,
            print_fn=print_fn,
            routes=routes,
        )

    def cost_report(
        self,
        data: Any = None,
        batch_size: int = 256,
        print_fn: Callable | None = print,
        routes: routing_pass.Routes | None = None,
    ) -> list[dict]:
        """Prints and returns, per node, its FLOPs and how often it ran.

        Args:
            data: optional inputs (as for `route`); without data (or
                `routes`) only the static FLOPs are reported.
            routes: the `Routes` of an earlier `route` call, instead of
                `data`.
            print_fn: where the table goes (`None` for no printing).

        Returns:
            A list of `{"node", "kind", "flops", "run_rate",
            "mean_flops"}` dicts, plus a final `"total"` row.

        Example:

        ```python
        rows = model.cost_report(test_images)
        rows[-1]["mean_flops"] / model.full_flops  # the mean cost fraction
        ```
        """
        if routes is None and data is not None:
            routes = self.route(data, batch_size)
        rows = cost_report.cost_rows(self.plan, routes)
        if print_fn is not None:
            print_fn(cost_report.format_cost_table(rows, self.full_flops))
        return rows
