"""A controller trained on a table of rewards: once the modules are frozen,
the reward of each action on each example no longer changes, so it is
computed once (one routed pass per action) instead of at every step."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from keras_d2nn.models import D2NNModel
from keras_d2nn.recipes.two_phase import fresh_optimizer


def _single_controller(model: D2NNModel) -> str:
    controllers = model.plan.controllers
    if len(controllers) != 1:
        raise ValueError(
            "A reward table holds the actions of one controller; this graph "
            f"has {len(controllers)}: {list(controllers)}. Train several "
            "with `fit_controllers`."
        )
    return controllers[0]


def _per_example_loss(loss: Any) -> Any:
    """`loss(y_true, y_pred)` per example (no reduction)."""
    if isinstance(loss, keras.losses.Loss):
        return loss.call
    function = keras.losses.get(loss)
    if isinstance(function, keras.losses.Loss):
        return function.call
    return function


def _arrays(dataset: tf.data.Dataset) -> tuple[Any, np.ndarray]:
    """`(x, y)` arrays of a dataset of batched `(x, y)` pairs."""
    xs, ys = [], []
    for batch in dataset:
        if not (isinstance(batch, tuple) and len(batch) >= 2):
            raise ValueError(
                "action_rewards needs labels: a dataset of (x, y) pairs."
            )
        xs.append(keras.tree.map_structure(np.asarray, batch[0]))
        ys.append(np.asarray(batch[1]))
    return (
        keras.tree.map_structure(lambda *parts: np.concatenate(parts), *xs),
        np.concatenate(ys),
    )


def action_rewards(
    model: D2NNModel,
    x: Any,
    y: Any = None,
    *,
    loss: Any,
    cost_weight: float = 0.0,
    batch_size: int = 256,
) -> tuple[np.ndarray, np.ndarray]:
    """`(features, rewards)` of `model`'s one controller on `x`.

    `x`, `y`: arrays, or a dataset of batched `(x, y)` pairs (read once
    into arrays). `features` `(n, ...)` is what the controller reads (its
    input node's output); `rewards` `(n, actions)` is, for each action
    forced on every
    example, minus the example's loss minus `cost_weight` times the
    fraction of the FLOPs it ran (`FullInformation`'s reward). Everything
    runs in inference mode, with the model's current weights.

    Example:

    ```python
    from keras_d2nn.recipes.reward_table import action_rewards
    from keras_d2nn.testing import LOSS, routing_data, small_high_low

    model = small_high_low()
    x, y = routing_data(64)
    features, rewards = action_rewards(model, x, y, loss=LOSS)
    rewards.shape  # (64, 2): "stop" and "high" per example
    ```
    """
    controller = _single_controller(model)
    if isinstance(x, tf.data.Dataset):
        # Read once: every pass below must see the examples in one order,
        # and a training pipeline reshuffles at each pass.
        x, y = _arrays(x)
    source = model.plan.nodes[controller].inputs[0]
    output = model.plan.outputs[0][1]
    per_example = _per_example_loss(loss)
    first = model.route(x, batch_size=batch_size, labels=y, values=(source,))
    if first.labels is None:
        raise ValueError(
            "action_rewards needs labels: pass `y`, or a dataset of (x, y) "
            "pairs."
        )
    features = first.node_values[source]
    labels = tf.constant(first.labels)
    rewards = []
    for action in range(len(model.plan.nodes[controller].actions)):
        routes = model.route(
            x,
            batch_size=batch_size,
            decisions={controller: np.full(len(features), action)},
            values=(output,),
        )
        losses = per_example(labels, tf.constant(routes.node_values[output]))
        rewards.append(
            -np.asarray(losses, np.float64)
            - cost_weight * routes.executed_flops / routes.full_flops
        )
    return np.asarray(features), np.stack(rewards, axis=1)


def centered_squared_error(rewards: tf.Tensor, values: tf.Tensor) -> tf.Tensor:
    """Squared error between values and rewards, each taken relative to its
    mean over the actions (`FullInformation(centered=True)`): only the
    differences between actions decide the argmax.

    Example: `centered_squared_error(rewards, controller(features))`.
    """
    rewards = tf.cast(rewards, values.dtype)
    rewards -= tf.reduce_mean(rewards, axis=-1, keepdims=True)
    values -= tf.reduce_mean(values, axis=-1, keepdims=True)
    return tf.reduce_mean(tf.square(values - rewards), axis=-1)


def fit_controller_on_table(
    model: D2NNModel,
    x: Any,
    y: Any = None,
    *,
    loss: Any,
    gate_epochs: int = 2,
    optimizer: Any = "adam",
    cost_weight: float = 0.0,
    batch_size: int = 128,
    verbose: Any = "auto",
    log: Any = None,
) -> keras.callbacks.History:
    """Trains `model`'s one controller to the value of each action
    (centered squared error, as `FullInformation(objective="value")`) on
    a reward table computed once on the frozen modules (`action_rewards`);
    returns the `History` (`loss` per epoch). The modules do not change.

    Equivalent to `fit_controllers` with the value objective when the
    modules are deterministic in inference (no dropout noise), and as
    fast as a plain `fit` of the controller: `fit_controllers` reruns
    every action at every step, which costs a graph with many actions
    (25 glimpse regions) minutes per step.

    Example:

    ```python
    from keras_d2nn.recipes.reward_table import fit_controller_on_table
    from keras_d2nn.testing import LOSS, routing_data, small_high_low

    model = small_high_low()
    x, y = routing_data(256)
    history = fit_controller_on_table(model, x, y, loss=LOSS, gate_epochs=1,
                                      verbose=0)
    len(history.history["loss"])  # 1
    ```
    """
    controller = _single_controller(model)
    if log is not None:
        log(
            "Computing the reward of each action on the frozen modules, "
            f"then training controller '{controller}' for {gate_epochs} "
            f"epoch{'s' if gate_epochs != 1 else ''}."
        )
    features, rewards = action_rewards(
        model, x, y, loss=loss, cost_weight=cost_weight
    )
    layer = model.plan.nodes[controller].layer
    assert layer is not None  # a q_node always holds its controller
    inputs = keras.Input(features.shape[1:])
    network = keras.Model(inputs, layer(inputs), name=f"{controller}_values")
    network.compile(
        optimizer=fresh_optimizer(optimizer),
        loss=centered_squared_error,
    )
    return network.fit(
        features.astype(np.float32),
        rewards.astype(np.float32),
        epochs=gate_epochs,
        batch_size=batch_size,
        verbose=verbose,
    )
