"""Searching the accuracy/cost trade-off with keras-tuner.

`D2NNHyperModel` builds, trains and measures one D2NN per trial; its search
space is `cost_weight` (log scale) and, optionally, the estimator. Each
trial reports `val_accuracy` and `val_flop_fraction` (mean executed FLOPs
over the full network's, on the validation data), `val_routes` (distinct
routes taken on the validation data: 1 means no routing) and a scalar
`score` that the chosen objective computes from them:

- `Budget(0.3)`: the most accurate model using at most 30% of the FLOPs;
- `AccuracyTarget(0.88)`: the cheapest model with accuracy >= 0.88;
- `Reward(0.1)`: the scalarised reward, accuracy - 0.1 * FLOP fraction.

Any keras-tuner tuner (RandomSearch, BayesianOptimization, Hyperband) takes
the hypermodel with `objective=keras_tuner.Objective("score", "max")`
(`OBJECTIVE`). `pareto_front` reads the trials back as accuracy/cost
points.
"""

import dataclasses
import math

import keras
import keras_tuner

from keras_d2nn import architectures
from keras_d2nn.callbacks import schedules
from keras_d2nn.estimators import NAMED
from keras_d2nn.estimators import by_name
from keras_d2nn.experiments import baselines
from keras_d2nn.experiments import train_job
from keras_d2nn.models import D2NNModel

# keras-tuner reads one scalar: a list of objectives breaks when `fit`
# returns a dict (docs/architecture.md, "Traps").
OBJECTIVE = keras_tuner.Objective("score", direction="max")


@dataclasses.dataclass(frozen=True)
class Budget:
    """Maximise accuracy subject to FLOP fraction <= `budget`.

    Over budget, the score is below every feasible one (which lie in
    [0, 1]) and rises as the cost nears the budget.

    Example:

    ```python
    from keras_d2nn.experiments.tuning import Budget

    budget = Budget(0.3)  # at most 30% of the full network's FLOPs
    budget.score(accuracy=0.88, flop_fraction=0.25)  # 0.88: within
    budget.score(accuracy=0.95, flop_fraction=0.5)  # -0.2: over budget
    ```
    """

    budget: float

    def __post_init__(self):
        if not 0 < self.budget <= 1:
            raise ValueError(
                "`budget` is a fraction of the full network's FLOPs, in "
                f"(0, 1]. Received: budget={self.budget!r}"
            )

    def feasible(self, accuracy, flop_fraction):
        """Whether the FLOP fraction is within the budget.

        Example:

        ```python
        from keras_d2nn.experiments.tuning import Budget

        Budget(0.3).feasible(accuracy=0.8, flop_fraction=0.25)  # True
        ```
        """
        return flop_fraction <= self.budget

    def score(self, accuracy, flop_fraction):
        """The accuracy within the budget, else minus the excess FLOP
        fraction (below every feasible score).

        Example:

        ```python
        from keras_d2nn.experiments.tuning import Budget

        Budget(0.3).score(accuracy=0.9, flop_fraction=0.4)  # -0.1
        ```
        """
        if self.feasible(accuracy, flop_fraction):
            return float(accuracy)
        return float(-(flop_fraction - self.budget))


@dataclasses.dataclass(frozen=True)
class AccuracyTarget:
    """Minimise FLOPs subject to accuracy >= `target`.

    Example:

    ```python
    from keras_d2nn.experiments.tuning import AccuracyTarget

    target = AccuracyTarget(0.88)
    target.score(accuracy=0.89, flop_fraction=0.4)  # -0.4: met
    target.score(accuracy=0.80, flop_fraction=0.1)  # -1.08: missed
    ```
    """

    target: float

    def __post_init__(self):
        if not 0 < self.target <= 1:
            raise ValueError(
                f"`target` is an accuracy in (0, 1]. Received: {self.target!r}"
            )

    def feasible(self, accuracy, flop_fraction):
        """Whether the accuracy reaches the target.

        Example:

        ```python
        from keras_d2nn.experiments.tuning import AccuracyTarget

        AccuracyTarget(0.88).feasible(accuracy=0.87, flop_fraction=0.1)
        # False
        ```
        """
        return accuracy >= self.target

    def score(self, accuracy, flop_fraction):
        """Minus the FLOP fraction where the target is met, else below -1
        by the accuracy missing.

        Example:

        ```python
        from keras_d2nn.experiments.tuning import AccuracyTarget

        AccuracyTarget(0.88).score(accuracy=0.9, flop_fraction=0.3)  # -0.3
        ```
        """
        if self.feasible(accuracy, flop_fraction):
            return float(-flop_fraction)
        return float(-1.0 - (self.target - accuracy))


@dataclasses.dataclass(frozen=True)
class Reward:
    """Maximise accuracy - `flop_penalty` * FLOP fraction over the
    validation data: the scalarised trade-off of the trials, chosen once
    for the search (unlike each trial's training `cost_weight`, which the
    search tunes).

    Example:

    ```python
    from keras_d2nn.experiments.tuning import Reward

    Reward(0.1).score(accuracy=0.88, flop_fraction=0.4)  # 0.84
    ```
    """

    flop_penalty: float

    def __post_init__(self):
        if not (
            isinstance(self.flop_penalty, (int, float))
            and math.isfinite(self.flop_penalty)
            and self.flop_penalty >= 0
        ):
            raise ValueError(
                "`flop_penalty` should be a finite number >= 0. Received: "
                f"flop_penalty={self.flop_penalty!r}"
            )

    def feasible(self, accuracy, flop_fraction):
        """Always True: the reward has no constraint.

        Example:

        ```python
        from keras_d2nn.experiments.tuning import Reward

        Reward(0.1).feasible(accuracy=0.5, flop_fraction=1.0)  # True
        ```
        """
        return True

    def score(self, accuracy, flop_fraction):
        """`accuracy - flop_penalty * flop_fraction`.

        Example:

        ```python
        from keras_d2nn.experiments.tuning import Reward

        Reward(0.5).score(accuracy=0.9, flop_fraction=0.2)  # 0.8
        ```
        """
        return float(accuracy - self.flop_penalty * flop_fraction)


class D2NNHyperModel(keras_tuner.HyperModel):
    """A keras-tuner hypermodel of one D2NN architecture, or of your own
    graph.

    Args:
        arch: a name in `keras_d2nn.architectures.ARCHITECTURES`, or a
            function `hp -> D2NNModel` (uncompiled) building your own
            graph, declaring on `hp` any hyperparameter of its own (a
            width, a gate size); the trial compiles it with its
            `cost_weight` (and `input_shape` and `num_classes` are not
            used).
        objective: `Budget`, `AccuracyTarget` or `Reward`.
        cost_weight_range: `(min, max)` of the log-scale `cost_weight`.
        estimators: names in `keras_d2nn.estimators.NAMED` to choose from
            (one name: fixed, not searched).
        input_shape, num_classes: of the data.
        learning_rate: Adam's.
        warmup_epochs, cost_weight_ramp_epochs: as in the main job, and
            shortened as there (`schedules.d2nn_schedule`) for trials too
            short for them, as Hyperband's first rounds are: the last
            epoch of every trial trains at the trial's cost weight. A
            Hyperband trial that goes on from an earlier one (which ended
            at that cost weight) neither warms up nor ramps again.

    Example:

    ```python
    # slow
    import keras_tuner
    from keras_d2nn.experiments.tuning import (
        OBJECTIVE, Budget, D2NNHyperModel, pareto_front, trial_points)

    hypermodel = D2NNHyperModel("high_low", Budget(0.3))
    tuner = keras_tuner.RandomSearch(hypermodel, objective=OBJECTIVE,
                                     max_trials=2, directory="search")
    tuner.search(images, labels, epochs=1, verbose=0,
                 validation_data=(test_images, test_labels))
    pareto_front(trial_points(tuner))
    ```

    Your own graph, with a hyperparameter of its own:

    ```python
    # slow
    import keras_tuner
    from keras_d2nn.experiments.tuning import (
        OBJECTIVE, D2NNHyperModel, Reward, trial_points)

    def build(hp):
        width = hp.Int("high_units", 32, 128, step=32)
        return keras_d2nn.architectures.high_low(
            high_network=keras.Sequential([
                keras.Input((28, 28, 1)), keras.layers.Flatten(),
                keras.layers.Dense(width, activation="relu"),
                keras.layers.Dense(10)]))

    tuner = keras_tuner.RandomSearch(
        D2NNHyperModel(build, Reward(0.1)), objective=OBJECTIVE,
        max_trials=1, directory="own_search")
    tuner.search(images, labels, epochs=1, verbose=0,
                 validation_data=(test_images, test_labels))
    sorted(trial_points(tuner)[0]["hyperparameters"])
    # ["cost_weight", "high_units"]
    ```
    """

    def __init__(
        self,
        arch="high_low",
        objective=None,
        cost_weight_range=(0.01, 0.5),
        estimators=("reinforce_value",),
        input_shape=(28, 28, 1),
        num_classes=10,
        learning_rate=1e-3,
        warmup_epochs=1,
        cost_weight_ramp_epochs=1,
        name=None,
    ):
        super().__init__(name=name, tunable=True)
        if not callable(arch) and arch not in architectures.ARCHITECTURES:
            raise ValueError(
                f"`arch` should be one of {list(architectures.ARCHITECTURES)}"
                " or a function hp -> D2NNModel building your own graph. "
                f"Received: arch={arch!r}"
            )
        low, high = cost_weight_range
        if not 0 < low < high:
            raise ValueError(
                "`cost_weight_range` should be (min, max) with 0 < min < "
                "max (log scale). Received: "
                f"cost_weight_range={cost_weight_range!r}"
            )
        unknown = [e for e in estimators if e not in NAMED]
        if not estimators or unknown:
            raise ValueError(
                f"`estimators` should name some of "
                f"{list(NAMED)}. Received: "
                f"estimators={estimators!r}"
            )
        for label, value in (
            ("warmup_epochs", warmup_epochs),
            ("cost_weight_ramp_epochs", cost_weight_ramp_epochs),
        ):
            if value < 0:
                raise ValueError(f"`{label}` should be >= 0. Received: {value}")
        self.arch = arch
        self.objective = objective or Reward(0.1)
        self.cost_weight_range = (float(low), float(high))
        self.estimators = tuple(estimators)
        self.input_shape = tuple(input_shape)
        self.num_classes = num_classes
        self.learning_rate = learning_rate
        self.warmup_epochs = warmup_epochs
        self.cost_weight_ramp_epochs = cost_weight_ramp_epochs

    def build(self, hp):
        cost_weight = hp.Float(
            "cost_weight", *self.cost_weight_range, sampling="log"
        )
        name = (
            hp.Choice("estimator", list(self.estimators))
            if len(self.estimators) > 1
            else self.estimators[0]
        )
        model = self._build_graph(hp)
        model.compile(
            optimizer=keras.optimizers.Adam(self.learning_rate),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
            cost_weight=cost_weight,
            estimator=by_name(name),
        )
        return model

    def _build_graph(self, hp):
        """The trial's uncompiled `D2NNModel`."""
        if callable(self.arch):
            model = self.arch(hp)
            if not isinstance(model, D2NNModel) or model.compiled:
                raise ValueError(
                    "D2NNHyperModel: the build function should return an "
                    "uncompiled keras_d2nn.D2NNModel (each trial compiles "
                    f"it with its cost_weight). Received: {model!r}"
                )
            return model
        # The trials train by REINFORCE: their controllers read what it
        # was measured on (the raw input).
        raw_input = architectures.RAW_GATE_INPUTS.get(self.arch)
        return architectures.ARCHITECTURES[self.arch](
            input_shape=self.input_shape,
            num_classes=self.num_classes,
            **({"gate_input": raw_input} if raw_input else {}),
        )

    def schedule(self, hp, epochs):
        """The trial's warm-up and cost-weight ramp, fitted to `epochs`
        (Hyperband's `tuner/epochs`): its last epoch trains at the trial's
        `cost_weight`. A trial continuing an earlier one (Hyperband's
        `tuner/trial_id`: its weights were trained by a whole schedule,
        ending at this cost weight) trains at `cost_weight` throughout.

        Example:

        ```python
        import keras_tuner
        from keras_d2nn.experiments.tuning import Budget, D2NNHyperModel

        hypermodel = D2NNHyperModel("high_low", Budget(0.3))
        hp = keras_tuner.HyperParameters()
        hp.Fixed("cost_weight", 0.1)
        hypermodel.schedule(hp, epochs=3).cost_weights()  # [0.0, 0.0, 0.1]
        hypermodel.schedule(hp, epochs=1).cost_weights()  # [0.1]
        ```
        """
        if "tuner/trial_id" in hp.values:
            return schedules.d2nn_schedule(hp.get("cost_weight"), epochs, 0, 0)
        return schedules.d2nn_schedule(
            hp.get("cost_weight"),
            epochs,
            self.warmup_epochs,
            self.cost_weight_ramp_epochs,
        )

    def fit(
        self,
        hp,
        model,
        *args,
        validation_data=None,
        epochs=1,
        callbacks=None,
        **kwargs,
    ):
        """Trains with warm-up and cost-weight ramp, then measures on
        `validation_data` (required: an `(x, y)` pair of arrays)."""
        if validation_data is None or len(validation_data) != 2:
            raise ValueError(
                "D2NNHyperModel measures every trial on held-out data: "
                "pass `validation_data=(x_val, y_val)` to `search`."
            )
        callbacks = (
            list(callbacks or []) + self.schedule(hp, epochs).callbacks()
        )
        model.fit(*args, epochs=epochs, callbacks=callbacks, **kwargs)
        x_val, y_val = validation_data
        accuracy, mean_flops, decisions = baselines.measure(model, x_val, y_val)
        fraction = mean_flops / model.full_flops
        collapse = train_job.routing_collapse(model, x_val, decisions)
        ranks = {c["rank"] for c in collapse["controllers"]}
        return {
            "score": self.objective.score(accuracy, fraction),
            "val_accuracy": float(accuracy),
            "val_flop_fraction": float(fraction),
            "val_routes": float(collapse["routes"]),
            # With no routing (val_routes 1): 1 if the controllers took
            # their costliest actions, -1 their cheapest, 0 otherwise.
            "val_no_routing": float(
                0
                if collapse["routes"] > 1
                else 1
                if ranks == {"costliest"}
                else -1
                if ranks == {"cheapest"}
                else 0
            ),
        }


def trial_points(tuner):
    """Every completed trial as `{trial_id, cost_weight, val_accuracy,
    val_flop_fraction, score, val_routes, no_routing, hyperparameters}`,
    in trial order. `no_routing`: None when the trial routes (or did not
    record it), else `"costliest"`, `"cheapest"` or `"mixed"`: the
    actions its controllers took for every validation example.

    Example:

    ```python
    # slow
    import keras_tuner
    from keras_d2nn.experiments.tuning import (
        OBJECTIVE, D2NNHyperModel, Reward, trial_points)

    tuner = keras_tuner.RandomSearch(
        D2NNHyperModel("high_low", Reward(0.1)), objective=OBJECTIVE,
        max_trials=1, directory="search")
    tuner.search(images, labels, epochs=1, verbose=0,
                 validation_data=(test_images, test_labels))
    [(p["cost_weight"], p["val_accuracy"]) for p in trial_points(tuner)]
    ```
    """
    points = []
    for trial in tuner.oracle.trials.values():
        if trial.status != "COMPLETED":
            continue
        metrics = {
            name: trial.metrics.get_last_value(name)
            for name in ("score", "val_accuracy", "val_flop_fraction")
        }
        if any(
            v is None or (isinstance(v, float) and math.isnan(v))
            for v in metrics.values()
        ):
            continue
        # Recorded since routing checks came in: absent from older trials.
        routes = trial.metrics.get_last_value("val_routes")
        no_routing = None
        if routes == 1:
            no_routing = {1: "costliest", -1: "cheapest"}.get(
                trial.metrics.get_last_value("val_no_routing"), "mixed"
            )
        points.append(
            {
                "trial_id": trial.trial_id,
                "cost_weight": trial.hyperparameters.get("cost_weight"),
                **metrics,
                "val_routes": None if routes is None else int(routes),
                "no_routing": no_routing,
                "hyperparameters": dict(trial.hyperparameters.values),
            }
        )
    # Trial ids are "0", "1", ..., "10": order them as numbers.
    return sorted(points, key=lambda p: (len(p["trial_id"]), p["trial_id"]))


def pareto_front(points):
    """The points no other point beats on both accuracy (higher) and FLOP
    fraction (lower), sorted by FLOP fraction.

    Example:

    ```python
    from keras_d2nn.experiments.tuning import pareto_front

    points = [
        {"trial_id": "0", "val_accuracy": 0.86, "val_flop_fraction": 0.2},
        {"trial_id": "1", "val_accuracy": 0.85, "val_flop_fraction": 0.3},
        {"trial_id": "2", "val_accuracy": 0.89, "val_flop_fraction": 0.6},
    ]
    [p["trial_id"] for p in pareto_front(points)]  # ["0", "2"]: 0 beats 1
    ```
    """
    front = []
    for p in points:
        dominated = any(
            q["val_accuracy"] >= p["val_accuracy"]
            and q["val_flop_fraction"] <= p["val_flop_fraction"]
            and (
                q["val_accuracy"] > p["val_accuracy"]
                or q["val_flop_fraction"] < p["val_flop_fraction"]
            )
            for q in points
        )
        if not dominated:
            front.append(p)
    return sorted(front, key=lambda p: p["val_flop_fraction"])


def best_point(points, objective):
    """The point the objective scores highest among the feasible ones, or
    None if none is feasible.

    Example:

    ```python
    from keras_d2nn.experiments.tuning import (
        AccuracyTarget, Budget, best_point)

    points = [
        {"trial_id": "0", "val_accuracy": 0.86, "val_flop_fraction": 0.2},
        {"trial_id": "1", "val_accuracy": 0.89, "val_flop_fraction": 0.6},
    ]
    best_point(points, Budget(0.4))["trial_id"]  # "0"
    best_point(points, AccuracyTarget(0.88))["trial_id"]  # "1"
    best_point(points, Budget(0.1))  # None: no trial is within 10%
    ```
    """
    feasible = [
        p
        for p in points
        if objective.feasible(p["val_accuracy"], p["val_flop_fraction"])
    ]
    if not feasible:
        return None
    return max(
        feasible,
        key=lambda p: objective.score(
            p["val_accuracy"], p["val_flop_fraction"]
        ),
    )


def measure_on_test(model, x_test, y_test):
    """`{test_accuracy, test_flop_fraction}` of a model on the test split.

    Example:

    ```python
    from keras_d2nn.experiments.tuning import measure_on_test

    measure_on_test(model, test_images, test_labels)
    # {"test_accuracy": ..., "test_flop_fraction": ...}
    ```
    """
    accuracy, mean_flops, _ = baselines.measure(model, x_test, y_test)
    return {
        "test_accuracy": float(accuracy),
        "test_flop_fraction": float(mean_flops / model.full_flops),
    }


def no_routing_warnings(points, best, config_flags):
    """Warning lines about trials that did not route, with advice.

    Args:
        points: `trial_points(...)`.
        best: the chosen point or None.
        config_flags: `{"epochs", "cost_weight_min", "cost_weight_max"}`
            of the search, for the advice.

    Example:

    ```python
    from keras_d2nn.experiments.tuning import no_routing_warnings

    points = [
        {"trial_id": "0", "cost_weight": 0.01, "no_routing": "costliest",
         "val_flop_fraction": 1.0},
        {"trial_id": "1", "cost_weight": 0.2, "no_routing": None,
         "val_flop_fraction": 0.4},
    ]
    flags = {"epochs": 2, "cost_weight_min": 0.01, "cost_weight_max": 0.5}
    no_routing_warnings(points, points[1], flags)
    # ["WARNING: 1 of 2 trials did not route (...): trial 0 (...). To
    #   search among D2NNs that route, raise --cost_weight_min (was 0.01)
    #   or ..."]
    ```
    """
    stuck = [p for p in points if p.get("no_routing")]
    lines = []
    if not stuck:
        return lines
    listed = ", ".join(
        f"trial {p['trial_id']} (cost_weight {p['cost_weight']:.3g}: "
        f"{p['no_routing']} route, {p['val_flop_fraction']:.3f} of the "
        "FLOPs)"
        for p in stuck
    )
    kinds = {p["no_routing"] for p in stuck}
    epochs = config_flags["epochs"]
    if kinds == {"costliest"}:
        advice = (
            f"raise --cost_weight_min (was "
            f"{config_flags['cost_weight_min']:g}) or train longer "
            f"(more than --epochs={epochs})"
        )
    elif kinds == {"cheapest"}:
        advice = (
            f"lower --cost_weight_max (was "
            f"{config_flags['cost_weight_max']:g}) or train longer "
            f"(more than --epochs={epochs})"
        )
    else:
        advice = f"train longer (more than --epochs={epochs})"
    lines.append(
        f"WARNING: {len(stuck)} of {len(points)} trials did not route "
        f"(every validation example took the same route): {listed}. "
        f"To search among D2NNs that route, {advice}."
    )
    if best is not None and best.get("no_routing"):
        lines.append(
            f"WARNING: the chosen trial {best['trial_id']} does not route: "
            "best_model.keras is a static network."
        )
    return lines


def infeasible_warnings(points, best, objective, config_flags):
    """When no trial met the objective's constraint: a warning line saying
    how near the search came and which way to move it.

    Example:

    ```python
    from keras_d2nn.experiments.tuning import Budget, infeasible_warnings

    points = [{"trial_id": "0", "cost_weight": 0.05, "val_accuracy": 0.88,
               "val_flop_fraction": 0.5}]
    flags = {"epochs": 2, "cost_weight_min": 0.01, "cost_weight_max": 0.5}
    infeasible_warnings(points, None, Budget(0.3), flags)
    # ["WARNING: no trial met the budget of 0.3 of the FLOPs; ..."]
    ```
    """
    if best is not None or not points:
        return []
    more = (
        f"run more trials (--max_trials) or train longer (more than "
        f"--epochs={config_flags['epochs']})"
    )
    if isinstance(objective, Budget):
        cheapest = min(points, key=lambda p: p["val_flop_fraction"])
        return [
            f"WARNING: no trial met the budget of {objective.budget:g} of "
            f"the FLOPs; the cheapest (trial {cheapest['trial_id']}, "
            f"cost_weight {cheapest['cost_weight']:.3g}) used "
            f"{cheapest['val_flop_fraction']:.3f}. Search larger cost "
            f"weights (raise --cost_weight_min, was "
            f"{config_flags['cost_weight_min']:g}), or {more}."
        ]
    if isinstance(objective, AccuracyTarget):
        best_accuracy = max(points, key=lambda p: p["val_accuracy"])
        return [
            f"WARNING: no trial reached the validation accuracy "
            f"{objective.target:g}; the most accurate (trial "
            f"{best_accuracy['trial_id']}, cost_weight "
            f"{best_accuracy['cost_weight']:.3g}) reached "
            f"{best_accuracy['val_accuracy']:.4f}. Search smaller cost "
            f"weights (lower --cost_weight_max, was "
            f"{config_flags['cost_weight_max']:g}), or {more}."
        ]
    return []


__all__ = [
    "OBJECTIVE",
    "Budget",
    "AccuracyTarget",
    "Reward",
    "D2NNHyperModel",
    "trial_points",
    "pareto_front",
    "best_point",
    "measure_on_test",
    "no_routing_warnings",
    "infeasible_warnings",
]
