"""The main job: train a D2NN on real data, measure it and its baselines.

`run(TrainConfig(...))` trains the chosen architecture, evaluates it on the
test split, trains and measures the baselines (`baselines`), and
writes to the output directory `report.json` (with the routing report),
`tradeoff.png`, `routes.png` (test images by route), `graph.png` (the
graph with run rates, where Graphviz is installed), `model.keras` and
TensorBoard logs under `logs/`. `python -m keras_d2nn train` is a thin
command line over it.

Runs of any length train a D2NN: the warm-up and the cost-weight ramp are
shortened to fit (`schedules.d2nn_schedule`), so the last epoch always
trains at `cost_weight`. With `latency_profile` (a `LatencyProfile` JSON
of the same architecture, `python -m keras_d2nn profile`) the controllers
pay its predicted milliseconds instead of FLOPs (`compile(cost="latency")`,
docs/latency_cost.md), and the budget and the report's cost fractions are
of the full latency. With `budget` (a fraction of the full cost) the
D2NN is compiled with `target_cost=budget`: the cost weight becomes a
Lagrange multiplier that training moves (from `cost_weight`) towards the
budget, with no ramp; then the trained model is landed on the budget
(`D2NNModel.calibrate_budget`) on the last `val_examples` training images,
held out from training (the baselines' too), and the report records
where the test cost landed. A
run whose controllers end up taking one action for every test example
says so (`report["warnings"]`, printed last), as does a budget below the
cheapest route's cost or missed by more than `LANDING_TOLERANCE`.

Example:

```python
from keras_d2nn.experiments import train_job

config = train_job.TrainConfig(arch="cascade", epochs=2).check()
config.schedule().describe()
```
"""

import dataclasses
import json
import math
import os
import pathlib
import time

import keras
import numpy as np
import tensorflow as tf

from keras_d2nn import architectures
from keras_d2nn import estimators
from keras_d2nn import storage
from keras_d2nn.architectures.high_low import GATE_INPUTS
from keras_d2nn.callbacks import schedules
from keras_d2nn.callbacks.epoch_backup import EpochBackup
from keras_d2nn.callbacks.routing_tensorboard import RoutingTensorBoard
from keras_d2nn.data import pipelines
from keras_d2nn.estimators import budget as budget_lib
from keras_d2nn.estimators.rewards import check_cost_weight
from keras_d2nn.experiments import accuracy_landing
from keras_d2nn.experiments import baselines
from keras_d2nn.experiments import glimpse_job
from keras_d2nn.graph.latency_profile import LatencyProfile
from keras_d2nn.inspection import gallery
from keras_d2nn.inspection import tradeoff_plot
from keras_d2nn.inspection.graph_plot import plot_graph
from keras_d2nn.recipes import fit_two_phase

# Architectures whose graphs declare early exits: their defaults are the
# two-phase recipe (benchmarks/tradeoff.py: above the confidence threshold
# at budgets 0.1 to 0.4 on Fashion-MNIST's high-low).
EXIT_ARCHITECTURES = ("high_low", "cascade")
# Architectures trained by default with the two-phase recipe: on those
# without exits its first phase routes uniformly at random
# (benchmarks/paper_experiments.py), and the controllers regress the
# per-example loss (`neg_loss`), whose differences between versions are
# finer than right-or-wrong.
TWO_PHASE_ARCHITECTURES = EXIT_ARCHITECTURES + ("chain", "hierarchical")
TASK_REWARDS = {"chain": "neg_loss", "hierarchical": "neg_loss"}
# Architectures trained with the static-first recipe (`fit_static_first`):
# the modules as the static network that shares them, then the controller
# on a reward table (benchmarks/attention_canvas.py). Their regions all
# cost the same: no budget, no latency profile.
STATIC_FIRST_ARCHITECTURES = ("attention",)
STATIC_FIRST_GATE_EPOCHS = 12
# The dataset of each architecture when --dataset is not given.
DEFAULT_DATASET = "fashion_mnist"
DATASETS = {"attention": "fashion_mnist_canvas"}
DEFAULT_BUDGET = 0.3
# Budgets (fractions of the dearest route) other than DEFAULT_BUDGET.
BUDGETS = {"chain": 0.5, "hierarchical": 0.6}
# A test accuracy at most this multiple of chance (1 / classes) is a
# failed run: nothing is saved or reported as a trained model.
CHANCE_MULTIPLE = 1.5
TWO_PHASE_GATE_EPOCHS = 2
# The size of the training split of the datasets (Fashion-MNIST).
TRAIN_IMAGES = 60_000
# How far from the budget the test cost may land before the report warns.
LANDING_TOLERANCE = 0.02
# A controller taking one action for at least this share of the examples
# it decides for does not route, whatever that action costs (a glimpse
# controller sent 99.8% of the test images to one region).
COLLAPSE_SHARE = 0.99
# Room for report.json, the plots and TensorBoard logs beside the model.
OUTPUT_MARGIN_BYTES = 50_000_000


def check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(
            f"`{name}` should be one of {choices}. Received: {name}={value!r}"
        )


def check_at_least(config, name, least):
    """A ValueError in the library's dialect when `config.name < least`.

    Example: `check_at_least(TrainConfig(epochs=0), "epochs", 1)` raises.
    """
    value = getattr(config, name)
    if value < least:
        raise ValueError(
            f"`{name}` should be >= {least}. Received: {name}={value!r}"
        )


def check_finite(config, names):
    """A ValueError naming the first of `names` that is NaN or infinite
    (`nan < 0` is False: range checks alone let NaN through, and a NaN
    learning rate trains a model of NaN weights).

    Example: `check_finite(TrainConfig(learning_rate=float("nan")),
    ["learning_rate"])` raises.
    """
    for name in names:
        value = getattr(config, name)
        if value is not None and not math.isfinite(value):
            raise ValueError(
                f"`{name}` should be a finite number. Received: "
                f"{name}={value!r}"
            )


@dataclasses.dataclass
class TrainConfig:
    """Settings of the main job; the CLI flags map one to one.

    Example: `run(TrainConfig(arch="cascade", epochs=1))`.
    """

    arch: str = "high_low"
    # None: by architecture (`DATASETS`, else `DEFAULT_DATASET`).
    dataset: str | None = None
    epochs: int = 3
    # None: by architecture (`resolved`).
    gate_epochs: int | None = None
    cost_weight: float = 0.1
    budget: float | None = None
    # Land on the cheapest routing within this accuracy of the full
    # network, on the held-out images (0: none; `accuracy_landing`).
    max_accuracy_drop: float = 0.0
    entropy_weight: float = 0.01
    learning_rate: float = 1e-3
    batch_size: int = 128
    train_examples: int = 0
    val_examples: int = 5000
    estimator: str | None = None
    gate_input: str | None = None
    warmup_epochs: int | None = None
    cost_weight_ramp_epochs: int = 1
    baselines: bool = True
    baseline_epochs: int = 0
    output_dir: str = "runs/default"
    seed: int = 0
    data_dir: str | None = None
    tfds_dir: str | None = None
    verbose: int = 1
    save_optimizer: bool = True
    tensorboard: bool = True
    # A `LatencyProfile` JSON of this architecture: the controllers pay its
    # milliseconds instead of FLOPs (None: FLOPs).
    latency_profile: str | None = None

    def resolved(self):
        """This config with each setting left to the architecture (None)
        set: for the architectures of `TWO_PHASE_ARCHITECTURES` the
        two-phase recipe (`full_information`; with it no warm-up,
        `TWO_PHASE_GATE_EPOCHS` epochs of the controllers alone, the
        budget of `BUDGETS` or `DEFAULT_BUDGET`, and on those with early
        exits controllers reading `confidence`), else release 0.1's
        (`reinforce_value`, one warm-up epoch, no budget: `cost_weight`).

        Example:

        ```python
        from keras_d2nn.experiments import train_job

        train_job.TrainConfig().resolved().estimator  # "full_information"
        train_job.TrainConfig(arch="chain").resolved().budget  # 0.5
        train_job.TrainConfig(arch="attention").resolved().dataset
        # "fashion_mnist_canvas"
        ```

        The attention D2NN trains with the static-first recipe
        (`STATIC_FIRST_ARCHITECTURES`): its controller regresses the value
        of each region (`full_information`), for
        `STATIC_FIRST_GATE_EPOCHS`, without a budget; then the modules
        train on its routes for `glimpse_job.ROUTE_EPOCHS`.
        """
        exits = self.arch in EXIT_ARCHITECTURES
        static_first = self.arch in STATIC_FIRST_ARCHITECTURES
        two_phase = self.arch in TWO_PHASE_ARCHITECTURES
        estimator = self.estimator or (
            "full_information"
            if two_phase or static_first
            else "reinforce_value"
        )
        full = estimator.startswith("full_information")

        def pick(value, default):
            return default if value is None else value

        return dataclasses.replace(
            self,
            dataset=pick(
                self.dataset, DATASETS.get(self.arch, DEFAULT_DATASET)
            ),
            estimator=estimator,
            budget=pick(
                self.budget,
                BUDGETS.get(self.arch, DEFAULT_BUDGET) if two_phase else 0.0,
            ),
            gate_input=pick(
                self.gate_input, "confidence" if exits and full else "features"
            ),
            warmup_epochs=pick(self.warmup_epochs, 0 if full else 1),
            gate_epochs=pick(
                self.gate_epochs,
                STATIC_FIRST_GATE_EPOCHS
                if static_first
                else TWO_PHASE_GATE_EPOCHS
                if full
                else 0,
            ),
        )

    def check(self):
        """Raises `ValueError` naming the first bad setting."""
        check_finite(
            self,
            ("learning_rate", "entropy_weight", "budget", "max_accuracy_drop"),
        )
        if not self.learning_rate > 0:
            raise ValueError(
                "`learning_rate` should be > 0. Received: "
                f"learning_rate={self.learning_rate!r}"
            )
        if self.entropy_weight < 0:
            raise ValueError(
                "`entropy_weight` should be >= 0. Received: "
                f"entropy_weight={self.entropy_weight!r}"
            )
        check_choice("arch", self.arch, list(architectures.ARCHITECTURES))
        check_cost_weight(self.cost_weight)
        settings = self.resolved()
        pipelines.check_dataset(settings.dataset)
        if self.arch in STATIC_FIRST_ARCHITECTURES:
            self._check_static_first(settings)
        if not (settings.budget == 0 or 0 < settings.budget <= 1):
            raise ValueError(
                "`budget` should be a fraction of the full network's cost "
                "(FLOPs, or milliseconds with `latency_profile`), in (0, 1], "
                f"or 0 for none. Received: budget={self.budget!r}"
            )
        if self.latency_profile is not None and not os.path.isfile(
            self.latency_profile
        ):
            raise ValueError(
                "`latency_profile` should be a latency profile's JSON file "
                "(`python -m keras_d2nn profile` writes one). Received: "
                f"latency_profile={self.latency_profile!r}, no such file"
            )
        check_choice("estimator", settings.estimator, list(estimators.NAMED))
        check_choice("gate_input", settings.gate_input, list(GATE_INPUTS))
        if settings.gate_input != "features" and self.arch not in (
            EXIT_ARCHITECTURES
        ):
            raise ValueError(
                "`gate_input` other than 'features' is an option of the "
                f"high_low and cascade architectures. Received: gate_input="
                f"{self.gate_input!r} with arch={self.arch!r}"
            )
        for name in ("epochs", "batch_size"):
            check_at_least(settings, name, 1)
        if not 0 <= self.max_accuracy_drop < 1:
            raise ValueError(
                "`max_accuracy_drop` should be the accuracy the routing may "
                "lose against the full network, a fraction in [0, 1) "
                "(0.005: half a point; 0: no accuracy target). Received: "
                f"max_accuracy_drop={self.max_accuracy_drop!r}"
            )
        if self.max_accuracy_drop and not self.val_examples:
            raise ValueError(
                "`max_accuracy_drop` is met on held-out training images: "
                "set `val_examples` > 0. Received: val_examples=0"
            )
        if (
            settings.budget or self.max_accuracy_drop
        ) and self.val_examples >= TRAIN_IMAGES:
            raise ValueError(
                "`val_examples` should leave training images: fewer than "
                f"{TRAIN_IMAGES}. Received: val_examples={self.val_examples}"
            )
        for name in (
            "train_examples",
            "val_examples",
            "gate_epochs",
            "baseline_epochs",
            "warmup_epochs",
            "cost_weight_ramp_epochs",
        ):
            check_at_least(settings, name, 0)
        return self

    def _check_static_first(self, settings):
        """Refuses the settings the static-first recipe has no use for."""
        for name, given in (
            ("budget", settings.budget),
            ("max_accuracy_drop", self.max_accuracy_drop),
            ("latency_profile", self.latency_profile),
        ):
            if given:
                raise ValueError(
                    f"`{name}` does not apply to arch={self.arch!r}: each "
                    "of its regions costs the same, so there is no "
                    f"trade-off to set. Received: {name}={given!r}"
                )
        if settings.estimator != "full_information":
            raise ValueError(
                f"arch={self.arch!r} trains with the static-first recipe, "
                "whose controller regresses each region's value "
                "(estimator='full_information'). Received: "
                f"estimator={self.estimator!r}"
            )

    @property
    def target_cost(self):
        """`budget` as `compile(target_cost=...)` takes it (None: none)."""
        return self.resolved().budget or None

    def schedule(self):
        """The warm-up and cost-weight ramp fitted to `epochs` (shortened
        so that the last epoch trains at `cost_weight`; with a budget, the
        warm-up alone; see `schedules.d2nn_schedule`)."""
        settings = self.resolved()
        return schedules.d2nn_schedule(
            self.cost_weight,
            self.epochs,
            settings.warmup_epochs,
            self.cost_weight_ramp_epochs,
            target_cost=self.target_cost,
        )


def builder(config):
    """A function building a fresh, untrained model as configured.

    Example: `model = builder(TrainConfig(arch="cascade"))()`.
    """
    config = config.resolved()
    info = pipelines.DATASETS[config.dataset]
    factory = architectures.ARCHITECTURES[config.arch]

    options = {}
    # A high_low and cascade option (checked); "features" names each
    # builder's raw input (the cascade's logits).
    if config.arch in architectures.RAW_GATE_INPUTS:
        options["gate_input"] = (
            architectures.RAW_GATE_INPUTS[config.arch]
            if config.gate_input == "features"
            else config.gate_input
        )

    def build():
        return factory(
            input_shape=info["shape"],
            num_classes=len(info["class_names"]),
            **options,
        )

    return build


def routing_collapse(model, x, decisions, sample=256):
    """The controllers that took one action for every example they decided
    for, or nearly (`COLLAPSE_SHARE` of them): they do not route.

    Args:
        model: a trained `D2NNModel` (with its learned routing).
        x: the examples `decisions` were taken on (a sample of them is
            routed again with each action forced, to rank the actions by
            cost).
        decisions: `{controller: int array (n,)}`, -1 where it did not
            decide (`baselines.measure`'s third result).

    Returns:
        `{"routes": number of distinct routes, "controllers": [{
        "controller", "action", "ran" (share of examples it decided for),
        "share" (of those, the share that took `action`), "rank":
        "costliest", "cheapest" or "middle"}]}`; `routes == 1`: no routing
        at all, the D2NN is a static network.

    Example: `routing_collapse(model, x_test, measure(model, x, y)[2])`.
    """
    plan = model.plan
    controllers = [q for q in plan.controllers if q in decisions]
    if controllers:
        table = np.stack([np.asarray(decisions[q]) for q in controllers], 1)
        routes = len(np.unique(table, axis=0))
    else:
        routes = 1
    collapsed = []
    probe = x[:sample]
    for q in controllers:
        decided = np.asarray(decisions[q])
        decided = decided[decided >= 0]
        if not len(decided):
            continue
        actions, counts = np.unique(decided, return_counts=True)
        share = counts.max() / len(decided)
        if share < COLLAPSE_SHARE:
            continue
        action = int(actions[counts.argmax()])
        costs = []
        for a in range(len(plan.nodes[q].actions)):
            forced = {q: tf.fill([len(probe)], a)}
            costs.append(
                float(
                    np.mean(
                        model.trace(
                            probe, decisions=forced, statistics=False
                        ).executed_flops.numpy()
                    )
                )
            )
        rank = (
            "costliest"
            if costs[action] >= max(costs)
            else "cheapest"
            if costs[action] <= min(costs)
            else "middle"
        )
        collapsed.append(
            {
                "controller": q,
                "action": plan.nodes[q].actions[action],
                "ran": float(len(decided) / len(decisions[q])),
                "share": float(share),
                "rank": rank,
            }
        )
    return {"routes": routes, "controllers": collapsed}


def collapse_warnings(collapse, cost_weight, epochs, budget=0.0):
    """Warning lines (with advice) for `routing_collapse`'s result; none
    when every controller routes. With a `budget` the advice is about the
    budget, which set the cost weight.

    Example: `collapse_warnings(routing_collapse(...), 0.1, epochs=2)`.
    """
    lines = []
    collapsed = collapse["controllers"]
    if not collapsed:
        return lines
    ranks = {c["rank"] for c in collapsed}
    if budget and ranks == {"cheapest"}:
        advice = (
            f"raise --budget (was {budget:g}) or train longer (more "
            f"than --epochs={epochs})"
        )
    elif budget:
        advice = f"train longer (more than --epochs={epochs})"
    elif ranks == {"costliest"}:
        advice = (
            f"raise --cost_weight (was {cost_weight:g}) or train "
            f"longer (more than --epochs={epochs})"
        )
    elif ranks == {"cheapest"}:
        advice = (
            f"lower --cost_weight (was {cost_weight:g}) or train "
            f"longer (more than --epochs={epochs})"
        )
    else:
        advice = f"train longer (more than --epochs={epochs})"
    if collapse["routes"] == 1:
        route = ", ".join(f"{c['controller']}={c['action']}" for c in collapsed)
        which = (
            f", the {next(iter(ranks))} action of every controller"
            if len(ranks) == 1 and "middle" not in ranks
            else ""
        )
        lines.append(
            f"WARNING: no routing: every test example took the same "
            f"route ({route}{which}); this D2NN is a static "
            f"network. To get routing, {advice}."
        )
    else:
        actions = "; ".join(
            f"{c['controller']} took {c['action']} ({c['rank']} action) "
            + (
                "for every test example"
                if c.get("share", 1.0) == 1.0
                else f"for {c['share']:.1%} of the test examples"
            )
            + " it decided for"
            for c in collapsed
        )
        lines.append(
            f"WARNING: some controllers do not route: {actions}. "
            f"To get routing there, {advice}."
        )
    return lines


def compiler(config):
    """A function compiling a model as configured, each with its own Adam.

    Example: `compiler(TrainConfig())(model)`.
    """

    def compile_model(model):
        model.compile(
            **_compile_kwargs(config),
            cost_weight=config.cost_weight,
            entropy_weight=config.entropy_weight,
        )

    return compile_model


def _versus(accuracy, point):
    """The D2NN's `accuracy` against a threshold-exit `Point`."""
    return {
        "threshold": point.details["threshold"],
        "threshold_accuracy": point.test_accuracy,
        "threshold_mean_flops": point.mean_flops,
        "difference_points": 100 * (accuracy - point.test_accuracy),
    }


def load_latency_profile(path, plan):
    """The `LatencyProfile` saved at `path`, checked against `plan`; a
    ValueError naming the file when it is not one, or is another graph's.

    Example: `load_latency_profile("profile.json", model.plan)`.
    """
    try:
        profile = LatencyProfile.load(path)
        profile.check(plan)
    except (OSError, ValueError, TypeError) as error:
        raise ValueError(
            f"`latency_profile` {str(path)!r} is not a latency profile of "
            f"this model: {error}"
        ) from None
    return profile


def _recipe_arguments(config, latency_profile=None):
    """`fit_two_phase`'s arguments as configured: the estimator, a new
    Adam per phase, the cost weight, budget and entropy weight, and the
    latency cost when `latency_profile` (a `LatencyProfile`) is given."""
    estimator = estimators.by_name(config.estimator)
    if isinstance(estimator, estimators.Reinforce):
        estimator.entropy_weight = config.entropy_weight
    return dict(
        estimator=estimator,
        compile_kwargs=dict(
            cost_weight=config.cost_weight,
            entropy_weight=config.entropy_weight,
            target_cost=config.target_cost,
            cost="flops" if latency_profile is None else "latency",
            latency_profile=latency_profile,
            task_reward=TASK_REWARDS.get(config.arch, "correct"),
        ),
        **_compile_kwargs(config),
    )


def _compile_kwargs(config):
    return dict(
        optimizer=keras.optimizers.Adam(config.learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )


def budget_warnings(config, landed, cheapest):
    """Warning lines for a run with a budget: below the cheapest route's
    cost (`cheapest`), or `landed` (the test cost fraction) off by more
    than `LANDING_TOLERANCE`; none without a budget.

    Example: `budget_warnings(TrainConfig(budget=0.3), 0.36, 0.006)`.
    """
    config = config.resolved()
    if not config.budget:
        return []
    unit = "FLOPs" if config.latency_profile is None else "latency"
    if config.budget < cheapest:
        return [
            f"WARNING: --budget={config.budget:g} is below the cost of the "
            f"cheapest route ({cheapest:.4f} of the full {unit}): no "
            "routing meets it, so training pushed every controller to its "
            "cheapest action. Ask for at least the cheapest route's cost."
        ]
    # Landed on an accuracy target instead: the cost is whatever meets it.
    if config.max_accuracy_drop or abs(landed - config.budget) <= (
        LANDING_TOLERANCE
    ):
        return []
    if config.val_examples:
        advice = (
            "It was landed on the budget on the held-out images: the test "
            "images differ from them (more --val_examples make the landing "
            "steadier)"
        )
    else:
        advice = (
            "At a constant learning rate the gate's decisions move by "
            "several points of the cost from one step to the next, so the "
            "last step decides where the cost lands; --val_examples=5000 "
            "lands the trained model on the budget"
        )
    if config.estimator != "full_information" and not config.val_examples:
        advice += (
            "; --estimator=full_information follows a budget more closely "
            f"than {config.estimator}"
        )
    return [
        f"WARNING: budget {config.budget:.2f}: landed at {landed:.2f} of "
        f"the full {unit} on the test split, more than "
        f"{LANDING_TOLERANCE:g} away. {advice} "
        "(docs/estimators_and_schedules.md, Budgets)."
    ]


def run(config, log=print):
    """Runs the main job; returns the report dict (also written to disk).

    The outputs (`report.json`, `model.keras`, plots, TensorBoard logs)
    are written to a hidden folder beside `config.output_dir` and replace
    it whole at the end: a run that fails or is killed leaves the
    previous run's folder as it was. A folder that cannot be written, a
    disk without room for the model, or an existing folder that is not
    an earlier run's (no `report.json`) is refused before training
    (`storage.OutputNotWritable`); a model with non-finite weights or at
    chance accuracy is not saved (`TrainingFailed`). Each epoch is backed
    up beside the folder (`backup_folder`): the same call after a kill
    resumes from there.

    Example:

    ```python
    report = run(TrainConfig(arch="high_low", epochs=1, baselines=False))
    report["test_accuracy"], report["mean_cost_fraction"]
    ```
    """
    config = config.check().resolved()
    keras.utils.set_random_seed(config.seed)
    build = builder(config)
    model = build()
    storage.check_writable(
        config.output_dir,
        needed_bytes=_needed_bytes(model, config),
        # The folder is replaced whole: only an earlier run's, or a new one.
        previous_run_marker="report.json",
    )
    profile = None
    if config.latency_profile is not None:
        profile = load_latency_profile(config.latency_profile, model.plan)
    backup = EpochBackup(
        backup_folder(config), fingerprint=_fingerprint(config)
    )
    if backup.state is not None:
        log(
            f"Resuming the killed run from its backup "
            f"({backup_folder(config)}): phase {backup.state['fit'] + 1}, "
            f"after epoch {backup.state['epoch']}."
        )
    try:
        with storage.staged_run_folder(config.output_dir) as output_dir:
            report = _train_and_report(
                config, build, model, profile, backup, output_dir, log
            )
    except TrainingFailed:
        # The same settings would fail the same way: no backup to resume.
        storage.atomic_files.remove(backup.directory)
        raise
    # The outputs are in place: the run needs its backup no more.
    storage.atomic_files.remove(backup.directory)
    _log_summary(report, log, pathlib.Path(config.output_dir))
    return report


def backup_folder(config):
    """The hidden folder beside the output folder where each epoch is
    backed up until the run's outputs are saved.

    Example: `backup_folder(TrainConfig())  # runs/.default.backup`.
    """
    output_dir = pathlib.Path(config.output_dir)
    return output_dir.with_name(f".{output_dir.name}.backup")


def _fingerprint(config):
    """What a backup must have been trained with to be resumed: every
    setting but the ones that only say what is printed or measured."""
    settings = dataclasses.asdict(config)
    # output_dir: the backup's own place already ties it to the folder,
    # which `runs/x` and `runs/x/` both name.
    for name in (
        "verbose",
        "baselines",
        "baseline_epochs",
        "tensorboard",
        "output_dir",
    ):
        settings.pop(name)
    return settings


def _needed_bytes(model, config):
    """Room for the outputs: the model file (Adam's two slots per weight
    with the optimizer), plus plots and logs."""
    try:
        weights = model.count_params()
    except ValueError:  # not built yet: the margin alone
        weights = 0
    copies = 3 if config.save_optimizer else 1
    return 4 * weights * copies + OUTPUT_MARGIN_BYTES


def check_finite_weights(model, config):
    """Raises `TrainingFailed` when a weight of `model` is NaN or
    infinite: such a model predicts garbage and must not be saved.

    Example: `check_finite_weights(model, TrainConfig())  # or raises`.
    """
    bad = [
        w.path
        for w in model.weights
        if not np.all(np.isfinite(keras.ops.convert_to_numpy(w)))
    ]
    if bad:
        raise TrainingFailed(
            f"training failed: {len(bad)} of {len(model.weights)} weights "
            f"are NaN or infinite (first: {bad[0]}); no model or report was "
            f"saved in {config.output_dir}. Lower --learning_rate (was "
            f"{config.learning_rate:g})."
        )


def _train_and_report(config, build, model, profile, backup, output_dir, log):
    """The body of `run`, writing into `output_dir` (the staging
    folder)."""
    take = config.train_examples or None
    held_out = (
        config.val_examples if config.budget or config.max_accuracy_drop else 0
    )

    def training_data():
        # A fresh pipeline gives the same order of examples as the first:
        # the D2NN and each baseline see the same batches.
        return pipelines.load(
            config.dataset,
            f"train[:-{held_out}]" if held_out else "train",
            config.batch_size,
            data_dir=config.tfds_dir,
            manual_dir=config.data_dir,
            take=take,
            seed=config.seed,
        )

    train = training_data()
    x_test, y_test = pipelines.load_arrays(
        config.dataset,
        "test",
        data_dir=config.tfds_dir,
        manual_dir=config.data_dir,
    )

    static_first = config.arch in STATIC_FIRST_ARCHITECTURES
    schedule = config.schedule()
    # The static-first recipe's first phase fits a plain Keras network:
    # no cost weight to schedule, no routing to watch.
    callbacks = [] if static_first else schedule.callbacks()
    if config.tensorboard:
        # Histograms of the controllers' confidence on test images: for
        # watching only, nothing is chosen by them.
        logs = str(output_dir / "logs")
        # The run's folder is staged until the end: say where to watch.
        log(
            f"TensorBoard logs: {logs} (moved to "
            f"{pathlib.Path(config.output_dir) / 'logs'} at the end)."
        )
        callbacks.append(keras.callbacks.TensorBoard(logs))
        if not static_first:
            callbacks.append(RoutingTensorBoard(logs, data=x_test[:1000]))

    setting = (
        f"budget={config.budget}"
        if config.budget
        else f"cost_weight={config.cost_weight}"
    )
    plural = "s" if config.epochs > 1 else ""
    if static_first:
        log(
            f"Training {config.arch} on {config.dataset}: its modules as "
            f"the full-resolution network for {config.epochs} epoch{plural}, "
            f"then its controller for {config.gate_epochs}."
        )
    else:
        log(
            f"Training {config.arch} on {config.dataset} for "
            f"{config.epochs} epoch{plural}, {setting}: "
            f"{schedule.describe('FLOPs' if profile is None else 'latency')}."
        )
    start = time.time()
    if static_first:
        history = glimpse_job.fit(
            model, train, config, callbacks, log, _compile_kwargs(config)
        )
    else:
        # Phase two (`gate_epochs`): the controllers alone, on modules
        # that no longer move (the cost weight, or the budget's
        # multiplier, goes on).
        history = fit_two_phase(
            model,
            train,
            epochs=config.epochs,
            gate_epochs=config.gate_epochs,
            callbacks=callbacks,
            log=log,
            backup=backup,
            verbose=config.verbose,
            # The pipeline shuffles; Keras cannot shuffle a
            # tf.data.Dataset.
            shuffle=False,
            **_recipe_arguments(config, profile),
        )
    train_seconds = time.time() - start
    check_finite_weights(model, config)
    landing = accuracy_target = None
    if config.max_accuracy_drop:
        x_val, y_val = pipelines.load_arrays(
            config.dataset,
            f"train[-{held_out}:]",
            data_dir=config.tfds_dir,
            manual_dir=config.data_dir,
        )
        accuracy_target = accuracy_landing.land(
            model, x_val, y_val, config.max_accuracy_drop, log
        )
    elif held_out and not budget_lib.out_of_reach(
        model.plan, config.budget, model.cost_measure
    ):
        # Lands the trained model on the budget, on images it did not
        # train on (the cheap head is more confident on its own).
        x_val, _ = pipelines.load_arrays(
            config.dataset,
            f"train[-{held_out}:]",
            data_dir=config.tfds_dir,
            manual_dir=config.data_dir,
        )
        landing = model.calibrate_budget(x_val, config.budget)
        log(
            f"Landed on the budget with {held_out} held-out images: their "
            f"cost {landing.uncalibrated_cost:.3f} -> {landing.cost:.3f} "
            f"(price on cost {landing.delta:+.4g})."
        )

    # One pass over the test set serves every report below.
    routes = model.route(x_test, labels=y_test)
    accuracy, mean_flops, decisions = (
        routes.accuracy,
        routes.mean_flops,
        routes.decisions,
    )
    check_not_chance(accuracy, config)
    if accuracy_target is not None:
        accuracy_target = accuracy_landing.test_figures(
            model, accuracy_target, held_out, x_test, y_test, routes
        )
    # In the unit the controllers pay: FLOPs, or the profile's ms.
    landed = routes.mean_cost_fraction
    budget = None
    if config.budget:
        budget = {
            "target_cost": config.budget,
            "landed_cost": landed,
            "cheapest_cost": budget_lib.cheapest_cost(
                model.plan, model.cost_measure
            ),
            "budget_learning_rate": model.cost_budget.learning_rate,
            # The multiplier at the end of each epoch (--gate_epochs
            # included), and at the end.
            "cost_weights": [
                float(w) for w in history.history.get("cost_weight", [])
            ],
            "cost_weight": model.cost_weight,
            # How the trained model was landed on the budget (null with
            # --val_examples=0): the price on cost, and the held-out cost
            # before and after.
            "landing": None
            if landing is None
            else {
                "val_examples": held_out,
                "price": landing.delta,
                "trained_cost": landing.uncalibrated_cost,
                "landed_cost": landing.cost,
            },
        }
    d2nn = baselines.Point(
        "D2NN",
        "d2nn",
        accuracy,
        mean_flops,
        {"cost_weight": model.cost_weight}
        | ({"budget": config.budget} if config.budget else {}),
    )
    rows = model.cost_report(routes=routes, print_fn=log)
    class_names = pipelines.DATASETS[config.dataset]["class_names"]
    routing = model.routing_report(
        routes=routes, class_names=class_names, print_fn=log
    )
    action_rates = {
        q: entry["actions"] for q, entry in routing["controllers"].items()
    }
    collapse = routing_collapse(model, x_test, decisions)
    warnings = collapse_warnings(
        collapse, config.cost_weight, config.epochs, config.budget
    )
    if budget is not None:
        warnings += budget_warnings(config, landed, budget["cheapest_cost"])
    if accuracy_target is not None and not accuracy_target["test"]["kept"]:
        warnings.append(
            "WARNING: "
            + accuracy_landing.summary_line(accuracy_target)
            + ". The promise holds on the held-out images; the test images "
            "differ from them (more --val_examples make it steadier)."
        )

    points = []
    # The D2NN against the threshold exit at its own mean FLOPs: on its
    # own modules (the routing alone) and, with baselines, on the full
    # static network; None for a graph without exits.
    versus_threshold = None
    own = None
    if model.plan.exits:
        own = baselines.threshold_exit_at_cost(
            model, x_test, y_test, mean_flops
        )
    if own is not None:
        versus_threshold = {
            "own_modules": _versus(accuracy, own),
            "static_network": None,
        }
    # Without exits, the best fixed route of the D2NN's own network at its
    # FLOPs: what its per-example choices must beat.
    versus_routes = None
    versus_glimpses = None
    if static_first:

        def fit_network(network):
            network.compile(**_compile_kwargs(config))
            network.fit(
                training_data(),
                epochs=epochs,
                verbose=config.verbose,
                shuffle=False,  # the pipeline shuffles
            )

        epochs = config.baseline_epochs or config.epochs
        glimpse_points, versus_glimpses = glimpse_job.baselines(
            model, accuracy, config, x_test, y_test, fit_network, log
        )
        points += glimpse_points
    if own is None and config.baselines:
        log("baseline: every static route of the D2NN's own network")
        front = baselines.pareto_front(
            baselines.route_points(model, x_test, y_test)
        )
        points += front
        best = baselines.front_accuracy(front, mean_flops)
        versus_routes = {
            "front": [p.as_dict() for p in front],
            "best_route_accuracy": best,
            "difference_points": None
            if best is None
            else 100 * (accuracy - best),
        }
    if config.baselines and not static_first:
        epochs = config.baseline_epochs or config.epochs

        def seeded_build():
            # The D2NN's initial weights: with the same batches, the full
            # static network is what the two-phase recipe's modules are.
            keras.utils.set_random_seed(config.seed)
            return build()

        statics, full_network = baselines.static_baselines(
            seeded_build,
            training_data,
            x_test,
            y_test,
            epochs,
            compiler(config),
            log=log,
        )
        points += statics
        log("baseline: random routing at the D2NN's action rates")
        points.append(
            baselines.random_routing_baseline(
                seeded_build,
                baselines.action_rates(model, decisions),
                training_data,
                x_test,
                y_test,
                epochs,
                compiler(config),
            )
        )
        # Exits sweep on the full static network: the D2NN's own later
        # stages were trained only on the examples routed to them.
        full_network.set_routing(None)
        at_cost = None
        if full_network.plan.exits:
            points += baselines.threshold_exit_curve(
                full_network, x_test, y_test
            )
            at_cost = baselines.threshold_exit_at_cost(
                full_network, x_test, y_test, mean_flops
            )
        if at_cost is not None:
            at_cost.name = "confidence-threshold exit at the D2NN's FLOPs"
            points.append(at_cost)
            versus_threshold["static_network"] = _versus(accuracy, at_cost)

    report = {
        "arch": config.arch,
        "dataset": config.dataset,
        "test_accuracy": accuracy,
        "cost": "flops" if profile is None else "latency",
        "mean_cost_fraction": landed,
        "mean_flops": mean_flops,
        "full_flops": model.full_flops,
        # The profile's predicted ms per example (null when FLOPs are the
        # cost), on its runtime at its batch size.
        "mean_ms": routes.mean_ms,
        "full_ms": None if profile is None else profile.full_ms(),
        "latency_profile": None
        if profile is None
        else {
            "path": config.latency_profile,
            "runtime": profile.runtime,
            "batch_size": profile.batch_size,
        },
        "action_rates": action_rates,
        "budget": budget,
        # `train --max_accuracy_drop` (null without): the promise, the
        # held-out images' figures and the test split's.
        "accuracy_target": accuracy_target,
        "versus_threshold": versus_threshold,
        "versus_routes": versus_routes,
        # The attention D2NN against each glimpse baseline (null for the
        # other architectures).
        "versus_glimpses": versus_glimpses,
        "warnings": warnings,
        "routing_collapse": collapse,
        "schedule": {
            "warmup_epochs": schedule.warmup_epochs,
            "cost_weight_ramp_epochs": schedule.ramp_epochs,
            "cost_weights": schedule.cost_weights(),
        },
        "baselines": [
            {
                "name": p.name,
                "kind": p.kind,
                "test_accuracy": p.test_accuracy,
                "mean_flops": p.mean_flops,
                **p.details,
            }
            for p in points
        ],
        "config": dataclasses.asdict(config),
        "train_seconds": train_seconds,
        "nodes": rows,
        "routing": routing,
    }
    (output_dir / "report.json").write_text(json.dumps(report, indent=2))
    gallery.route_gallery(
        model,
        x_test,
        y_test,
        output_dir / "routes.png",
        class_names,
        routes=routes,
        # Where the attention D2NN looked, and where the item is.
        boxes=glimpse_job.gallery_boxes(model, config, routes)
        if static_first
        else None,
    )
    try:
        plot_graph(model, output_dir / "graph.png", routes=routes)
    except (RuntimeError, ImportError) as error:  # Graphviz is optional
        log(f"graph.png not drawn: {error}")
    tradeoff_plot.tradeoff_plot(
        [d2nn] + points,
        output_dir / "tradeoff.png",
        model.full_flops,
        title=f"{config.arch} on {config.dataset}",
        # The plot's axis is FLOPs: a latency budget has no place on it.
        budget=config.target_cost if profile is None else None,
    )
    _save(model, output_dir / "model.keras", config.save_optimizer)
    return report


class TrainingFailed(RuntimeError):
    """The trained model is no better than guessing: nothing was saved."""


def check_not_chance(accuracy, config):
    """Raises `TrainingFailed` when the test accuracy is at most
    `CHANCE_MULTIPLE` times chance: such a model must not be saved and
    reported as trained.

    Example: `check_not_chance(0.1, TrainConfig())` raises TrainingFailed.
    """
    classes = len(pipelines.DATASETS[config.resolved().dataset]["class_names"])
    if accuracy <= CHANCE_MULTIPLE / classes:
        raise TrainingFailed(
            f"training failed: test accuracy {accuracy:.4f} is chance level "
            f"({classes} classes: {1 / classes:.2f}); no model or report was "
            f"saved in "
            f"{config.output_dir}. {_remedy(config)}"
        )


def _remedy(config):
    if config.arch in STATIC_FIRST_ARCHITECTURES:
        return (
            f"Train longer (--epochs was {config.epochs}, --train_examples "
            f"{config.train_examples or 'all'})."
        )
    return (
        f"Lower --learning_rate (was {config.learning_rate:g}) or try "
        f"another --estimator (was {config.estimator})."
    )


def _save(model, path, save_optimizer):
    """Saves `model`; without the optimizer, a copy with the same weights
    that was never compiled (a third of the file: Adam keeps two slots per
    weight), enough to predict, export and verify but not to resume."""
    if not save_optimizer:
        copy = model.__class__.from_config(model.get_config())
        # Node by node: the compiled model also holds the estimator's
        # weights (a value network), which only training needs.
        for node in copy.plan.order:
            if node.layer is not None:
                node.layer.set_weights(
                    model.plan.nodes[node.name].layer.get_weights()
                )
        model = copy
    model.save(path)


def _log_summary(report, log, output_dir):
    log(f"\ntest accuracy:      {report['test_accuracy']:.4f}")
    if report["mean_ms"] is None:
        log(
            f"mean cost:          {report['mean_cost_fraction']:.4f} of the "
            f"full network ({report['mean_flops']:,.0f} of "
            f"{report['full_flops']:,.0f} FLOPs per example)"
        )
    else:
        where = report["latency_profile"]
        log(
            f"mean cost:          {report['mean_cost_fraction']:.4f} of the "
            f"full network's latency ({report['mean_ms']:.4f} of "
            f"{report['full_ms']:.4f} ms per example, predicted for "
            f"{where['runtime']} at batch {where['batch_size']}; "
            f"{report['mean_flops'] / report['full_flops']:.4f} of its FLOPs)"
        )
    budget = report["budget"]
    if budget is not None:
        log(
            f"budget {budget['target_cost']:.2f}: landed at "
            f"{budget['landed_cost']:.2f} (cost_weight ended at "
            f"{budget['cost_weight']:.4g})"
        )
    if report.get("accuracy_target") is not None:
        log(accuracy_landing.summary_line(report["accuracy_target"]))
    for q, rates in report["action_rates"].items():
        shares = ", ".join(f"{a} {r:.1%}" for a, r in rates.items())
        log(f"controller {q}: {shares}")
    routes_row = report.get("versus_routes") or {}
    if routes_row.get("difference_points") is not None:
        log(
            "best fixed route of the D2NN's own network at the same FLOPs: "
            f"{routes_row['best_route_accuracy']:.4f}; D2NN "
            f"{routes_row['difference_points']:+.2f} points"
        )
    glimpses = report.get("versus_glimpses") or {}
    full = glimpses.get("full-resolution network")
    if full is not None:
        log(
            f"the D2NN runs {report['mean_flops'] / full['mean_flops']:.3f} "
            "of the full-resolution network's FLOPs; D2NN minus each "
            "glimpse baseline:"
        )
    for name, row in glimpses.items():
        log(
            f"  {name:<40} {row['accuracy']:.4f}; D2NN "
            f"{row['difference_points']:+.2f} points"
        )
    versus = report["versus_threshold"] or {}
    for key, where in (
        ("static_network", "the full static network"),
        ("own_modules", "the D2NN's own modules (the routing alone)"),
    ):
        if versus.get(key) is not None:
            row = versus[key]
            log(
                f"threshold exit at the same FLOPs on {where}: "
                f"{row['threshold_accuracy']:.4f} (t = {row['threshold']:.3f}"
                f"); D2NN {row['difference_points']:+.2f} points"
            )
    if report["baselines"]:
        log(f"\n{'baseline':<44} {'accuracy':>9} {'mean FLOPs':>14}")
        for b in report["baselines"]:
            log(
                f"{b['name']:<44} {b['test_accuracy']:>9.4f} "
                f"{b['mean_flops']:>14,.0f}"
            )
    written = ", ".join(
        name
        for name in (
            "report.json",
            "tradeoff.png",
            "routes.png",
            "graph.png",
            "logs/",
        )
        if (output_dir / name).exists()
    )
    log(f"\nwrote to {output_dir}: {written} and model.keras")
    for line in report["warnings"]:
        log(f"\n{line}")
