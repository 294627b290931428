"""The two-phase recipe: modules first, every one on every example, then
the controllers alone on the frozen modules."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import keras

from keras_d2nn.callbacks.epoch_backup import EpochBackup
from keras_d2nn.estimators import Estimator
from keras_d2nn.estimators import FullInformation
from keras_d2nn.models import D2NNModel


def fresh_optimizer(optimizer: Any) -> keras.optimizers.Optimizer:
    """A new optimizer like `optimizer` (an instance, a name or a config):
    each phase trains other variables, so each needs its own slots."""
    if isinstance(optimizer, keras.optimizers.Optimizer):
        return optimizer.__class__.from_config(optimizer.get_config())
    return keras.optimizers.get(optimizer)


def _check_module_routes(model, estimator):
    """Warns when phase one's modules would train on uniformly random
    routes only because the graph declares neither early exits nor a
    training route (the user may have meant exits)."""
    if getattr(estimator, "module_routing", None) != "auto":
        return
    if model.plan.exits or model.graph.metadata.get("training_routing"):
        return
    warnings.warn(
        "fit_two_phase: the graph declares no early exit and no training "
        "route, so phase one trains its modules on uniformly random "
        "routes. If a controller is an early exit, declare it where the "
        "graph is built (graph.early_exit(controller, head=..., stop=..., "
        "proceed=...)): every module then trains on every example. If "
        "random routes are meant, say so: "
        "graph.metadata['training_routing'] = 'uniform'.",
        stacklevel=3,
    )


def _fresh_estimator(estimator: Estimator) -> Estimator:
    """A new estimator like `estimator`: as the optimizer, `compile`
    configures it for the controllers it trains, once per phase."""
    return estimator.__class__.from_config(estimator.get_config())


def _check_epochs(**counts: tuple[Any, int]) -> None:
    """Refuses an epoch count that is not an int at least its least."""
    for name, (value, least) in counts.items():
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or value < least
        ):
            raise ValueError(
                f"`{name}` should be an int >= {least}. Received: "
                f"{name}={value!r}"
            )


def _check_controllers(model: D2NNModel) -> None:
    """Refuses a graph the recipe has nothing to train in phase two."""
    if not isinstance(model, D2NNModel):
        raise TypeError(
            "The recipe trains a keras_d2nn.D2NNModel. Received: "
            f"{type(model).__name__}"
        )
    if not model.plan.controllers:
        raise ValueError(
            "The two-phase recipe trains controllers, and this graph has "
            "none (no q_node)."
        )


def fit_two_phase(
    model: D2NNModel,
    x: Any,
    y: Any = None,
    *,
    loss: Any,
    epochs: int = 3,
    gate_epochs: int = 2,
    optimizer: Any = "adam",
    metrics: Sequence[Any] | None = None,
    estimator: Estimator | None = None,
    compile_kwargs: dict[str, Any] | None = None,
    callbacks: Sequence[keras.callbacks.Callback] | None = None,
    log: Any = None,
    backup: EpochBackup | None = None,
    **fit_kwargs: Any,
) -> keras.callbacks.History:
    """Trains `model` with the two-phase recipe; returns the `History` of
    both phases (phase two's epochs appended to each key).

    Phase one compiles `model` with `estimator` (default
    `FullInformation(objective="value")`: the modules train on the
    routes of `module_routing="auto"` (continuing at each early exit the
    graph declares, else the route it names in
    `graph.metadata["training_routing"]`, else uniformly random routes),
    while each controller learns the value of each of its actions) and
    fits it for `epochs`. Phase two freezes the modules
    (`freeze_modules`), compiles again with a fresh optimizer and the cost
    weight phase one ended on (a budget's multiplier carries on), and fits
    the controllers alone for `gate_epochs`. The modules are trainable
    again afterwards. Land the result on a budget with
    `model.calibrate_budget(held_out, budget)`.

    On Fashion-MNIST's high-low and cascade this beats the
    confidence-threshold exit at the same FLOPs
    (docs/estimators_and_schedules.md, "Two phases"); on the chain and
    the hierarchical model it does not yet beat their best alternatives
    (docs/paper_experiments.md).

    Args:
        model: a `D2NNModel` with at least one controller (else a
            ValueError).
        x, y: training data, as `model.fit` takes them.
        loss: the task loss.
        epochs: epochs of phase one (>= 1).
        gate_epochs: epochs of phase two (>= 0; 0 skips it).
        optimizer: an optimizer, its name or its config; each phase gets a
            fresh copy.
        metrics: metrics, as `compile` takes them.
        estimator: the controllers' estimator (default above).
        compile_kwargs: further arguments of `D2NNModel.compile`
            (`cost_weight`, `target_cost`, `cost`, `latency_profile`...).
        callbacks: phase one's callbacks (a schedule, TensorBoard...).
        log: a function of one string told when phase two starts (e.g.
            `print`), or None.
        backup: an `EpochBackup`: each epoch of both phases is backed up,
            and a run killed in either resumes where the backup stands
            (the same weights at the end as without the kill, `x` a
            `tf.data.Dataset` reshuffled each epoch included).
        **fit_kwargs: further arguments of `fit` for both phases
            (`batch_size`, `verbose`, `shuffle`, ...).

    Example:

    ```python
    from keras_d2nn.recipes import fit_two_phase
    from keras_d2nn.testing import LOSS, routing_data, small_high_low

    model = small_high_low()
    x, y = routing_data(256)
    history = fit_two_phase(model, x, y, loss=LOSS, epochs=1,
                            gate_epochs=1, batch_size=64, verbose=0)
    len(history.history["loss"])  # 2: one epoch of each phase
    model.calibrate_budget(x, target_cost=0.5).cost  # e.g. 0.5
    ```
    """
    _check_epochs(epochs=(epochs, 1), gate_epochs=(gate_epochs, 0))
    if estimator is None:
        estimator = FullInformation(objective="value")
    _check_controllers(model)
    _check_module_routes(model, estimator)
    compile_kwargs = dict(compile_kwargs or {})
    backups = [] if backup is None else [backup]
    if backup is not None:
        backup.skip_shuffles(x, 0, epochs)
    model.compile(
        optimizer=fresh_optimizer(optimizer),
        loss=loss,
        metrics=list(metrics or []),
        estimator=_fresh_estimator(estimator),
        **compile_kwargs,
    )
    try:
        history = model.fit(
            x,
            y,
            epochs=epochs,
            callbacks=list(callbacks or []) + backups,
            **fit_kwargs,
        )
    finally:
        # Set by a resuming backup, read by Keras at every fit: a fit
        # that failed must not leave the next one starting mid-way.
        model._initial_epoch = None
    if gate_epochs:
        gate_history = fit_controllers(
            model,
            x,
            y,
            loss=loss,
            gate_epochs=gate_epochs,
            optimizer=optimizer,
            metrics=metrics,
            estimator=estimator,
            compile_kwargs=compile_kwargs | {"cost_weight": model.cost_weight},
            log=log,
            backup=backup,
            backup_phase=1,
            **fit_kwargs,
        )
        for key, values in gate_history.history.items():
            history.history.setdefault(key, []).extend(values)
    return history


def fit_controllers(
    model: D2NNModel,
    x: Any,
    y: Any = None,
    *,
    loss: Any,
    gate_epochs: int = 2,
    optimizer: Any = "adam",
    metrics: Sequence[Any] | None = None,
    estimator: Estimator | None = None,
    compile_kwargs: dict[str, Any] | None = None,
    log: Any = None,
    backup: EpochBackup | None = None,
    backup_phase: int = 1,
    **fit_kwargs: Any,
) -> keras.callbacks.History:
    """Trains `model`'s controllers alone, on its frozen modules, for
    `gate_epochs` (the second phase of `fit_two_phase`);
    returns the `History`. The modules are trainable again afterwards,
    and the model is compiled again for all of them.

    Arguments as in `fit_two_phase`; `backup_phase` is the index of this
    phase among the phases `backup` saves (so that a resumed run skips
    the shuffles of the phases before it).

    Example:

    ```python
    from keras_d2nn.recipes import fit_controllers
    from keras_d2nn.testing import LOSS, routing_data, small_high_low

    model = small_high_low()
    x, y = routing_data(256)
    history = fit_controllers(model, x, y, loss=LOSS, gate_epochs=1,
                              batch_size=64, verbose=0)
    len(history.history["loss"])  # 1
    ```
    """
    _check_epochs(gate_epochs=(gate_epochs, 1))
    _check_controllers(model)
    if estimator is None:
        estimator = FullInformation(objective="value")
    if log is not None:
        log(
            f"Training the controllers alone for {gate_epochs} "
            f"epoch{'s' if gate_epochs > 1 else ''} on the frozen modules."
        )
    model.freeze_modules()
    try:
        model.compile(
            optimizer=fresh_optimizer(optimizer),
            loss=loss,
            metrics=list(metrics or []),
            estimator=_fresh_estimator(estimator),
            **dict(compile_kwargs or {}),
        )
        if backup is not None:
            backup.skip_shuffles(x, backup_phase, gate_epochs)
        history = model.fit(
            x,
            y,
            epochs=gate_epochs,
            callbacks=[] if backup is None else [backup],
            **fit_kwargs,
        )
    finally:
        model._initial_epoch = None
        model.freeze_modules(False)
    # This phase's optimizer holds slots for the controllers alone.
    # Compiled again (a fresh optimizer, the cost weight where the phase
    # left it), the model saves an optimizer of every trainable variable,
    # so a reload matches it without warning, and a further `fit` trains
    # the whole model.
    model.compile(
        optimizer=fresh_optimizer(optimizer),
        loss=loss,
        metrics=list(metrics or []),
        estimator=_fresh_estimator(estimator),
        **dict(compile_kwargs or {}) | {"cost_weight": model.cost_weight},
    )
    return history
