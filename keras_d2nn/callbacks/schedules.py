"""Training-schedule callbacks: warm-up routing, cost-weight and variable
schedules.

Example:

```python
model.fit(train, epochs=6, callbacks=[
    keras_d2nn.schedules.WarmUp(epochs=2),                    # random routing
    keras_d2nn.schedules.CostWeightSchedule(
        keras_d2nn.schedules.linear_ramp(0.0, 0.2, epochs=4)),
])
```

`d2nn_schedule` fits a warm-up and a ramp to a run of any length, so that
its last epoch always trains at the target cost weight:

```python
model.fit(train, epochs=2, callbacks=keras_d2nn.schedules.d2nn_callbacks(
    0.1, epochs=2, warmup_epochs=1, ramp_epochs=1))
```
"""

import dataclasses

import keras
import numpy as np


def constant(value):
    """A schedule returning `value` at every epoch.

    Example: `CostWeightSchedule(constant(0.1))`.
    """
    return lambda epoch: value


def linear_ramp(start, end, epochs, delay=0):
    """A schedule going linearly from `start` to `end` over `epochs`
    epochs, after `delay` epochs at `start`; `end` afterwards.

    Example: `linear_ramp(0.0, 0.2, epochs=4)(2)  # 0.1`.
    """
    if epochs < 1:
        raise ValueError(f"`epochs` should be >= 1. Received: {epochs}")

    def schedule(epoch):
        progress = np.clip((epoch - delay) / epochs, 0.0, 1.0)
        return float(start + (end - start) * progress)

    return schedule


class CostWeightSchedule(keras.callbacks.Callback):
    """Sets `model.cost_weight = schedule(epoch)` before each epoch.

    Args:
        schedule: a callable `epoch -> cost weight` (e.g. `linear_ramp`).
        verbose: print each change.

    Example: `model.fit(..., callbacks=[CostWeightSchedule(ramp)])`.
    """

    def __init__(self, schedule, verbose=0):
        super().__init__()
        self.schedule = schedule
        self.verbose = verbose

    def on_epoch_begin(self, epoch, logs=None):
        value = self.schedule(epoch)
        self.model.cost_weight = value
        if self.verbose:
            print(f"\nEpoch {epoch + 1}: cost_weight = {value:g}")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["cost_weight"] = self.model.cost_weight


class VariableSchedule(keras.callbacks.Callback):
    """Assigns `variable = schedule(epoch)` before each epoch: anneals a
    controller's `epsilon` or a `GumbelSoftmax` temperature.

    Example:

    ```python
    VariableSchedule(model.plan.nodes["gate"].layer.epsilon,
                     linear_ramp(0.3, 0.05, epochs=5))
    ```
    """

    def __init__(self, variable, schedule):
        super().__init__()
        self.variable = variable
        self.schedule = schedule

    def on_epoch_begin(self, epoch, logs=None):
        self.variable.assign(self.schedule(epoch))


class WarmUp(keras.callbacks.Callback):
    """Trains the modules with forced routing for the first epochs, then
    hands the decisions to the controllers.

    During warm-up every branch is trained on a share of the examples, so
    the controllers start learning from modules that are all useful instead
    of starving the branches they happened not to pick at first.

    Args:
        epochs: number of warm-up epochs.
        routing: `"random"` (default: every action of every controller with
            equal probability) or a `set_routing` specification.

    Example: `model.fit(..., epochs=5, callbacks=[WarmUp(epochs=1)])`.
    """

    def __init__(self, epochs=1, routing="random"):
        super().__init__()
        if epochs < 0:
            raise ValueError(f"`epochs` should be >= 0. Received: {epochs}")
        self.epochs = epochs
        self.routing = routing

    def _warm_routing(self):
        if self.routing != "random":
            return self.routing
        plan = self.model.plan
        return {
            q: [1.0 / len(plan.nodes[q].actions)] * len(plan.nodes[q].actions)
            for q in plan.controllers
        }

    def on_train_begin(self, logs=None):
        self._warming = False

    def on_epoch_begin(self, epoch, logs=None):
        # Decided by the epoch alone, so that a run resumed at any epoch
        # (BackupAndRestore, a checkpoint and `initial_epoch`) routes as an
        # uninterrupted one. Routing changes only when it must: each change
        # retraces the train function.
        warm = epoch < self.epochs
        if warm and not self._warming:
            self.model.set_routing(self._warm_routing())
        elif self._warming and not warm:
            self.model.set_routing(None)
        self._warming = warm

    def on_train_end(self, logs=None):
        if self._warming:
            self.model.set_routing(None)
            self._warming = False


@dataclasses.dataclass(frozen=True)
class D2NNSchedule:
    """The warm-up and cost-weight ramp of one run, as `d2nn_schedule`
    fitted them to its length.

    Attributes:
        epochs: epochs of the run (the last index is `epochs - 1`).
        warmup_epochs: epochs of random routing, from epoch 0.
        ramp_epochs: the cost weight goes linearly from 0, in the first
            epoch after the warm-up, to `cost_weight`, reached this many
            epochs later (0: `cost_weight` from the start).
        cost_weight: the target.
        requested: the `(warmup_epochs, ramp_epochs)` asked for.
    """

    epochs: int
    warmup_epochs: int
    ramp_epochs: int
    cost_weight: float
    requested: tuple

    @property
    def shortened(self):
        """Whether the run was too short for the requested schedule."""
        return (self.warmup_epochs, self.ramp_epochs) != self.requested

    def cost_weight_at(self, epoch):
        """The cost weight of `epoch` (0-based)."""
        if not self.ramp_epochs:
            return float(self.cost_weight)
        return linear_ramp(
            0.0, self.cost_weight, self.ramp_epochs, delay=self.warmup_epochs
        )(epoch)

    def cost_weights(self):
        """The cost weight of every epoch, in order."""
        return [self.cost_weight_at(e) for e in range(self.epochs)]

    def describe(self):
        """One line for people, e.g. `1 warm-up epoch (random routing),
        cost_weight 0 -> 0.1 over 1 epoch; last epoch at 0.1`."""
        parts = []
        if self.warmup_epochs:
            parts.append(
                f"{self.warmup_epochs} warm-up epoch"
                f"{'s' if self.warmup_epochs > 1 else ''} "
                "(random routing)"
            )
        else:
            parts.append("no warm-up")
        if self.ramp_epochs:
            parts.append(
                f"cost_weight ramped from 0 to {self.cost_weight:g}"
                f" over {self.ramp_epochs} epoch"
                f"{'s' if self.ramp_epochs > 1 else ''}"
            )
        else:
            parts.append(f"cost_weight {self.cost_weight:g} throughout")
        weights = ", ".join(f"{w:g}" for w in self.cost_weights())
        line = f"{'; '.join(parts)} (cost_weight per epoch: {weights})"
        if self.shortened:
            line += (
                f"; shortened from {self.requested[0]} warm-up and "
                f"{self.requested[1]} ramp epochs so that the last "
                f"epoch trains at cost_weight {self.cost_weight:g}"
            )
        return line

    def callbacks(self, routing="random", verbose=0):
        """`WarmUp` (if any) and `CostWeightSchedule` callbacks."""
        callbacks = []
        if self.warmup_epochs:
            callbacks.append(WarmUp(self.warmup_epochs, routing=routing))
        callbacks.append(CostWeightSchedule(self.cost_weight_at, verbose))
        return callbacks


def d2nn_schedule(cost_weight, epochs, warmup_epochs=1, ramp_epochs=1):
    """Fits a warm-up and a cost-weight ramp to a run of `epochs` epochs.

    The rule: warm-up `min(warmup_epochs, epochs - 1)` epochs, then the
    ramp shortened to `min(ramp_epochs, epochs - warm-up - 1)`, so that at
    least one epoch learns after the warm-up and the last epoch always
    trains at `cost_weight`. A 1-epoch run has neither (its controllers
    still explore: they sample their actions). Runs long enough for the
    requested schedule get it unchanged.

    The schedule depends on the epoch index alone, so a run resumed at
    `initial_epoch` (from a checkpoint) follows the uninterrupted run's
    schedule, as long as it is given the same `epochs`.

    Example:

    ```python
    d2nn_schedule(0.1, epochs=3).cost_weights()  # [0.0, 0.0, 0.1]
    d2nn_schedule(0.1, epochs=2).cost_weights()  # [0.1, 0.1], 1 warm-up
    d2nn_schedule(0.1, epochs=1).warmup_epochs   # 0
    ```
    """
    for label, value in (
        ("epochs", epochs),
        ("warmup_epochs", warmup_epochs),
        ("ramp_epochs", ramp_epochs),
    ):
        if value < (1 if label == "epochs" else 0):
            raise ValueError(
                f"`{label}` should be >= "
                f"{1 if label == 'epochs' else 0}. Received: "
                f"{value}"
            )
    warmup = min(warmup_epochs, epochs - 1)
    ramp = min(ramp_epochs, epochs - warmup - 1)
    return D2NNSchedule(
        epochs=epochs,
        warmup_epochs=warmup,
        ramp_epochs=ramp,
        cost_weight=float(cost_weight),
        requested=(warmup_epochs, ramp_epochs),
    )


def d2nn_callbacks(cost_weight, epochs, warmup_epochs=1, ramp_epochs=1):
    """The callbacks of `d2nn_schedule(...)`: pass them to `fit` with the
    same `epochs`.

    Example: `model.fit(x, y, epochs=2, callbacks=d2nn_callbacks(0.1, 2))`.
    """
    return d2nn_schedule(
        cost_weight, epochs, warmup_epochs, ramp_epochs
    ).callbacks()
