"""Which nodes can execute under which controller decisions.

The graph validator must answer questions such as "is this output produced
for every example?" or "can these two merge inputs ever both execute?".
Both depend only on the controllers' decisions, and D2NN graphs have few
controllers with few actions, so we answer them exactly: enumerate every
joint decision (one action per controller) and compute, per node, a boolean
vector over that joint space saying whether the node executes.
"""

import math

import numpy as np

# 4M joint decisions x one byte per node stays well under 100 MB for
# graphs of a few dozen nodes; larger graphs need a symbolic analysis.
MAX_JOINT_DECISIONS = 1 << 22


class DecisionSpace:
    """All joint decisions of a graph's controllers.

    Args:
        controllers: `{name: action_names}` in topological order.

    Example:

    ```python
    space = DecisionSpace({"gate": ("stop", "high")})
    space.chooses("gate", 1)  # array([False, True])
    ```
    """

    def __init__(self, controllers):
        self.controllers = dict(controllers)
        sizes = [len(a) for a in self.controllers.values()]
        self.size = math.prod(sizes) if sizes else 1
        if self.size > MAX_JOINT_DECISIONS:
            raise ValueError(
                f"The graph's {len(sizes)} controllers have {self.size} joint "
                f"decisions; graph validation enumerates them and supports at "
                f"most {MAX_JOINT_DECISIONS}. Use fewer controllers or actions."
            )
        grids = np.indices(sizes).reshape(len(sizes), -1) if sizes else []
        self._decision = {
            name: grids[i] for i, name in enumerate(self.controllers)
        }

    def chooses(self, controller, action):
        """Bool vector: joint decisions where `controller` picks `action`."""
        return self._decision[controller] == action

    def describe(self, index, executes):
        """Human-readable joint decision, naming only controllers that ran."""
        parts = [
            f"{name}={actions[self._decision[name][index]]}"
            for name, actions in self.controllers.items()
            if executes[name][index]
        ]
        return ", ".join(parts) if parts else "any decision"


def execution_conditions(order, space):
    """Per node, the joint decisions under which it executes.

    A node executes when (a) it is an input, or at least one of its data
    inputs executed (absent inputs carry their default value), or it has no
    data inputs; and (b) for every controller that controls it, that
    controller executed and chose one of the actions selecting the node.

    Args:
        order: nodes in topological order; each has `kind`, `inputs` and
            `control` (`{controller: (action indices,)}`).
        space: a `DecisionSpace`.

    Returns:
        `{node name: bool ndarray of shape (space.size,)}`.
    """
    executes = {}
    everywhere = np.ones(space.size, dtype=bool)
    for node in order:
        if node.kind == "input" or not node.inputs:
            data_ok = everywhere
        else:
            data_ok = np.logical_or.reduce([executes[p] for p in node.inputs])
        control_ok = everywhere
        for controller, actions in node.control.items():
            chosen = np.logical_or.reduce(
                [space.chooses(controller, a) for a in actions]
            )
            control_ok = control_ok & executes[controller] & chosen
        executes[node.name] = data_ok & control_ok
    return executes
