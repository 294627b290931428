"""A measured latency per node: the time-based sibling of the FLOP table.

FLOPs are a poor proxy for time on small layers (a 32-filter convolution
runs at a fraction of the FLOP rate of a large one), so a controller
trained on FLOPs over-uses paths that only look cheap. A `LatencyProfile`
holds what each node took on one runtime at one batch size, in
milliseconds per example; `keras_d2nn.profiling.profile_latency` measures
one, and `D2NNModel.compile(cost="latency", latency_profile=...)` trains
the controllers on it.

It lives beside the plan (not with the profiler, which needs `export/`
for LiteRT) so that training and the reports can read it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING
from typing import Any

import numpy as np

if TYPE_CHECKING:
    from keras_d2nn.graph.plan import Plan

# Where a profile can be measured (see `keras_d2nn.profiling`).
RUNTIMES = ("tf_cpu", "litert")


def _check_runtime(runtime: str) -> str:
    if runtime not in RUNTIMES:
        raise ValueError(
            f"`runtime` should be one of {RUNTIMES}. "
            f"Received: runtime={runtime!r}"
        )
    return runtime


@dataclasses.dataclass(frozen=True)
class LatencyProfile:
    """Milliseconds per example of each node, on one runtime and batch size.

    Nodes without computation (inputs, dummies, merges without a layer)
    may be left out: they cost 0.

    Args:
        node_ms: `{node name: milliseconds per example}`, each finite and
            >= 0.
        runtime: where it was measured, one of `RUNTIMES`
            (`"tf_cpu"`, `"litert"`).
        batch_size: the batch size it was measured at (>= 1).

    Example:

    ```python
    profile = keras_d2nn.profiling.LatencyProfile(
        {"low": 0.01, "low_head": 0.001, "gate": 0.002, "high": 0.05},
        runtime="tf_cpu", batch_size=64)
    profile.full_ms()  # 0.063
    profile.predict(model.trace(images[:8]))  # mean ms per example
    ```
    """

    node_ms: Mapping[str, float]
    runtime: str = "tf_cpu"
    batch_size: int = 1

    def __post_init__(self):
        _check_runtime(self.runtime)
        if (
            isinstance(self.batch_size, bool)
            or not isinstance(self.batch_size, (int, np.integer))
            or self.batch_size < 1
        ):
            raise ValueError(
                "`batch_size` should be an integer >= 1. "
                f"Received: batch_size={self.batch_size!r}"
            )
        cleaned = {}
        for node, ms in dict(self.node_ms).items():
            value = float(ms)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(
                    "Every node's latency should be a finite number of "
                    f"milliseconds >= 0. Received: node_ms[{node!r}]={ms!r}"
                )
            cleaned[str(node)] = value
        # Frozen: assign through object to store the checked copy.
        object.__setattr__(self, "node_ms", cleaned)
        object.__setattr__(self, "batch_size", int(self.batch_size))

    # -- the plan's view ---------------------------------------------------

    def check(self, plan: Plan) -> None:
        """Raises a ValueError unless the profile covers every node of
        `plan` that computes (has a layer or FLOPs) and names no node
        `plan` lacks.

        Example:

        ```python
        profile = keras_d2nn.profiling.LatencyProfile(
            {"low": 0.01, "low_head": 0.001, "gate": 0.002, "high": 0.05})
        profile.check(model.plan)  # passes: every computing node is there
        ```
        """
        computing = [
            node.name
            for node in plan.order
            if node.layer is not None or plan.flops.get(node.name)
        ]
        missing = [n for n in computing if n not in self.node_ms]
        if missing:
            raise ValueError(
                f"The latency profile has no time for the nodes {missing}; "
                "profile this model again "
                "(keras_d2nn.profiling.profile_latency). "
                f"Profiled nodes: {sorted(self.node_ms)}"
            )
        unknown = sorted(set(self.node_ms) - set(plan.nodes))
        if unknown:
            raise ValueError(
                f"The latency profile names nodes {unknown} that the graph "
                f"does not have; its nodes: {[n.name for n in plan.order]}"
            )

    def node_vector(self, plan: Plan) -> np.ndarray:
        """Milliseconds per example of each node of `plan`, in the order
        of `plan.order` (0 for nodes the profile leaves out).

        Example:

        ```python
        profile = keras_d2nn.profiling.LatencyProfile(
            {"low": 0.01, "low_head": 0.001, "gate": 0.002, "high": 0.05})
        profile.node_vector(model.plan)  # float64, one per node
        ```
        """
        return np.array(
            [self.node_ms.get(node.name, 0.0) for node in plan.order],
            dtype=np.float64,
        )

    def full_ms(self) -> float:
        """Milliseconds per example when every node runs.

        Example:

        ```python
        profile = keras_d2nn.profiling.LatencyProfile(
            {"low": 0.01, "low_head": 0.001, "gate": 0.002, "high": 0.05})
        profile.full_ms()  # 0.063
        ```
        """
        return float(sum(self.node_ms.values()))

    def route_ms(self, plan: Plan) -> np.ndarray:
        """Milliseconds per example of each joint decision's route (float64,
        over `plan.space`, as `plan.route_flops`).

        Example:

        ```python
        profile = keras_d2nn.profiling.LatencyProfile(
            {"low": 0.01, "low_head": 0.001, "gate": 0.002, "high": 0.05})
        index = model.plan.joint_decision(model.route(images).decisions)
        profile.route_ms(model.plan)[index.numpy()]  # each example's ms
        ```
        """
        executes = np.stack([plan.conditions[n.name] for n in plan.order])
        return self.node_vector(plan) @ executes.astype(np.float64)

    def per_example(self, executed: Mapping[str, Any]) -> np.ndarray:
        """Milliseconds of each example, from `{node: bool (n,)}`: which
        nodes ran for it (`trace.executed`, `routes.executed`).

        Example:

        ```python
        profile = keras_d2nn.profiling.LatencyProfile(
            {"low": 0.01, "low_head": 0.001, "gate": 0.002, "high": 0.05})
        profile.per_example(model.trace(images).executed)  # (64,)
        ```
        """
        total = None
        for node, ms in self.node_ms.items():
            if node not in executed:
                continue
            ran = np.asarray(executed[node], dtype=np.float64)
            total = ms * ran if total is None else total + ms * ran
        if total is None:
            raise ValueError(
                "`executed` names none of the profiled nodes "
                f"{sorted(self.node_ms)}. Received nodes: {sorted(executed)}"
            )
        return total

    def predict(self, routing: Any, plan: Plan | None = None) -> float:
        """The mean predicted milliseconds per example of `routing`.

        Args:
            routing: an `ExecutionTrace` or `Routes` (anything with
                `.executed`), or `{node: bool (n,)}` of the nodes that ran;
                with `plan`, `{controller: int (n,)}` decisions instead
                (-1 where a controller did not decide).
            plan: the model's `Plan`, to read `routing` as decisions.

        Example:

        ```python
        profile = keras_d2nn.profiling.LatencyProfile(
            {"low": 0.01, "low_head": 0.001, "gate": 0.002, "high": 0.05})
        profile.predict(model.route(images))             # from what ran
        profile.predict({"gate": np.array([0, 1, 1])},   # from decisions
                        plan=model.plan)                # mean of 3 routes
        ```
        """
        executed = getattr(routing, "executed", None)
        if executed is not None:
            return float(np.mean(self.per_example(executed)))
        if plan is None:
            return float(np.mean(self.per_example(routing)))
        unknown = sorted(set(routing) - set(plan.controllers))
        missing = [q for q in plan.controllers if q not in routing]
        if unknown or missing:
            raise ValueError(
                "`routing` read as decisions should name every controller "
                f"{list(plan.controllers)}. Received: {sorted(routing)}"
            )
        index = np.asarray(plan.joint_decision(routing))
        return float(np.mean(self.route_ms(plan)[index]))

    # -- saving ------------------------------------------------------------

    def get_config(self) -> dict:
        """A JSON-able dict; `LatencyProfile.from_config` reads it back.

        Example:

        ```python
        profile = keras_d2nn.profiling.LatencyProfile(
            {"low": 0.01, "low_head": 0.001, "gate": 0.002, "high": 0.05})
        config = profile.get_config()  # JSON-able
        assert type(profile).from_config(config) == profile
        ```
        """
        return {
            "node_ms": dict(self.node_ms),
            "runtime": self.runtime,
            "batch_size": self.batch_size,
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> LatencyProfile:
        """The profile of `get_config()` (or of a JSON file's contents).

        Example:

        ```python
        profile = keras_d2nn.profiling.LatencyProfile(
            {"low": 0.01, "low_head": 0.001, "gate": 0.002, "high": 0.05})
        config = profile.get_config()
        keras_d2nn.profiling.LatencyProfile.from_config(config)
        ```
        """
        return cls(**dict(config))

    def save(self, path: str | os.PathLike[str]) -> None:
        """Writes the profile as JSON to `path`.

        Example:

        ```python
        profile = keras_d2nn.profiling.LatencyProfile(
            {"low": 0.01, "low_head": 0.001, "gate": 0.002, "high": 0.05})
        profile.save("latency.json")
        keras_d2nn.profiling.LatencyProfile.load("latency.json")
        ```
        """
        with open(path, "w", encoding="utf-8") as file:
            json.dump(self.get_config(), file, indent=2, sort_keys=True)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> LatencyProfile:
        """The profile saved at `path` (see `save`).

        Example:

        ```python
        profile = keras_d2nn.profiling.LatencyProfile(
            {"low": 0.01, "low_head": 0.001, "gate": 0.002, "high": 0.05})
        profile.save("latency.json")
        keras_d2nn.profiling.LatencyProfile.load("latency.json")
        ```
        """
        with open(path, encoding="utf-8") as file:
            return cls.from_config(json.load(file))
