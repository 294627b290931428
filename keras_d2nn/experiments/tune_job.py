"""The tuning job: search cost_weight with keras-tuner, keep the Pareto front.

`run(TuneConfig(...))` searches on a training/validation split of the
training data, re-measures the Pareto-optimal trials on the test split,
trains the static and threshold baselines, and writes to `output_dir`:
`pareto.json`, `pareto.png`, `best_model.keras` (the objective's choice)
and `summary.json`. `python -m keras_d2nn tune` is a thin command line
over it.

Every trial, however short (Hyperband's first rounds train for one
epoch), trains its last epoch at its own cost weight. `summary["warnings"]`
(printed last) names the trials that did not route at all (every
validation example took the same route) and, when no trial met the
objective's constraint, how near the search came and which way to move it.

The search state lives in `output_dir/search` (keras-tuner's project
directory): run the same command again and an interrupted search goes on
from there; finished trials are not run again. With keras-tuner's
`KERASTUNER_TUNER_ID`, `KERASTUNER_ORACLE_IP` and `KERASTUNER_ORACLE_PORT`
set, the same command runs as the chief (which only hands out trials) or
as a worker of a distributed search.

Example:

```python
from keras_d2nn.experiments.tune_job import TuneConfig, run

config = TuneConfig(budget=0.3, max_trials=4, epochs=2)
config.check()  # raises a ValueError naming the first bad setting
config.objective()  # Budget(budget=0.3)
```

A search of one short trial on a little of the data (it writes under
`runs/tune`; the data are prepared in `tfds` first):

```python
# slow
# needs Fashion-MNIST
summary = run(TuneConfig(budget=0.3, max_trials=1, epochs=1,
                         train_examples=256, val_examples=256,
                         baselines=False, output_dir="runs/tune",
                         tfds_dir="tfds", verbose=0))
summary["front"][0]["test_accuracy"]
```
"""

import dataclasses
import json
import os
import pathlib
import zlib

import keras
import keras_tuner

from keras_d2nn import architectures
from keras_d2nn import estimators
from keras_d2nn.data import pipelines
from keras_d2nn.experiments import baselines
from keras_d2nn.experiments import train_job
from keras_d2nn.experiments import tuning
from keras_d2nn.inspection import tradeoff_plot

TUNERS = {
    "random": keras_tuner.RandomSearch,
    "bayesian": keras_tuner.BayesianOptimization,
    "hyperband": keras_tuner.Hyperband,
}


@dataclasses.dataclass
class TuneConfig:
    """Settings of the tuning job; the CLI flags map one to one.

    Exactly one of `budget`, `target_accuracy`, `flop_penalty`
    chooses the objective (0 means unset; none set: reward 0.1).

    Example: `run(TuneConfig(budget=0.3, max_trials=6))`.
    """

    arch: str = "high_low"
    dataset: str = "fashion_mnist"
    budget: float = 0.0
    target_accuracy: float = 0.0
    flop_penalty: float = 0.0
    tuner: str = "random"
    max_trials: int = 8
    epochs: int = 3
    batch_size: int = 128
    train_examples: int = 50_000
    val_examples: int = 10_000
    cost_weight_min: float = 0.01
    cost_weight_max: float = 0.5
    estimators: str = "reinforce_value"
    baselines: bool = True
    output_dir: str = "runs/tune"
    seed: int = 0
    data_dir: str | None = None
    tfds_dir: str | None = None
    verbose: int = 1

    def objective(self):
        """The `tuning` objective the settings choose."""
        chosen = [
            (name, value)
            for name, value in (
                ("budget", self.budget),
                ("target_accuracy", self.target_accuracy),
                ("flop_penalty", self.flop_penalty),
            )
            if value
        ]
        if len(chosen) > 1:
            raise ValueError(
                "One objective should be set: `budget`, `target_accuracy` or "
                "`flop_penalty`. Received: "
                + ", ".join(f"{k}={v}" for k, v in chosen)
            )
        if not chosen:
            return tuning.Reward(0.1)
        name, value = chosen[0]
        return {
            "budget": tuning.Budget,
            "target_accuracy": tuning.AccuracyTarget,
            "flop_penalty": tuning.Reward,
        }[name](value)

    def check(self):
        """Raises `ValueError` naming the first bad setting."""
        train_job.check_finite(
            self,
            [
                f.name
                for f in dataclasses.fields(self)
                if isinstance(getattr(self, f.name), float)
            ],
        )
        train_job.check_choice(
            "arch", self.arch, list(architectures.ARCHITECTURES)
        )
        pipelines.check_dataset(self.dataset)
        train_job.check_choice("tuner", self.tuner, list(TUNERS))
        for name in (
            "max_trials",
            "epochs",
            "batch_size",
            "train_examples",
            "val_examples",
        ):
            train_job.check_at_least(self, name, 1)
        if self.train_examples + self.val_examples > 60_000:
            raise ValueError(
                "`train_examples` + `val_examples` should be at most the "
                "60000 training images (the validation images are the last "
                f"ones). Received: train_examples={self.train_examples}, "
                f"val_examples={self.val_examples}"
            )
        for name in self.estimator_names():
            if name not in estimators.NAMED:
                raise ValueError(
                    f"`estimators` should name some of "
                    f"{list(estimators.NAMED)}, separated by commas. "
                    f"Received: estimators={self.estimators!r}"
                )
        self.objective()  # raises for several or bad objectives

    def estimator_names(self):
        return tuple(n.strip() for n in self.estimators.split(",") if n.strip())


class _RecordingMixin:
    """Seeds each trial by its id, and records the ids of the trials this
    process ran (for the report of a distributed search: which worker ran
    what).

    Seeded by its id, a trial trains the same whatever ran before it in
    its process: a search resumed after a kill reruns the trial it cut
    off as the uninterrupted search ran it (unseeded, a rerun trial got
    0.418 instead of 0.494 at the same cost weight).
    """

    search_seed = 0

    def run_trial(self, trial, *args, **kwargs):
        self.ran_trials = getattr(self, "ran_trials", []) + [trial.trial_id]
        keras.utils.set_random_seed(
            (self.search_seed * 1_000_003 + zlib.crc32(trial.trial_id.encode()))
            % 2**31
        )
        return super().run_trial(trial, *args, **kwargs)


class SearchStateDamaged(ValueError):
    """A saved search whose state files cannot be read (said in one
    line, before keras-tuner's JSONDecodeError)."""


def check_search_state(output_dir):
    """Raises `SearchStateDamaged` naming every JSON file of the saved
    search in `output_dir/search` that does not parse (a kill while
    keras-tuner wrote it leaves it cut off).

    Example: `check_search_state("runs/tune")  # or raises`.
    """
    search = pathlib.Path(output_dir) / "search"
    damaged = []
    for path in sorted(search.rglob("*.json")) if search.is_dir() else []:
        try:
            json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            damaged.append(str(path))
    if damaged:
        raise SearchStateDamaged(
            f"the saved search in {search} cannot be resumed: "
            f"{', '.join(damaged)} {'is' if len(damaged) == 1 else 'are'} "
            "cut off or damaged (a kill while keras-tuner wrote it). Remove "
            f"{search} to search again from the start."
        )


def make_tuner(config, hypermodel):
    """The keras-tuner tuner of `config`, resuming `output_dir/search`.

    Example: `tuner = make_tuner(config, D2NNHyperModel("high_low"))`.
    """
    cls = type(
        f"Recording{TUNERS[config.tuner].__name__}",
        (_RecordingMixin, TUNERS[config.tuner]),
        {"search_seed": config.seed},
    )
    common = dict(
        objective=tuning.OBJECTIVE,
        directory=config.output_dir,
        project_name="search",
        overwrite=False,
        seed=config.seed,
    )
    if config.tuner == "hyperband":
        return cls(hypermodel, max_epochs=config.epochs, **common)
    return cls(hypermodel, max_trials=config.max_trials, **common)


def _splits(config):
    load = dict(data_dir=config.tfds_dir, manual_dir=config.data_dir)
    x_train, y_train = pipelines.load_arrays(
        config.dataset, f"train[:{config.train_examples}]", **load
    )
    x_val, y_val = pipelines.load_arrays(
        config.dataset, f"train[-{config.val_examples}:]", **load
    )
    x_test, y_test = pipelines.load_arrays(config.dataset, "test", **load)
    return (x_train, y_train), (x_val, y_val), (x_test, y_test)


def _threshold_at(points, budget):
    """The most accurate threshold-exit point within `budget`."""
    within = [
        p
        for p in points
        if p["kind"] == "threshold" and p["flop_fraction"] <= budget + 1e-9
    ]
    return max(within, key=lambda p: p["test_accuracy"]) if within else None


def run(config, log=print):
    """Runs (or resumes) the search; returns the summary dict.

    Example:

    ```python
    summary = run(TuneConfig(budget=0.3, max_trials=4, epochs=2))
    summary["best"]["test_accuracy"], summary["best"]["cost_weight"]
    ```
    """
    config.check()
    keras.utils.set_random_seed(config.seed)
    objective = config.objective()
    (x_train, y_train), validation, (x_test, y_test) = _splits(config)
    hypermodel = tuning.D2NNHyperModel(
        config.arch,
        objective,
        cost_weight_range=(config.cost_weight_min, config.cost_weight_max),
        estimators=config.estimator_names(),
        input_shape=x_train.shape[1:],
        num_classes=int(y_test.max()) + 1,
    )
    check_search_state(config.output_dir)
    tuner = make_tuner(config, hypermodel)
    log(
        f"Searching cost_weight for {config.arch} on {config.dataset}, "
        f"objective {objective}, {config.tuner} tuner, project "
        f"{tuner.project_dir}."
    )
    tuner.search(
        x_train,
        y_train,
        epochs=config.epochs,
        batch_size=config.batch_size,
        validation_data=validation,
        verbose=config.verbose,
    )
    tuner_id = os.environ.get("KERASTUNER_TUNER_ID")
    output = pathlib.Path(config.output_dir)
    if tuner_id and tuner_id != "chief":
        # A worker of a distributed search: it reports what it ran; the
        # chief's (or a later plain) run writes the results.
        (output / f"worker_{tuner_id}.json").write_text(
            json.dumps(
                {
                    "tuner_id": tuner_id,
                    "trials": getattr(tuner, "ran_trials", []),
                }
            )
        )
        return {
            "tuner_id": tuner_id,
            "trials": getattr(tuner, "ran_trials", []),
        }
    if tuner_id == "chief":
        # keras-tuner 1.4.8 saves the oracle before it drops the last
        # finished trial from the ongoing ones, and the chief stops right
        # after: saved as is, a later run would train that trial again.
        tuner.oracle.save()
        # The chief only hands out trials; its results (with the workers'
        # checkpoints) are read back by a plain run of the same command.
        return {"tuner_id": tuner_id}
    return _report(config, tuner, objective, hypermodel, (x_test, y_test), log)


def _report(config, tuner, objective, hypermodel, test, log):
    x_test, y_test = test
    output = pathlib.Path(config.output_dir)
    points = tuning.trial_points(tuner)
    if not points:
        raise RuntimeError(f"No trial of {tuner.project_dir} completed.")
    front = tuning.pareto_front(points)
    models = {}

    def model_of(point):
        if point["trial_id"] not in models:
            trial = tuner.oracle.trials[point["trial_id"]]
            models[point["trial_id"]] = tuner.load_model(trial)
        return models[point["trial_id"]]

    for point in front:
        point.update(tuning.measure_on_test(model_of(point), x_test, y_test))
    best = tuning.best_point(points, objective)
    if best is not None:
        best.update(tuning.measure_on_test(model_of(best), x_test, y_test))
        model_of(best).save(output / "best_model.keras")

    full_flops = hypermodel.build(keras_tuner.HyperParameters()).full_flops
    reference = []
    if config.baselines:
        reference = _baselines(config, tuner, hypermodel, test, log)
    summary = {
        "arch": config.arch,
        "dataset": config.dataset,
        "objective": {
            "kind": type(objective).__name__,
            **dataclasses.asdict(objective),
        },
        "trials": len(points),
        # The trials this run trained (not those an earlier run or other
        # workers finished).
        "ran_trials": getattr(tuner, "ran_trials", []),
        "best": best,
        "front": front,
        "warnings": _warnings(config, points, best, objective),
        "baselines": reference,
        "config": dataclasses.asdict(config),
    }
    if isinstance(objective, tuning.Budget) and reference:
        summary["threshold_at_budget"] = _threshold_at(
            reference, objective.budget
        )
    (output / "pareto.json").write_text(
        json.dumps({"points": points, **summary}, indent=2)
    )
    (output / "summary.json").write_text(json.dumps(summary, indent=2))
    plot_points = [
        {
            "name": f"cw {p['cost_weight']:.3g}",
            "kind": "d2nn",
            "test_accuracy": p["test_accuracy"],
            "mean_flops": p["test_flop_fraction"] * full_flops,
        }
        for p in front
    ] + [
        {k: p[k] for k in ("name", "kind", "test_accuracy", "mean_flops")}
        for p in reference
    ]
    tradeoff_plot.tradeoff_plot(
        plot_points,
        output / "pareto.png",
        full_flops,
        title=f"Pareto front of {len(points)} trials: "
        f"{config.arch} on {config.dataset}",
        budget=getattr(objective, "budget", None),
    )
    _log_summary(summary, log, output)
    return summary


def _baselines(config, tuner, hypermodel, test, log):
    """Static networks and the threshold exit, trained as the trials
    were (same epochs, same training images)."""
    x_test, y_test = test
    train_config = train_job.TrainConfig(
        arch=config.arch,
        dataset=config.dataset,
        epochs=config.epochs,
        batch_size=config.batch_size,
        data_dir=config.data_dir,
        tfds_dir=config.tfds_dir,
        seed=config.seed,
        # The trials' graph (the raw input REINFORCE trains with).
        gate_input="features",
    )
    train = pipelines.load(
        config.dataset,
        f"train[:{config.train_examples}]",
        config.batch_size,
        data_dir=config.tfds_dir,
        manual_dir=config.data_dir,
        seed=config.seed,
    )
    build = train_job.builder(train_config)
    statics, full_network = baselines.static_baselines(
        build,
        train,
        x_test,
        y_test,
        config.epochs,
        train_job.compiler(train_config),
        log=log,
    )
    full_network.set_routing(None)
    points = list(statics)
    if full_network.plan.exits:
        points += baselines.threshold_exit_curve(full_network, x_test, y_test)
    full = full_network.full_flops
    return [
        {**p.as_dict(), "flop_fraction": p.mean_flops / full} for p in points
    ]


def _warnings(config, points, best, objective):
    """Trials that did not route; no trial meeting the constraint."""
    flags = {
        "epochs": config.epochs,
        "cost_weight_min": config.cost_weight_min,
        "cost_weight_max": config.cost_weight_max,
    }
    return tuning.no_routing_warnings(
        points, best, flags
    ) + tuning.infeasible_warnings(points, best, objective, flags)


def _log_summary(summary, log, output):
    log(f"\n{summary['trials']} trials; Pareto front (validation -> test):")
    log(
        f"{'cost_weight':>12} {'val acc':>8} {'val cost':>9} {'test acc':>9} "
        f"{'test cost':>10}"
    )
    for p in summary["front"]:
        log(
            f"{p['cost_weight']:>12.4f} {p['val_accuracy']:>8.4f} "
            f"{p['val_flop_fraction']:>9.3f} {p['test_accuracy']:>9.4f} "
            f"{p['test_flop_fraction']:>10.3f}"
        )
    best = summary["best"]
    if best is None:
        log("No trial met the objective's constraint; no best_model.keras.")
    else:
        log(
            f"chosen: cost_weight {best['cost_weight']:.4f}, test accuracy "
            f"{best['test_accuracy']:.4f} at {best['test_flop_fraction']:.3f}"
            " of the FLOPs"
        )
    threshold = summary.get("threshold_at_budget")
    if threshold:
        log(
            f"threshold exit within the budget: test accuracy "
            f"{threshold['test_accuracy']:.4f} at "
            f"{threshold['flop_fraction']:.3f} of the FLOPs"
        )
    log(
        f"wrote {output / 'pareto.json'}, {output / 'pareto.png'}, "
        f"{output / 'summary.json'}"
        + (f", {output / 'best_model.keras'}" if best else "")
    )
    for line in summary["warnings"]:
        log(f"\n{line}")
