"""A measured latency per node: the time-based sibling of the FLOP table.

FLOPs are a poor proxy for time on small layers (a 32-filter convolution
runs at a fraction of the FLOP rate of a large one), so a controller
trained on FLOPs over-uses paths that only look cheap. A `LatencyProfile`
holds what each node took on one runtime at one batch size, in
milliseconds per example; `keras_d2nn.profiling.profile_latency` measures
one, and `D2NNModel.compile(cost="latency", latency_profile=...)` trains
the controllers on it.

Time has a part a FLOP count lacks: what a batch pays once, whatever
its size (a call, a kernel launch, routing's `tf.cond`). A profile fitted
to the routed model's own times (the default of `profile_latency`) keeps
it apart: `base_ms` per batch for every route, and `node_fixed_ms` per
batch in which a node runs for at least one example. A controller's
reward charges each example its share of them as if its whole batch took
its route (`example_ms`); `predict` counts them batch by batch, as the
runtime pays them.

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

from keras_d2nn import storage

if TYPE_CHECKING:
    from keras_d2nn.graph.plan import Plan

# Where a profile can be measured (see `keras_d2nn.profiling`).
RUNTIMES = ("tf_cpu", "litert")


def _checked_ms(name: str, ms: Any) -> float:
    value = float(ms)
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(
            "Every latency should be a finite number of milliseconds >= 0. "
            f"Received: {name}={ms!r}"
        )
    return value


def _check_batch_size(batch_size: Any) -> None:
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, (int, np.integer))
        or batch_size < 1
    ):
        raise ValueError(
            "`batch_size` should be an integer >= 1. "
            f"Received: batch_size={batch_size!r}"
        )


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
        node_fixed_ms: `{node name: milliseconds per batch}` a node costs
            in a batch where it runs for any example, on top of `node_ms`
            per example (default: none).
        base_ms: milliseconds every batch costs whatever its route
            (default 0).

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
    node_fixed_ms: Mapping[str, float] = dataclasses.field(default_factory=dict)
    base_ms: float = 0.0

    def __post_init__(self):
        _check_runtime(self.runtime)
        _check_batch_size(self.batch_size)
        # Frozen: assign through object to store the checked copies.
        for field in ("node_ms", "node_fixed_ms"):
            cleaned = {
                str(node): _checked_ms(f"{field}[{node!r}]", ms)
                for node, ms in dict(getattr(self, field)).items()
            }
            object.__setattr__(self, field, cleaned)
        unknown = sorted(set(self.node_fixed_ms) - set(self.node_ms))
        if unknown:
            raise ValueError(
                f"`node_fixed_ms` names nodes {unknown} that `node_ms` "
                "lacks: every node with a fixed cost needs a cost per "
                "example too (0 is fine)."
            )
        object.__setattr__(
            self, "base_ms", _checked_ms("base_ms", self.base_ms)
        )
        object.__setattr__(self, "batch_size", int(self.batch_size))
        if not self.full_ms() > 0:
            # Every cost fraction divides by it: an all-zero profile made
            # every route free ("0.0 of the latency" on the costliest).
            raise ValueError(
                "a latency profile should give the full network a positive "
                "time; every node's time and the base time are 0. Profile "
                "the model again (python -m keras_d2nn profile)."
            )

    # -- the plan's view ---------------------------------------------------

    def check(self, plan: Plan) -> None:
        """Raises a ValueError unless the profile covers every node of
        `plan` that computes (has a layer or FLOPs) and names no node
        `plan` lacks.

        Example:

        ```python
        profile = keras_d2nn.profiling.LatencyProfile(
            {"low": 0.01, "low_head": 0.001, "gate_features": 0.0005,
             "gate": 0.002, "high": 0.05})
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

    def example_ms(self, node: str) -> float:
        """What an example pays for `node`: its milliseconds per example
        plus its fixed cost per batch shared by a whole batch
        (`node_fixed_ms / batch_size`), 0 for a node left out.

        Example:

        ```python
        profile = keras_d2nn.profiling.LatencyProfile(
            {"low": 0.01, "high": 0.05}, batch_size=64,
            node_fixed_ms={"high": 0.64})
        profile.example_ms("high")  # 0.06: 0.05 + 0.64 / 64
        ```
        """
        fixed = self.node_fixed_ms.get(node, 0.0) / self.batch_size
        return self.node_ms.get(node, 0.0) + fixed

    def base_example_ms(self) -> float:
        """What every example pays whatever its route: `base_ms` shared by
        a batch of `batch_size`.

        Example:

        ```python
        profile = keras_d2nn.profiling.LatencyProfile(
            {"low": 0.01}, batch_size=64, base_ms=0.32)
        profile.base_example_ms()  # 0.005
        ```
        """
        return self.base_ms / self.batch_size

    def node_vector(self, plan: Plan) -> np.ndarray:
        """`example_ms` of each node of `plan`, in the order of
        `plan.order` (0 for nodes the profile leaves out).

        Example:

        ```python
        profile = keras_d2nn.profiling.LatencyProfile(
            {"low": 0.01, "low_head": 0.001, "gate_features": 0.0005,
             "gate": 0.002, "high": 0.05})
        profile.node_vector(model.plan)
        # [0.0, 0.01, 0.001, 0.0005, 0.002, 0.0, 0.05, 0.0]: float64,
        # in plan.order
        ```
        """
        return np.array(
            [self.example_ms(node.name) for node in plan.order],
            dtype=np.float64,
        )

    def full_ms(self) -> float:
        """Milliseconds per example when every node runs for the whole
        batch (`base_example_ms` plus every node's `example_ms`).

        Example:

        ```python
        profile = keras_d2nn.profiling.LatencyProfile(
            {"low": 0.01, "low_head": 0.001, "gate": 0.002, "high": 0.05})
        profile.full_ms()  # 0.063
        ```
        """
        nodes = sum(self.example_ms(node) for node in self.node_ms)
        return float(self.base_example_ms() + nodes)

    def route_ms(self, plan: Plan) -> np.ndarray:
        """Milliseconds per example of each joint decision's route when its
        whole batch takes it (float64, over `plan.space`, as
        `plan.route_flops`).

        Example:

        ```python
        profile = keras_d2nn.profiling.LatencyProfile(
            {"low": 0.01, "low_head": 0.001, "gate": 0.002, "high": 0.05})
        index = model.plan.joint_decision(model.route(images).decisions)
        profile.route_ms(model.plan)[index.numpy()]  # each example's ms
        ```
        """
        executes = np.stack([plan.conditions[n.name] for n in plan.order])
        nodes = self.node_vector(plan) @ executes.astype(np.float64)
        return self.base_example_ms() + nodes

    def per_example(self, executed: Mapping[str, Any]) -> np.ndarray:
        """Milliseconds of each example, from `{node: bool (n,)}`: which
        nodes ran for it (`trace.executed`, `routes.executed`), each
        charged as if its whole batch took its route (`route_ms`).

        Example:

        ```python
        profile = keras_d2nn.profiling.LatencyProfile(
            {"low": 0.01, "low_head": 0.001, "gate": 0.002, "high": 0.05})
        ms = profile.per_example(model.trace(images).executed)
        ms.shape  # (64,): each example's ms
        ```
        """
        ran = self._ran(executed)
        total = np.full(len(next(iter(ran.values()))), self.base_example_ms())
        for node, mask in ran.items():
            total = total + self.example_ms(node) * mask
        return total

    def predict(
        self,
        routing: Any,
        plan: Plan | None = None,
        batch_size: int | None = None,
    ) -> float:
        """The mean predicted milliseconds per example of `routing`, run in
        batches of `batch_size` (default: the profile's) in its order: each
        batch pays `base_ms`, each node's `node_fixed_ms` if it runs for
        any of the batch's examples, and `node_ms` for each example it
        runs for.

        Args:
            routing: an `ExecutionTrace` or `Routes` (anything with
                `.executed`), or `{node: bool (n,)}` of the nodes that ran;
                with `plan`, `{controller: int (n,)}` decisions instead
                (-1 where a controller did not decide).
            plan: the model's `Plan`, to read `routing` as decisions.
            batch_size: examples per batch (>= 1).

        Example:

        ```python
        profile = keras_d2nn.profiling.LatencyProfile(
            {"low": 0.01, "low_head": 0.001, "gate": 0.002, "high": 0.05})
        profile.predict(model.route(images))             # from what ran
        profile.predict({"gate": np.array([0, 1, 1])},   # from decisions
                        plan=model.plan)                # 0.0463: the mean
        ```
        """
        size = self.batch_size if batch_size is None else batch_size
        _check_batch_size(size)
        executed = getattr(routing, "executed", None)
        if executed is None:
            executed = routing if plan is None else self._decided(routing, plan)
        ran = self._ran(executed)
        count = len(next(iter(ran.values())))
        if not count:
            raise ValueError("`routing` holds no example: nothing to predict.")
        total = 0.0
        for start in range(0, count, size):
            total += self.base_ms
            for node, mask in ran.items():
                runs = float(np.sum(mask[start : start + size]))
                fixed = self.node_fixed_ms.get(node, 0.0) if runs else 0.0
                total += fixed + self.node_ms[node] * runs
        return total / count

    def _ran(self, executed: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """`{profiled node: float64 (n,)}` of `executed`'s masks."""
        ran = {
            node: np.asarray(executed[node], dtype=np.float64).reshape(-1)
            for node in self.node_ms
            if node in executed
        }
        if not ran:
            raise ValueError(
                "`executed` names none of the profiled nodes "
                f"{sorted(self.node_ms)}. Received nodes: {sorted(executed)}"
            )
        return ran

    @staticmethod
    def _decided(decisions: Mapping[str, Any], plan: Plan) -> dict:
        """`{node: bool (n,)}` of the routes of `decisions`."""
        unknown = sorted(set(decisions) - set(plan.controllers))
        missing = [q for q in plan.controllers if q not in decisions]
        if unknown or missing:
            raise ValueError(
                "`routing` read as decisions should name every controller "
                f"{list(plan.controllers)}. Received: {sorted(decisions)}"
            )
        index = np.asarray(plan.joint_decision(dict(decisions)))
        return {name: runs[index] for name, runs in plan.conditions.items()}

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
            "node_fixed_ms": dict(self.node_fixed_ms),
            "base_ms": self.base_ms,
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
        storage.write_text_atomically(
            path, json.dumps(self.get_config(), indent=2, sort_keys=True)
        )

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
