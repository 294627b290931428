"""The static-first recipe: the modules trained as a static network that
shares them (no routing at all), then the controllers alone on the frozen
modules."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import tensorflow as tf

from keras_d2nn.estimators import FullInformation
from keras_d2nn.models import D2NNModel
from keras_d2nn.recipes.own_routes import fit_modules_on_routes
from keras_d2nn.recipes.reward_table import fit_controller_on_table
from keras_d2nn.recipes.two_phase import _check_controllers
from keras_d2nn.recipes.two_phase import _check_epochs
from keras_d2nn.recipes.two_phase import fresh_optimizer


def _check_shares_modules(model: D2NNModel, network: keras.Model) -> None:
    """Refuses a network that would train none of the model's modules."""
    if not isinstance(network, keras.Model):
        raise TypeError(
            "`static_network` should be a keras.Model built from the D2NN's "
            f"modules. Received: {type(network).__name__}"
        )
    shared = {id(v) for v in network.trainable_variables} & {
        id(v) for v in model.trainable_variables
    }
    if not shared:
        raise ValueError(
            f"`static_network` {network.name!r} shares no weights with the "
            f"D2NN {model.name!r}: training it would leave the D2NN's "
            "modules untrained. Build it from the D2NN's layers (e.g. "
            "`architectures.attention.full_resolution_network(model)`)."
        )


def fit_static_first(
    model: D2NNModel,
    static_network: keras.Model,
    x: Any,
    y: Any = None,
    *,
    loss: Any,
    epochs: int = 3,
    gate_epochs: int = 2,
    route_epochs: int = 0,
    optimizer: Any = "adam",
    metrics: Sequence[Any] | None = None,
    cost_weight: float = 0.0,
    callbacks: Sequence[keras.callbacks.Callback] | None = None,
    log: Any = None,
    batch_size: int | None = None,
    verbose: Any = "auto",
) -> keras.callbacks.History:
    """Trains `model` in two phases, or three: its modules as
    `static_network`, then its controller alone, then (with
    `route_epochs`) its modules on the routes the frozen controller takes;
    returns phase one's `History`, with phase two's losses as
    `controller_loss` and phase three's as `routed_loss`. `model` is left
    compiled with `FullInformation(objective="value")` at `cost_weight`,
    the estimator whose objective phase two trained on, ready to
    `evaluate` or to train on.

    Phase one compiles and fits `static_network`, a plain Keras model
    built from `model`'s modules, for `epochs`: every module trains on
    every example, without routing. This is the recipe of the attention
    D2NN, whose glimpse network is fully convolutional: phase one reads
    whole canvases with it (`attention.full_resolution_network`), so that
    it learns the items wherever they lie, which training on random
    regions (`fit_two_phase`'s uniform routes) does not teach, since most
    regions hold no item. Phase two is `fit_controller_on_table`: the
    controller learns the value of each action on the frozen modules
    (`FullInformation(objective="value")`'s objective, on rewards computed
    once), so the graph has one controller. Phase three is
    `fit_modules_on_routes`: the modules adapt to the examples the
    controller sends them (for the attention D2NN, its chosen crops:
    3.2 points on the canvas).

    Args:
        model: a `D2NNModel` with one controller.
        static_network: a `keras.Model` sharing weights with `model`.
        x, y: training data, as `fit` takes them.
        loss: the task loss.
        epochs: epochs of phase one (>= 1).
        gate_epochs: epochs of phase two (>= 0; 0 skips it).
        route_epochs: epochs of phase three (>= 0; 0 skips it), at a
            learning rate of 3e-4 (Adam).
        optimizer: an optimizer, its name or its config; each phase gets a
            fresh copy.
        metrics: phase one's metrics, as `compile` takes them.
        cost_weight: the price of the FLOPs in phase two's rewards (each
            action's reward is minus the loss minus `cost_weight` times its
            fraction of the FLOPs).
        callbacks: phase one's callbacks.
        log: a function of one string told when each phase starts, or None.
        batch_size, verbose: as `fit` takes them, for both phases
            (`batch_size` None: the data's batches, or 32 examples).

    Example:

    ```python
    from keras_d2nn.architectures import attention
    from keras_d2nn.architectures.attention import full_resolution_network
    from keras_d2nn.recipes import fit_static_first

    model = attention((28, 28, 1))
    x = np.random.default_rng(0).random((64, 28, 28, 1), "float32")
    y = np.arange(64) % 10
    history = fit_static_first(
        model, full_resolution_network(model), x, y,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        epochs=1, gate_epochs=1, batch_size=32, verbose=0)
    len(history.history["loss"]), len(history.history["controller_loss"])
    # 1, 1: one epoch of each phase
    ```
    """
    _check_epochs(
        epochs=(epochs, 1),
        gate_epochs=(gate_epochs, 0),
        route_epochs=(route_epochs, 0),
    )
    _check_controllers(model)
    _check_shares_modules(model, static_network)
    if log is not None:
        log(
            f"Training the modules as {static_network.name} for {epochs} "
            f"epoch{'s' if epochs > 1 else ''}."
        )
    static_network.compile(
        optimizer=fresh_optimizer(optimizer),
        loss=loss,
        metrics=list(metrics or []),
    )
    history = static_network.fit(
        x,
        y,
        epochs=epochs,
        callbacks=list(callbacks or []),
        batch_size=batch_size,
        verbose=verbose,
        # A dataset shuffles itself (Keras warns when asked to).
        shuffle=not isinstance(x, tf.data.Dataset),
    )
    if gate_epochs:
        gate_history = fit_controller_on_table(
            model,
            x,
            y,
            loss=loss,
            gate_epochs=gate_epochs,
            optimizer=optimizer,
            cost_weight=cost_weight,
            batch_size=batch_size or 32,
            verbose=verbose,
            log=log,
        )
        history.history["controller_loss"] = gate_history.history["loss"]
    if route_epochs:
        if log is not None:
            log(
                "Training the modules on the routes the frozen controller "
                f"takes for {route_epochs} epoch"
                f"{'s' if route_epochs > 1 else ''}."
            )
        routed = fit_modules_on_routes(
            model,
            x,
            y,
            loss=loss,
            epochs=route_epochs,
            metrics=metrics,
            batch_size=batch_size,
            verbose=verbose,
        )
        history.history["routed_loss"] = routed.history["loss"]
    model.compile(
        optimizer=fresh_optimizer(optimizer),
        loss=loss,
        metrics=list(metrics or []),
        estimator=FullInformation(objective="value"),
        cost_weight=cost_weight,
    )
    return history
