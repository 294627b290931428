"""What the reward charges an example for the nodes it ran.

By default the cost is FLOPs, counted by the execution engine
(`trace.executed_flops`). With a measured `LatencyProfile`
(`compile(cost="latency", latency_profile=...)`) it is the predicted
milliseconds of the nodes that ran. Either way the reward, the budget
and `calibrate_budget` see the same thing: the cost as a fraction of
running every node, so `cost_weight` and `target_cost` keep their
meaning whatever the unit.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from keras_d2nn.graph.latency_profile import LatencyProfile

COSTS = ("flops", "latency")


@dataclasses.dataclass(frozen=True)
class CostMeasure:
    """The cost of a route: FLOPs or predicted milliseconds per example.

    Make one with `CostMeasure.flops(plan)` or
    `CostMeasure.latency(plan, profile)`.

    Attributes:
        kind: `"flops"` or `"latency"`.
        unit: `"FLOPs"` or `"ms"` (for messages and reports).
        node_costs: `{node: cost per example}` in that unit.
        full: the cost per example when every node runs.
        route_costs: float64 cost of each joint decision's route, over
            `plan.space` (as `plan.route_flops`).
        profile: the `LatencyProfile` of a latency cost, else None.
        base: the cost every example pays whatever its route (a
            profile's `base_example_ms`; 0 for FLOPs).

    Example:

    ```python
    from keras_d2nn.estimators.cost import CostMeasure

    measure = CostMeasure.flops(model.plan)
    measure.fraction(model.trace(images[:8]))  # FLOPs / full FLOPs
    ```
    """

    kind: str
    unit: str
    node_costs: dict
    full: float
    route_costs: np.ndarray
    profile: LatencyProfile | None = None
    base: float = 0.0

    @classmethod
    def flops(cls, plan) -> CostMeasure:
        """The default cost: the FLOPs of the nodes that ran.

        Example:

        ```python
        from keras_d2nn.estimators.cost import CostMeasure

        CostMeasure.flops(model.plan).full == model.full_flops  # True
        ```
        """
        return cls(
            kind="flops",
            unit="FLOPs",
            node_costs=dict(plan.flops),
            full=plan.full_flops,
            route_costs=plan.route_flops,
        )

    @classmethod
    def latency(cls, plan, profile: LatencyProfile) -> CostMeasure:
        """The predicted milliseconds per example of the nodes that ran,
        from `profile` (checked against `plan`).

        Example:

        ```python
        from keras_d2nn.estimators.cost import CostMeasure

        profile = keras_d2nn.profiling.LatencyProfile(
            {"low": 0.01, "low_head": 0.001, "gate_features": 0.0005,
             "gate": 0.002, "high": 0.05})
        CostMeasure.latency(model.plan, profile).full  # 0.0635: ms
        ```
        """
        if not isinstance(profile, LatencyProfile):
            raise ValueError(
                "`latency_profile` should be a "
                "keras_d2nn.profiling.LatencyProfile. Received: "
                f"latency_profile={profile!r}"
            )
        profile.check(plan)
        node_costs = {
            node.name: profile.example_ms(node.name) for node in plan.order
        }
        return cls(
            kind="latency",
            unit="ms",
            node_costs=node_costs,
            full=profile.full_ms(),
            route_costs=profile.route_ms(plan),
            profile=profile,
            base=profile.base_example_ms(),
        )

    def executed(self, trace) -> tf.Tensor:
        """float32 `(batch,)`: each example's cost in `trace`.

        Example:

        ```python
        from keras_d2nn.estimators.cost import CostMeasure

        CostMeasure.flops(model.plan).executed(model.trace(images[:8]))
        ```
        """
        if self.kind == "flops":
            return trace.executed_flops  # counted by the engine already
        return self._weighted(
            {n: tf.cast(ran, tf.float32) for n, ran in trace.executed.items()}
        )

    def soft_executed(self, trace) -> tf.Tensor:
        """float32 `(batch,)`: `executed`, differentiable in the relaxed
        decisions of straight-through controllers (Gumbel); needs a trace
        of a straight-through pass.

        Example:

        ```python
        from keras_d2nn.estimators.cost import CostMeasure

        trace = model.trace(images[:8], training=True, mode="masked",
                            straight_through={"gate": 1.0})
        CostMeasure.flops(model.plan).soft_executed(trace)
        ```
        """
        if self.kind == "flops":
            return trace.soft_executed_flops
        return self._weighted(trace.soft_executed)

    def fraction(self, trace) -> tf.Tensor:
        """float32 `(batch,)`: `executed` over the full network's cost.

        Example:

        ```python
        from keras_d2nn.estimators.cost import CostMeasure

        CostMeasure.flops(model.plan).fraction(model.trace(images[:8]))
        ```
        """
        return self.executed(trace) / (self.full or 1.0)

    def _weighted(self, indicators):
        """`base` plus the sum of each node's cost times its indicator
        `(batch,)`."""
        terms = [
            cost * indicators[node]
            for node, cost in self.node_costs.items()
            if cost and node in indicators
        ]
        like = next(iter(indicators.values()))
        base = tf.fill(tf.shape(like), tf.constant(self.base, tf.float32))
        return tf.add_n([base] + terms)


def check_cost(cost, latency_profile):
    """`cost` after checking it goes with `latency_profile`, or a
    ValueError naming what is wrong.

    Example:

    ```python
    from keras_d2nn.estimators.cost import check_cost

    check_cost("flops", None)  # "flops"
    ```
    """
    if cost not in COSTS:
        raise ValueError(
            f"`cost` should be one of {COSTS}. Received: cost={cost!r}"
        )
    if cost == "latency" and latency_profile is None:
        raise ValueError(
            "cost='latency' needs a `latency_profile` "
            "(keras_d2nn.profiling.profile_latency(model)). "
            "Received: latency_profile=None"
        )
    if cost == "flops" and latency_profile is not None:
        raise ValueError(
            "A `latency_profile` is used only with cost='latency'; "
            "pass cost='latency' to train on it, or leave it out. "
            "Received: cost='flops'"
        )
    return cost
