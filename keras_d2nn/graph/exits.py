"""Early exits: a controller that either stops at a head's prediction or
goes on to more of the network.

Declared with `Graph.early_exit`, checked when the graph is validated, and
read from `Plan.exits` by what needs them: the two-phase recipe's module
training (every module trains on every example by going on at each exit),
the confidence-threshold baseline (stop where the head is confident) and
the gate diagnostic. Stored in `graph.metadata["exits"]` as dicts
(`controller`, `stop`, `continue`, `head`), the form saved files hold.
"""

import typing

import numpy as np


class EarlyExit(typing.NamedTuple):
    """An early exit of a graph.

    Attributes:
        controller: the Q-node deciding whether to stop.
        stop: its action that answers with `head`'s prediction.
        proceed: its action that goes on to the rest of the network.
        head: the node whose prediction `stop` answers with (a classifier
            over the model's classes, computed before the decision).

    Example:

    ```python
    (exit_,) = model.plan.exits  # high_low's one exit
    exit_.controller, exit_.head  # "gate", "low_head"
    ```
    """

    controller: str
    stop: str
    proceed: str
    head: str

    def as_metadata(self) -> dict[str, str]:
        """The dict stored in `graph.metadata["exits"]`.

        Example:

        ```python
        from keras_d2nn.graph import EarlyExit

        exit_ = EarlyExit("gate", "stop", "high", "low_head")
        exit_.as_metadata()["continue"]  # "high"
        ```
        """
        return {
            "controller": self.controller,
            "stop": self.stop,
            "continue": self.proceed,
            "head": self.head,
        }


def from_metadata(entries) -> tuple[EarlyExit, ...]:
    """The `EarlyExit`s of `graph.metadata["exits"]` (a list of dicts with
    `controller`, `stop`, `continue` and `head`).

    Example:

    ```python
    from keras_d2nn.graph import exits

    exits.from_metadata(model.graph.metadata["exits"])[0].head  # low_head
    ```
    """
    if not isinstance(entries, (list, tuple)):
        raise ValueError(
            "graph.metadata['exits'] should be a list of dicts with keys "
            f"controller, stop, continue, head. Received: {entries!r}"
        )
    found = []
    keys = {"controller", "stop", "continue", "head"}
    for entry in entries:
        if not isinstance(entry, dict) or set(entry) != keys:
            raise ValueError(
                "Each early exit in graph.metadata['exits'] should be a "
                f"dict with keys {sorted(keys)}. Received: {entry!r}"
            )
        found.append(
            EarlyExit(
                entry["controller"],
                entry["stop"],
                entry["continue"],
                entry["head"],
            )
        )
    return tuple(found)


def check(exits, nodes, specs, conditions, output):
    """Raises a ValueError naming the exit at fault unless each exit's
    controller is a Q-node with distinct actions `stop` and `proceed`, at
    most one exit per controller, and its head is a node with the output's
    shape that runs for every example the controller decides for.

    Example: `check(plan.exits, plan.nodes, plan.specs, plan.conditions,
    "logits")`.
    """
    seen = set()
    for exit_ in exits:
        where = f"Early exit at '{exit_.controller}'"
        node = nodes.get(exit_.controller)
        if node is None or node.kind != "q":
            raise ValueError(
                f"{where}: '{exit_.controller}' should be a controller "
                f"(q_node) of the graph. Received: "
                f"{'no such node' if node is None else node.kind + ' node'}"
            )
        if exit_.controller in seen:
            raise ValueError(f"{where}: declared twice.")
        seen.add(exit_.controller)
        for role, action in (("stop", exit_.stop), ("proceed", exit_.proceed)):
            if action not in node.actions:
                raise ValueError(
                    f"{where}: `{role}` should be one of its actions "
                    f"{list(node.actions)}. Received: {role}={action!r}"
                )
        if exit_.stop == exit_.proceed:
            raise ValueError(
                f"{where}: `stop` and `proceed` should be different "
                f"actions. Received: both {exit_.stop!r}"
            )
        if exit_.head not in nodes:
            raise ValueError(
                f"{where}: its head '{exit_.head}' is not a node of the graph."
            )
        head_shape = tuple(specs[exit_.head].shape)
        output_shape = tuple(specs[output].shape)
        if head_shape != output_shape:
            raise ValueError(
                f"{where}: its head '{exit_.head}' should predict what the "
                f"output '{output}' does, shape {output_shape}. Received: "
                f"shape {head_shape}"
            )
        decides = conditions[exit_.controller]
        if not np.all(conditions[exit_.head][decides]):
            raise ValueError(
                f"{where}: its head '{exit_.head}' should run for every "
                f"example '{exit_.controller}' decides for (the head's "
                "prediction is the answer when it stops); it does not."
            )
