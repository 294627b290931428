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
"""

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
        return {q: [1.0 / len(plan.nodes[q].actions)] * len(
            plan.nodes[q].actions) for q in plan.controllers}

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
