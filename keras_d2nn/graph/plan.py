"""The data of a D2NN graph: its nodes, and the validated plan.

Kept apart from `graph.py` (building) and `validation.py` (checking) so
that both, and the execution engine, share one definition.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import TYPE_CHECKING

import numpy as np
import tensorflow as tf

if TYPE_CHECKING:
    import keras

    from keras_d2nn.graph.exits import EarlyExit
    from keras_d2nn.graph.reachability import DecisionSpace


@dataclasses.dataclass(frozen=True)
class Node:
    """One node of a D2NN graph; built by the `Graph` methods, not by hand.

    `control` is filled by validation: `{controller name: (action index,)}`.

    Example:

    ```python
    node = model.plan.nodes["high"]
    node.kind, node.inputs, node.when  # "f", ("image",), (("gate", "high"),)
    node.control  # {"gate": (1,)}
    model.plan.nodes["gate"].actions  # ("stop", "high")
    ```
    """

    name: str
    kind: str
    inputs: tuple[str, ...] = ()
    # A Keras layer (a `Controller` for a Q-node); None for input and dummy
    # nodes and for a merge of alternatives.
    layer: keras.Layer | None = None
    # `(controller, action)` pairs, the action by index or name.
    when: tuple[tuple[str, int | str], ...] = ()
    cost: float | None = None
    defaults: dict[str, float] = dataclasses.field(default_factory=dict)
    shape: tuple[int | None, ...] | None = None
    dtype: str = "float32"
    # An input's declared `(low, high)` (`keras_d2nn.models.value_range`).
    value_range: tuple[float, float] | None = None
    actions: tuple[str, ...] = ()
    control: dict[str, tuple[int, ...]] = dataclasses.field(
        default_factory=dict
    )


@dataclasses.dataclass(frozen=True)
class Supervision:
    """A node trained against the labels (see `Graph.supervise`)."""

    node: str
    weight: float = 1.0
    label_map: tuple[int, ...] | None = None
    classes: tuple[int, ...] | None = None


@dataclasses.dataclass(frozen=True)
class Plan:
    """A validated graph, ready to execute.

    Attributes:
        order: nodes in topological order (data and control edges).
        outputs: `(output name, node name)` pairs.
        supervised: `Supervision`s: nodes with deep supervision.
        specs: `{node name: keras.KerasTensor}` symbolic output of each node
            (`None` for a dummy without inputs).
        flops: `{node name: FLOPs per example}`.
        controllers: names of the Q-nodes, in topological order.
        conditions: `{node name: bool ndarray}` over the joint decisions.
        space: the `reachability.DecisionSpace` of the joint decisions.
        exits: the `EarlyExit`s the graph declares (`Graph.early_exit`).

    Example:

    ```python
    plan = model.plan  # or graph.validate()
    [node.name for node in plan.order]  # ["image", "low", ..., "logits"]
    plan.controllers, plan.flops["high"], plan.full_flops
    ```
    """

    order: tuple[Node, ...]
    outputs: tuple[tuple[str, str], ...]
    supervised: tuple[Supervision, ...]
    specs: dict[str, keras.KerasTensor | None]
    flops: dict[str, float]
    controllers: tuple[str, ...]
    conditions: dict[str, np.ndarray]
    space: DecisionSpace
    exits: tuple[EarlyExit, ...] = ()

    @functools.cached_property
    def nodes(self) -> dict[str, Node]:
        """`{name: node}`."""
        return {node.name: node for node in self.order}

    @functools.cached_property
    def route_flops(self) -> np.ndarray:
        """FLOPs per example of each joint decision's route (float64, over
        `space`, as `conditions`)."""
        names = list(self.flops)
        flops = np.array([self.flops[n] for n in names], dtype=np.float64)
        executes = np.stack([self.conditions[n] for n in names]).astype(float)
        return flops @ executes

    def joint_decision(self, decisions: dict) -> tf.Tensor:
        """The index into `route_flops` of each example's decisions
        (`{controller: int tensor (batch,)}`, -1 where a controller did
        not decide: its choice changes nothing then).

        Example:

        ```python
        decisions = model.route(test_images).decisions
        index = model.plan.joint_decision(decisions).numpy()
        model.plan.route_flops[index]  # each example's FLOPs
        ```
        """
        index = None
        for q in self.controllers:
            action = tf.maximum(tf.cast(decisions[q], tf.int32), 0)
            size = len(self.nodes[q].actions)
            index = action if index is None else index * size + action
        if index is None:
            raise ValueError("joint_decision: the graph has no controller.")
        return index

    @property
    def full_flops(self) -> float:
        """FLOPs per example of the dearest route: the network a user calls
        full, against which cost fractions are reported. Alternative
        versions of a stage (the chain's widths, the hierarchical
        model's experts) never run together, so adding them all up
        (`all_nodes_flops`) would count a network that never runs."""
        routes = self.route_flops
        if routes.size == 0:
            return self.all_nodes_flops
        return float(routes.max())

    @property
    def all_nodes_flops(self) -> float:
        """FLOPs per example were every node to execute at once."""
        return float(sum(self.flops.values()))
