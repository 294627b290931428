"""The modules trained on the routes their frozen controllers take."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from collections.abc import Sequence
from typing import Any
from typing import cast

import keras
import tensorflow as tf

from keras_d2nn.layers import Controller
from keras_d2nn.models import D2NNModel
from keras_d2nn.recipes.two_phase import _check_epochs

# A sampling temperature at which a softmax controller takes its argmax:
# the logits' differences, divided by it, dwarf any sampling noise.
GREEDY_TEMPERATURE = 1e-6
# The learning rate of the measured setting (benchmarks/attention_canvas.py:
# Adam at 3e-4 for 2 epochs, after 8 of phase one at 1e-3).
DEFAULT_LEARNING_RATE = 3e-4


@contextlib.contextmanager
def frozen_greedy_controllers(model: D2NNModel) -> Iterator[None]:
    """Within the block, `model`'s controllers neither train nor explore:
    not trainable, and in training they take their argmax (temperature
    near 0, no uniform share). Their settings are restored on exit.

    Example:

    ```python
    from keras_d2nn.recipes.own_routes import frozen_greedy_controllers
    from keras_d2nn.testing import routing_data, small_high_low

    model = small_high_low()
    x, _ = routing_data(8)
    with frozen_greedy_controllers(model):
        trace = model.trace(x, training=True)  # the greedy decisions
    ```
    """
    controllers: list[Controller] = [
        cast(Controller, model.plan.nodes[q].layer)
        for q in model.plan.controllers
    ]
    saved = [
        (c.trainable, c.temperature.numpy(), c.epsilon.numpy())
        for c in controllers
    ]
    try:
        for controller in controllers:
            controller.trainable = False
            controller.temperature.assign(GREEDY_TEMPERATURE)
            controller.epsilon.assign(0.0)
        yield
    finally:
        for controller, (trainable, temperature, epsilon) in zip(
            controllers, saved
        ):
            controller.trainable = trainable
            controller.temperature.assign(temperature)
            controller.epsilon.assign(epsilon)


def fit_modules_on_routes(
    model: D2NNModel,
    x: Any,
    y: Any = None,
    *,
    loss: Any,
    epochs: int = 2,
    optimizer: Any = None,
    metrics: Sequence[Any] | None = None,
    callbacks: Sequence[keras.callbacks.Callback] | None = None,
    batch_size: int | None = None,
    verbose: Any = "auto",
) -> keras.callbacks.History:
    """Trains `model`'s modules on the routes its controllers take, the
    controllers frozen and greedy; returns the `History`.

    After a controller has learned where to send each example, the
    modules it sends them to adapt to what they receive: the attention
    D2NN's glimpse network, trained on whole canvases, learns the crops
    its controller chooses, off-centre items and cut clutter included (on
    the canvas: 2.7 then 3.2 points in two epochs, to the full-resolution
    network's accuracy; benchmarks/attention_canvas.py). Only the
    examples' own routes run (routed execution), and the controllers'
    decisions do not change, so what the modules learn is what they will
    be asked at inference.

    `model` is compiled with `loss`, `optimizer` (default Adam at 3e-4)
    and `metrics` and fitted with `cost_weight=0` (the costs are the
    controllers' concern, and they are frozen). Recompile it before
    training it otherwise.

    Example:

    ```python
    from keras_d2nn.recipes.own_routes import fit_modules_on_routes
    from keras_d2nn.testing import LOSS, routing_data, small_high_low

    model = small_high_low()
    x, y = routing_data(64)
    history = fit_modules_on_routes(model, x, y, loss=LOSS, epochs=1,
                                    verbose=0)
    len(history.history["loss"])  # 1
    ```
    """
    _check_epochs(epochs=(epochs, 1))
    if optimizer is None:
        optimizer = keras.optimizers.Adam(DEFAULT_LEARNING_RATE)
    with frozen_greedy_controllers(model):
        model.compile(
            optimizer=optimizer,
            loss=loss,
            metrics=list(metrics or []),
            cost_weight=0.0,
        )
        return model.fit(
            x,
            y,
            epochs=epochs,
            callbacks=list(callbacks or []),
            batch_size=batch_size,
            verbose=verbose,
            shuffle=not isinstance(x, tf.data.Dataset),
        )
