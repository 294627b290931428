"""The data of a D2NN graph: its nodes, and the validated plan.

Kept apart from `graph.py` (building) and `validation.py` (checking) so
that both, and the execution engine, share one definition.
"""

import dataclasses
import functools


@dataclasses.dataclass(frozen=True)
class Node:
    """One node of a D2NN graph; built by the `Graph` methods, not by hand.

    `control` is filled by validation: `{controller name: (action index,)}`.
    """

    name: str
    kind: str
    inputs: tuple = ()
    layer: object = None
    when: tuple = ()
    cost: object = None
    defaults: dict = dataclasses.field(default_factory=dict)
    shape: tuple = None
    dtype: str = "float32"
    actions: tuple = ()
    control: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Supervision:
    """A node trained against the labels (see `Graph.supervise`)."""

    node: str
    weight: float = 1.0
    label_map: tuple = None


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
    """

    order: tuple
    outputs: tuple
    supervised: tuple
    specs: dict
    flops: dict
    controllers: tuple
    conditions: dict
    space: object

    @functools.cached_property
    def nodes(self):
        """`{name: node}`."""
        return {node.name: node for node in self.order}

    @property
    def full_flops(self):
        """FLOPs per example when every node executes."""
        return float(sum(self.flops.values()))
