"""Training-schedule callbacks: warm-up routing, cost-weight and variable
schedules.

Example:

```python
model.fit(images, labels, epochs=3, verbose=0, callbacks=[
    keras_d2nn.schedules.WarmUp(epochs=1),                    # random routing
    keras_d2nn.schedules.CostWeightSchedule(
        keras_d2nn.schedules.linear_ramp(0.0, 0.2, epochs=2, delay=1)),
])
```

`d2nn_schedule` fits a warm-up and a ramp to a run of any length, so that
its last epoch always trains at the target cost weight:

```python
model.fit(images, labels, epochs=2, verbose=0,
          callbacks=keras_d2nn.schedules.d2nn_callbacks(
              0.1, epochs=2, warmup_epochs=1, ramp_epochs=1))
```

With a budget (`compile(target_cost=...)`) the cost weight is a Lagrange
multiplier that training moves itself: from where it starts (0 by
default) it rises only as far as the controllers overspend, which is the
ramp's job, so a budget replaces the ramp. `d2nn_schedule(...,
target_cost=...)` keeps the warm-up alone, and `CostWeightSchedule`
refuses a model with a budget rather than overwrite its multiplier.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any
from typing import TypeAlias

import keras
import numpy as np

# `epoch (0-based) -> value`.
Schedule: TypeAlias = "Callable[[int], float]"
# A `D2NNModel.set_routing` specification: per controller, an action (index
# or name) or the probabilities of each action.
Routing: TypeAlias = "Mapping[str, int | str | Sequence[float]]"


def constant(value: float) -> Schedule:
    """A schedule returning `value` at every epoch.

    Example:

    ```python
    keras_d2nn.schedules.constant(0.1)(epoch=7)  # 0.1
    ```
    """
    return lambda epoch: value


def linear_ramp(
    start: float, end: float, epochs: int, delay: int = 0
) -> Schedule:
    """A schedule going linearly from `start` to `end` over `epochs`
    epochs, after `delay` epochs at `start`; `end` afterwards.

    Example:

    ```python
    keras_d2nn.schedules.linear_ramp(0.0, 0.2, epochs=4)(2)  # 0.1
    ```
    """
    if epochs < 1:
        raise ValueError(f"`epochs` should be >= 1. Received: epochs={epochs}")

    def schedule(epoch: int) -> float:
        progress = np.clip((epoch - delay) / epochs, 0.0, 1.0)
        return float(start + (end - start) * progress)

    return schedule


class CostWeightSchedule(keras.callbacks.Callback):
    """Sets `model.cost_weight = schedule(epoch)` before each epoch.

    Args:
        schedule: a callable `epoch -> cost weight` (e.g. `linear_ramp`).
        verbose: print each change.

    Example:

    ```python
    ramp = keras_d2nn.schedules.linear_ramp(0.0, 0.2, epochs=2)
    model.fit(images, labels, epochs=2, verbose=0,
              callbacks=[keras_d2nn.schedules.CostWeightSchedule(ramp)])
    model.cost_weight  # 0.1: epoch 1's (0.2 from epoch 2 on)
    ```
    """

    def __init__(self, schedule: Schedule, verbose: int = 0) -> None:
        super().__init__()
        self.schedule = schedule
        self.verbose = verbose

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        target = getattr(self.model, "target_cost", None)
        if target is not None:
            raise ValueError(
                "CostWeightSchedule would overwrite the cost weight that "
                f"the model's budget (target_cost={target:g}) moves itself. "
                "Drop the schedule (WarmUp alone is fine; "
                "d2nn_callbacks(..., target_cost=...) gives just that) or "
                "compile without target_cost."
            )

    def on_epoch_begin(
        self, epoch: int, logs: dict[str, Any] | None = None
    ) -> None:
        value = self.schedule(epoch)
        self.model.cost_weight = value
        if self.verbose:
            print(f"\nEpoch {epoch + 1}: cost_weight = {value:g}")

    def on_epoch_end(
        self, epoch: int, logs: dict[str, Any] | None = None
    ) -> None:
        if logs is not None:
            logs["cost_weight"] = self.model.cost_weight


class VariableSchedule(keras.callbacks.Callback):
    """Assigns `variable = schedule(epoch)` before each epoch: anneals a
    controller's `epsilon` or a `GumbelSoftmax` temperature.

    Example:

    ```python
    epsilon = keras.Variable(0.3, trainable=False)
    anneal = keras_d2nn.schedules.VariableSchedule(
        epsilon, keras_d2nn.schedules.linear_ramp(0.3, 0.05, epochs=2))
    model.fit(images, labels, epochs=2, verbose=0, callbacks=[anneal])
    float(epsilon.numpy())  # 0.175: epoch 1's (0.05 from epoch 2 on)
    ```
    """

    def __init__(self, variable: keras.Variable, schedule: Schedule) -> None:
        super().__init__()
        self.variable = variable
        self.schedule = schedule

    def on_epoch_begin(
        self, epoch: int, logs: dict[str, Any] | None = None
    ) -> None:
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

    Example:

    ```python
    model.fit(images, labels, epochs=2, verbose=0,
              callbacks=[keras_d2nn.schedules.WarmUp(epochs=1)])
    model.routing  # {}: learned routing again after the warm-up
    ```
    """

    def __init__(
        self, epochs: int = 1, routing: str | Routing = "random"
    ) -> None:
        super().__init__()
        if epochs < 0:
            raise ValueError(
                f"`epochs` should be >= 0. Received: epochs={epochs}"
            )
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

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._warming = False

    def on_epoch_begin(
        self, epoch: int, logs: dict[str, Any] | None = None
    ) -> None:
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

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self._warming:
            self.model.set_routing(None)
            self._warming = False


@dataclasses.dataclass(frozen=True)
class D2NNSchedule:
    """The warm-up and cost-weight ramp of one run, as `d2nn_schedule`
    fitted them to its length.

    Example:

    ```python
    schedule = keras_d2nn.schedules.d2nn_schedule(0.1, epochs=4)
    schedule.warmup_epochs, schedule.ramp_epochs  # (1, 1)
    ```

    Attributes:
        epochs: epochs of the run (the last index is `epochs - 1`).
        warmup_epochs: epochs of random routing, from epoch 0.
        ramp_epochs: the cost weight goes linearly from 0, in the first
            epoch after the warm-up, to `cost_weight`, reached this many
            epochs later (0: `cost_weight` from the start).
        cost_weight: the target; with a budget, where the multiplier
            starts.
        requested: the `(warmup_epochs, ramp_epochs)` asked for.
        target_cost: the budget (`compile(target_cost=...)`), or None.
            With one there is no ramp: training moves the cost weight.
    """

    epochs: int
    warmup_epochs: int
    ramp_epochs: int
    cost_weight: float
    requested: tuple[int, int]
    target_cost: float | None = None

    @property
    def shortened(self) -> bool:
        """Whether the run was too short for the requested schedule."""
        if self.target_cost is not None:  # no ramp to shorten
            return self.warmup_epochs != self.requested[0]
        return (self.warmup_epochs, self.ramp_epochs) != self.requested

    def cost_weight_at(self, epoch: int) -> float | None:
        """The cost weight of `epoch` (0-based); None with a budget,
        which moves it within epochs.

        Example:

        ```python
        keras_d2nn.schedules.d2nn_schedule(0.1, 3).cost_weight_at(2)  # 0.1
        ```
        """
        if self.target_cost is not None:
            return None
        return self._ramp(epoch)

    def _ramp(self, epoch: int) -> float:
        if not self.ramp_epochs:
            return float(self.cost_weight)
        return linear_ramp(
            0.0, self.cost_weight, self.ramp_epochs, delay=self.warmup_epochs
        )(epoch)

    def cost_weights(self) -> list[float] | None:
        """The cost weight of every epoch, in order; None with a budget.

        Example:

        ```python
        keras_d2nn.schedules.d2nn_schedule(0.1, 3).cost_weights()
        # [0.0, 0.0, 0.1]
        ```
        """
        if self.target_cost is not None:
            return None
        return [self._ramp(e) for e in range(self.epochs)]

    def describe(self, cost: str = "FLOPs") -> str:
        """One line for people, as the main job logs it; `cost` names
        what a budget is a fraction of ("FLOPs", or "latency" for a model
        compiled with `cost="latency"`).

        Example:

        ```python
        print(keras_d2nn.schedules.d2nn_schedule(0.1, 3).describe())
        ```
        """
        parts = []
        if self.warmup_epochs:
            parts.append(
                f"{self.warmup_epochs} warm-up epoch"
                f"{'s' if self.warmup_epochs > 1 else ''} "
                "(random routing)"
            )
        else:
            parts.append("no warm-up")
        if self.target_cost is not None:
            line = (
                f"{'; '.join(parts)}; budget {self.target_cost:g} of the "
                f"full {cost}: the cost weight is a Lagrange multiplier "
                f"moved by training from {self.cost_weight:g}, no ramp"
            )
            if self.shortened:
                line += (
                    f"; warm-up shortened from {self.requested[0]} epochs "
                    "so that at least one epoch learns"
                )
            return line
        if self.ramp_epochs:
            parts.append(
                f"cost_weight ramped from 0 to {self.cost_weight:g}"
                f" over {self.ramp_epochs} epoch"
                f"{'s' if self.ramp_epochs > 1 else ''}"
            )
        else:
            parts.append(f"cost_weight {self.cost_weight:g} throughout")
        weights = ", ".join(f"{w:g}" for w in self.cost_weights() or ())
        line = f"{'; '.join(parts)} (cost_weight per epoch: {weights})"
        if self.shortened:
            line += (
                f"; shortened from {self.requested[0]} warm-up and "
                f"{self.requested[1]} ramp epochs so that the last "
                f"epoch trains at cost_weight {self.cost_weight:g}"
            )
        return line

    def callbacks(
        self, routing: str | Routing = "random", verbose: int = 0
    ) -> list[keras.callbacks.Callback]:
        """`WarmUp` (if any) and `CostWeightSchedule` callbacks (none
        with a budget).

        Example:

        ```python
        schedule = keras_d2nn.schedules.d2nn_schedule(0.1, epochs=2)
        model.fit(images, labels, epochs=2, verbose=0,
                  callbacks=schedule.callbacks())
        ```
        """
        callbacks: list[keras.callbacks.Callback] = []
        if self.warmup_epochs:
            callbacks.append(WarmUp(self.warmup_epochs, routing=routing))
        if self.target_cost is None:
            callbacks.append(CostWeightSchedule(self._ramp, verbose))
        return callbacks


def d2nn_schedule(
    cost_weight: float,
    epochs: int,
    warmup_epochs: int = 1,
    ramp_epochs: int = 1,
    target_cost: float | None = None,
) -> D2NNSchedule:
    """Fits a warm-up and a cost-weight ramp to a run of `epochs` epochs.

    The rule: warm-up `min(warmup_epochs, epochs - 1)` epochs, then the
    ramp shortened to `min(ramp_epochs, epochs - warm-up - 1)`, so that at
    least one epoch learns after the warm-up and the last epoch always
    trains at `cost_weight`. A 1-epoch run has neither (its controllers
    still explore: they sample their actions). Runs long enough for the
    requested schedule get it unchanged.

    With `target_cost` (the model's budget) there is no ramp, whatever
    `ramp_epochs` says: training moves the cost weight, from `cost_weight`
    (see the module docstring); the warm-up is fitted as above.

    The schedule depends on the epoch index alone, so a run resumed at
    `initial_epoch` (from a checkpoint) follows the uninterrupted run's
    schedule, as long as it is given the same `epochs`.

    Example:

    ```python
    d2nn_schedule = keras_d2nn.schedules.d2nn_schedule
    d2nn_schedule(0.1, epochs=3).cost_weights()  # [0.0, 0.0, 0.1]
    d2nn_schedule(0.1, epochs=2).cost_weights()  # [0.1, 0.1]: no ramp
    d2nn_schedule(0.1, epochs=1).warmup_epochs   # 0
    d2nn_schedule(0.0, epochs=3, target_cost=0.3).ramp_epochs  # 0
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
                f"{label}={value}"
            )
    warmup = min(warmup_epochs, epochs - 1)
    ramp = 0 if target_cost is not None else ramp_epochs
    ramp = min(ramp, epochs - warmup - 1)
    return D2NNSchedule(
        epochs=epochs,
        warmup_epochs=warmup,
        ramp_epochs=ramp,
        cost_weight=float(cost_weight),
        requested=(warmup_epochs, ramp_epochs),
        target_cost=None if target_cost is None else float(target_cost),
    )


def d2nn_callbacks(
    cost_weight: float,
    epochs: int,
    warmup_epochs: int = 1,
    ramp_epochs: int = 1,
    target_cost: float | None = None,
) -> list[keras.callbacks.Callback]:
    """The callbacks of `d2nn_schedule(...)`: pass them to `fit` with the
    same `epochs`. With `target_cost`, the warm-up alone.

    Example:

    ```python
    model.fit(images, labels, epochs=2, verbose=0,
              callbacks=keras_d2nn.schedules.d2nn_callbacks(0.1, epochs=2))
    ```
    """
    return d2nn_schedule(
        cost_weight, epochs, warmup_epochs, ramp_epochs, target_cost
    ).callbacks()
