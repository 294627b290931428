"""Describe a D2NN as a DAG, validate it, and turn it into an execution plan.

A `Graph` holds input nodes, F-nodes (any Keras layer or model), Q-nodes
(controllers), dummy nodes, merge nodes and outputs. Nodes name their data
parents in `inputs` and their controllers in `when`. `Graph.validate()`
checks the whole description and returns a `Plan`: the nodes in topological
order with resolved control edges, output shapes and FLOP costs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from collections.abc import Mapping
from typing import Any
from typing import Self
from typing import TypeAlias

import keras
import numpy as np

from keras_d2nn.graph import exits
from keras_d2nn.graph import value_range as value_range_checks
from keras_d2nn.graph.plan import Node
from keras_d2nn.graph.plan import Plan  # noqa: F401  (part of this module's API)
from keras_d2nn.graph.plan import Supervision
from keras_d2nn.graph.validation import Validator

NODE_KINDS = ("input", "f", "q", "dummy", "merge")

# A controller's action, by index or by name.
Action: TypeAlias = "int | np.integer | str"
# `when=`: one `(controller, action)` pair, or several.
When: TypeAlias = (
    "tuple[str, Action] | Iterable[tuple[str, Action] | list[str | Action]]"
)


def _as_names(value, what):
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    names = tuple(value)
    for name in names:
        if not isinstance(name, str):
            raise TypeError(
                f"{what} should name nodes with strings. Received: {value!r}"
            )
    return names


def _as_when(value, node_name):
    """Normalises `when` to a tuple of `(controller, action)` pairs."""
    if value is None:
        return ()
    if (
        isinstance(value, tuple)
        and len(value) == 2
        and isinstance(value[0], str)
        and isinstance(value[1], (int, str, np.integer))
    ):
        value = [value]
    pairs = []
    for item in value:
        if not (isinstance(item, (tuple, list)) and len(item) == 2):
            raise TypeError(
                f"Node '{node_name}': `when` should be a (controller, action) "
                f"pair or a list of them. Received: when={value!r}"
            )
        controller, action = item
        if isinstance(action, np.integer):
            action = int(action)
        pairs.append((controller, action))
    return tuple(pairs)


class Graph:
    """A D2NN described as a DAG of nodes with data and control edges.

    Nodes are added by name; a node names its data parents in `inputs` and,
    if it is conditional, the controller actions that select it in `when`.
    Forward references are allowed: everything is checked by `validate()`
    (called by `D2NNModel`), which raises a `ValueError` naming the culprit
    for a cycle, a dangling name, a node that can never execute, an output
    that some example would not reach, a merge whose inputs are not
    alternatives, or layers whose shapes do not fit.

    Execution semantics (docs/concepts.md): a node with control edges runs
    for an example only if every controlling Q-node ran and chose one of the
    actions that select it; any node runs only if at least one data parent
    ran for that example (absent parents pass their default, zeros unless
    given in `defaults`). Dummy nodes pass their input through at no cost.

    Example:

    ```python
    import keras
    import keras_d2nn

    graph = keras_d2nn.Graph()
    graph.input("image", shape=(28, 28, 1))
    graph.f_node("low", keras.Sequential([keras.layers.Flatten(),
                                          keras.layers.Dense(16, "relu")]),
                 inputs="image")
    graph.f_node("low_head", keras.layers.Dense(10), inputs="low")
    graph.q_node("gate", keras_d2nn.Controller(2), inputs="low",
                 actions=("stop", "high"))
    graph.dummy("stop", inputs="low_head", when=("gate", "stop"))
    graph.f_node("high", keras.Sequential([keras.layers.Flatten(),
                                           keras.layers.Dense(10)]),
                 inputs="image", when=("gate", "high"))
    graph.merge("logits", inputs=["stop", "high"])
    graph.output("logits")
    plan = graph.validate()
    ```
    """

    def __init__(self) -> None:
        self._nodes: dict[str, Node] = {}
        self._outputs: list[tuple[str, str]] = []
        self._supervised: list[Supervision] = []
        # Free-form, JSON-able facts about the graph that tools read, e.g.
        # the early exits of a cascade for the threshold baseline.
        self.metadata: dict[str, Any] = {}

    # -- building -----------------------------------------------------------

    def _add(self, node):
        if not isinstance(node.name, str) or not node.name:
            raise ValueError(
                "Node names should be non-empty strings. Received: "
                f"{node.name!r}"
            )
        if node.name in self._nodes:
            raise ValueError(
                f"A node named '{node.name}' is already in the graph; node "
                "names must be unique."
            )
        self._nodes[node.name] = node
        return node.name

    def input(
        self,
        name: str,
        shape: Iterable[int | None],
        dtype: str = "float32",
        value_range: tuple[float, float] | None = None,
    ) -> str:
        """Adds an input node; `shape` excludes the batch dimension.

        Args:
            name: the input's name (the key of a dict of inputs, and the
                exported signature's input).
            shape: dimensions without the batch one; None for any size.
            dtype: what it holds; a float input refuses integers (they
                were not scaled as in training).
            value_range: `(low, high)`, the values the model is trained
                on (after scaling). The model and its exports then refuse
                (or flag) examples holding values beyond it, which it
                would otherwise answer confidently and wrongly: raw 0..255
                pixels for a 0..1 input, say (`keras_d2nn.models.value_range`).
                None (the default): not checked.

        Example:

        ```python
        graph = keras_d2nn.Graph()
        graph.input("image", shape=(28, 28, 1))  # "image": the name
        graph.input("token_ids", shape=(None,), dtype="int32")  # any length
        graph.input("pixels", shape=(64,), value_range=(0.0, 1.0))
        ```
        """
        try:
            shape = tuple(None if d is None else int(d) for d in shape)
        except (TypeError, ValueError):
            raise ValueError(
                f"Input '{name}': `shape` should be a tuple of dimensions "
                f"without the batch dimension. Received: shape={shape!r}"
            ) from None
        return self._add(
            Node(
                name=name,
                kind="input",
                shape=shape,
                dtype=dtype,
                value_range=value_range_checks.validated(
                    name, value_range, dtype
                ),
            )
        )

    def f_node(
        self,
        name: str,
        layer: keras.Layer,
        inputs: str | Iterable[str],
        *,
        when: When | None = None,
        cost: float | None = None,
        defaults: Mapping[str, float] | None = None,
    ) -> str:
        """Adds an F-node: a Keras layer or model applied to `inputs`.

        Args:
            name: unique node name.
            layer: any `keras.layers.Layer` (a model included) returning one
                tensor. Several inputs are passed to it as a list.
            inputs: name or list of names of the data parents.
            when: `(controller, action)` or a list of them: the node runs
                only when one of these actions is chosen.
            cost: FLOPs per example to use instead of the counted ones.
            defaults: `{parent name: value}` seen when that parent did not
                execute for an example (default 0).

        Example:

        ```python
        graph = keras_d2nn.Graph()
        graph.input("image", shape=(28, 28, 1))
        graph.f_node("features", keras.layers.Flatten(), inputs="image")
        graph.f_node("logits", keras.layers.Dense(10), inputs="features")
        graph.output("logits")
        graph.validate().flops["logits"]  # 15690.0: 2 * 784 * 10 + 10
        ```
        """
        if not isinstance(layer, keras.layers.Layer):
            raise TypeError(
                f"F-node '{name}' needs a keras.layers.Layer (a layer or a "
                f"model). Received: {type(layer).__name__}"
            )
        return self._add(
            self._make(name, "f", layer, inputs, when, cost, defaults)
        )

    def q_node(
        self,
        name: str,
        controller: keras.Layer,
        inputs: str | Iterable[str],
        *,
        actions: int | Iterable[str] | None = None,
        when: When | None = None,
        cost: float | None = None,
        defaults: Mapping[str, float] | None = None,
    ) -> str:
        """Adds a Q-node: a controller choosing one of its actions.

        Args:
            controller: a `keras_d2nn.Controller`.
            actions: names of the actions (defaults to `"0"`, `"1"`, ...);
                their number must equal `controller.num_actions`, and be >= 2.
            other arguments: as for `f_node`.

        Example:

        ```python
        graph = keras_d2nn.Graph()
        graph.input("x", shape=(8,))
        graph.q_node("gate", keras_d2nn.Controller(2), inputs="x",
                     actions=("small", "big"))
        graph.f_node("small", keras.layers.Dense(3), inputs="x",
                     when=("gate", "small"))
        graph.f_node("big", keras.Sequential([keras.layers.Dense(64, "relu"),
                                              keras.layers.Dense(3)]),
                     inputs="x", when=("gate", "big"))
        graph.merge("y", inputs=["small", "big"])
        graph.output("y")
        graph.validate().controllers  # ("gate",)
        ```
        """
        num_actions = getattr(controller, "num_actions", None)
        if num_actions is None or not hasattr(controller, "decide"):
            raise TypeError(
                f"Q-node '{name}' needs a keras_d2nn.Controller. Received: "
                f"{type(controller).__name__}"
            )
        if actions is None:
            actions = tuple(str(i) for i in range(num_actions))
        elif isinstance(actions, int):
            actions = tuple(str(i) for i in range(actions))
        else:
            actions = tuple(str(a) for a in actions)
        if len(actions) < 2:
            raise ValueError(
                f"Q-node '{name}' should have at least 2 actions. Received: "
                f"{len(actions)} ({actions!r})"
            )
        if len(set(actions)) != len(actions):
            raise ValueError(
                f"Q-node '{name}' has duplicate action names: {actions!r}"
            )
        if len(actions) != num_actions:
            raise ValueError(
                f"Q-node '{name}' names {len(actions)} actions but its "
                f"controller has num_actions={num_actions}."
            )
        node = self._make(name, "q", controller, inputs, when, cost, defaults)
        return self._add(dataclasses.replace(node, actions=actions))

    def dummy(
        self,
        name: str,
        inputs: str | Iterable[str] | None = None,
        *,
        when: When | None = None,
    ) -> str:
        """Adds a dummy node: passes its single input on, costs nothing.

        Without inputs it produces no value and only marks "do nothing".

        Example:

        ```python
        graph = keras_d2nn.Graph()
        graph.input("x", shape=(8,))
        graph.f_node("head", keras.layers.Dense(3), inputs="x")
        graph.q_node("gate", keras_d2nn.Controller(2), inputs="x",
                     actions=("stop", "more"))
        # The dummy "stop" passes the head's output on when the gate stops.
        graph.dummy("stop", inputs="head", when=("gate", "stop"))
        graph.f_node("more", keras.layers.Dense(3), inputs="x",
                     when=("gate", "more"))
        graph.merge("y", inputs=["stop", "more"])
        graph.output("y")
        graph.validate().flops["stop"]  # 0.0
        ```
        """
        return self._add(
            self._make(name, "dummy", None, inputs, when, 0.0, None)
        )

    def merge(
        self,
        name: str,
        inputs: Iterable[str],
        *,
        combine: keras.Layer | None = None,
        when: When | None = None,
        defaults: Mapping[str, float] | None = None,
    ) -> str:
        """Adds a merge node closing a conditional region.

        Args:
            inputs: names of the alternative branches.
            combine: `None` (default) requires the inputs to be alternatives
                (never two for one example) and passes on the one that ran.
                Otherwise a Keras layer (e.g. `keras.layers.Add()`) applied to
                the list of inputs, absent ones replaced by their defaults.

        Example:

        ```python
        graph = keras_d2nn.Graph()
        graph.input("x", shape=(8,))
        graph.f_node("always", keras.layers.Dense(3), inputs="x")
        graph.q_node("gate", keras_d2nn.Controller(2), inputs="x")
        graph.f_node("extra", keras.layers.Dense(3), inputs="x",
                     when=("gate", 1))
        # Where "extra" did not run, Add receives its default: zeros.
        graph.merge("y", inputs=["always", "extra"],
                    combine=keras.layers.Add())
        graph.output("y")
        keras_d2nn.D2NNModel(graph)(np.ones((2, 8), "float32")).shape  # (2, 3)
        ```
        """
        if combine is not None and not isinstance(combine, keras.layers.Layer):
            raise TypeError(
                f"Merge '{name}': `combine` should be None or a Keras layer. "
                f"Received: combine of type {type(combine).__name__}"
            )
        return self._add(
            self._make(name, "merge", combine, inputs, when, None, defaults)
        )

    def output(self, node: str, name: str | None = None) -> str:
        """Marks `node`'s value as a model output (named `name` or `node`).

        Example:

        ```python
        graph = keras_d2nn.Graph()
        graph.input("x", shape=(8,))
        graph.f_node("dense", keras.layers.Dense(3), inputs="x")
        graph.output("dense", name="logits")
        trace = keras_d2nn.D2NNModel(graph).trace(np.ones((2, 8), "float32"))
        list(trace.outputs)  # ["logits"]
        ```
        """
        name = node if name is None else name
        if any(existing == name for existing, _ in self._outputs):
            raise ValueError(f"An output named '{name}' already exists.")
        self._outputs.append((name, node))
        return name

    def supervise(
        self,
        node: str,
        weight: float = 1.0,
        label_map: Iterable[int] | None = None,
        classes: Iterable[int] | None = None,
    ) -> str:
        """Trains `node`'s value against the labels too (deep supervision).

        The model's loss is applied to `node` on the examples it ran for,
        weighted by `weight`. Use it for intermediate classifiers (the low
        head of high-low, the early exits of a cascade): otherwise they learn
        only from the examples whose prediction they produced, and a
        controller that stops using them starves them.

        Args:
            node: the node's name.
            weight: weight of this loss term (> 0).
            label_map: optional list mapping each class index to a target
                class of this node (e.g. fine classes to coarse groups);
                needs sparse integer labels.
            classes: optional class indices: the loss counts only the
                examples of those classes (an expert of some classes);
                needs sparse integer labels.

        Example:

        ```python
        graph = keras_d2nn.Graph()
        graph.input("x", shape=(8,))
        graph.f_node("early", keras.layers.Dense(3), inputs="x")
        graph.f_node("late", keras.layers.Dense(3), inputs="early")
        graph.output("late")
        graph.supervise("early", weight=0.5)  # learns the labels too
        d2nn = keras_d2nn.D2NNModel(graph)
        d2nn.compile("adam", loss)
        d2nn.fit(np.ones((4, 8), "float32"), np.arange(4) % 3, verbose=0)
        ```
        """
        weight = float(weight)
        if not (np.isfinite(weight) and weight > 0):
            raise ValueError(
                f"Supervised node '{node}': `weight` should be > 0. "
                f"Received: weight={weight}"
            )
        if any(existing.node == node for existing in self._supervised):
            raise ValueError(f"Node '{node}' is already supervised.")
        if label_map is not None:
            label_map = tuple(int(c) for c in label_map)
            if not label_map or min(label_map) < 0:
                raise ValueError(
                    f"Supervised node '{node}': `label_map` should list a "
                    "target class >= 0 per label. Received: "
                    f"label_map={label_map}"
                )
        if classes is not None:
            classes = tuple(int(c) for c in classes)
            if not classes or min(classes) < 0:
                raise ValueError(
                    f"Supervised node '{node}': `classes` should list class "
                    f"indices >= 0. Received: classes={classes}"
                )
        self._supervised.append(Supervision(node, weight, label_map, classes))
        return node

    def early_exit(
        self, controller: str, *, head: str, stop: str, proceed: str
    ) -> str:
        """Declares an early exit: `controller`'s action `stop` answers with
        `head`'s prediction, its action `proceed` goes on to the rest of
        the network.

        What reads it: the two-phase recipe trains every module on every
        example by going on at each exit (`FullInformation`'s
        `module_routing="auto"`), the confidence-threshold baseline stops
        where the head is confident (`experiments.baselines`), and the
        gate diagnostic compares the gate with the head's confidence.
        Without it they cannot tell an exit from any other choice. Checked
        by `validate()`: a controller with both actions, a head with the
        output's shape that runs whenever the controller decides.

        Args:
            controller: the Q-node's name.
            head: the node whose prediction `stop` answers with.
            stop: the controller's action that stops.
            proceed: the controller's action that goes on.

        Returns:
            The controller's name.

        Example:

        ```python
        graph = keras_d2nn.Graph()
        graph.input("x", shape=(8,))
        graph.f_node("cheap", keras.layers.Dense(3), inputs="x")
        graph.q_node("gate", keras_d2nn.Controller(2), inputs="cheap",
                     actions=("stop", "more"))
        graph.dummy("stop", inputs="cheap", when=("gate", "stop"))
        graph.f_node("expensive", keras.layers.Dense(3), inputs="x",
                     when=("gate", "more"))
        graph.merge("logits", inputs=["stop", "expensive"])
        graph.output("logits")
        graph.supervise("cheap")
        graph.early_exit("gate", head="cheap", stop="stop", proceed="more")
        keras_d2nn.D2NNModel(graph).plan.exits[0].head  # "cheap"
        ```
        """
        for role, value in (
            ("controller", controller),
            ("head", head),
            ("stop", stop),
            ("proceed", proceed),
        ):
            if not isinstance(value, str) or not value:
                raise ValueError(
                    f"early_exit: `{role}` should be a non-empty string (a "
                    f"{'node' if role in ('controller', 'head') else 'action'}"
                    f" name). Received: {role}={value!r}"
                )
        declared = exits.from_metadata(self.metadata.get("exits", []))
        if any(e.controller == controller for e in declared):
            raise ValueError(
                f"An early exit at '{controller}' is already declared."
            )
        entry = exits.EarlyExit(controller, stop, proceed, head)
        self.metadata["exits"] = [e.as_metadata() for e in declared] + [
            entry.as_metadata()
        ]
        return controller

    def _make(self, name, kind, layer, inputs, when, cost_override, defaults):
        if cost_override is not None:
            cost_override = float(cost_override)
            if not np.isfinite(cost_override) or cost_override < 0:
                raise ValueError(
                    f"Node '{name}': `cost` should be a finite number >= 0. "
                    f"Received: cost={cost_override}"
                )
        return Node(
            name=name,
            kind=kind,
            inputs=_as_names(inputs, f"Node '{name}' inputs"),
            layer=layer,
            when=_as_when(when, name),
            cost=cost_override,
            defaults={k: float(v) for k, v in (defaults or {}).items()},
        )

    @property
    def nodes(self) -> tuple[Node, ...]:
        """The nodes in the order they were added."""
        return tuple(self._nodes.values())

    @property
    def outputs(self) -> tuple[tuple[str, str], ...]:
        """`((output name, node name), ...)`, as `output` declared them.

        Example: `model.graph.outputs  # (("logits", "logits"),)`.
        """
        return tuple(self._outputs)

    @property
    def supervised(self) -> tuple[Supervision, ...]:
        """The `Supervision`s: nodes trained against the labels."""
        return tuple(self._supervised)

    # -- validation ---------------------------------------------------------

    def validate(self) -> Plan:
        """Checks the graph and returns its `Plan`.

        Builds every layer on symbolic inputs (so shapes are checked and
        weights created), counts FLOPs, and checks reachability exactly.

        Example:

        ```python
        plan = model.graph.validate()  # high_low's graph
        plan.controllers, plan.full_flops
        ```
        """
        return Validator(
            self._nodes,
            self._outputs,
            self._supervised,
            exits.from_metadata(self.metadata.get("exits", [])),
        ).plan()

    # -- serialisation ------------------------------------------------------

    def get_config(self) -> dict[str, Any]:
        """A JSON-able description; layers are serialised with Keras.

        A layer object used by several nodes is stored once and referenced.

        Example:

        ```python
        import json

        config = model.graph.get_config()
        json.dumps(config)[:40]  # '{"nodes": [{"name": "image", "kind": "in'
        ```
        """
        seen: dict[int, str] = {}
        nodes = []
        for node in self._nodes.values():
            if node.layer is None:
                layer = None
            elif id(node.layer) in seen:
                layer = {"shared_with": seen[id(node.layer)]}
            else:
                seen[id(node.layer)] = node.name
                layer = keras.saving.serialize_keras_object(node.layer)
            nodes.append(
                {
                    "name": node.name,
                    "kind": node.kind,
                    "inputs": list(node.inputs),
                    "layer": layer,
                    "when": [list(pair) for pair in node.when],
                    "cost": node.cost,
                    "defaults": dict(node.defaults),
                    "shape": None if node.shape is None else list(node.shape),
                    "dtype": node.dtype,
                    "actions": list(node.actions),
                    # Only where declared: older releases read the rest.
                    **(
                        {"value_range": list(node.value_range)}
                        if node.value_range is not None
                        else {}
                    ),
                }
            )
        return {
            "nodes": nodes,
            "outputs": [list(pair) for pair in self._outputs],
            "supervised": [
                {
                    "node": s.node,
                    "weight": s.weight,
                    "label_map": None
                    if s.label_map is None
                    else list(s.label_map),
                    "classes": None if s.classes is None else list(s.classes),
                }
                for s in self._supervised
            ],
            "metadata": dict(self.metadata),
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Self:
        """Rebuilds a graph written by `get_config`.

        Example:

        ```python
        graph = keras_d2nn.Graph.from_config(model.graph.get_config())
        # The same nodes, with new layers (not the weights).
        keras_d2nn.D2NNModel(graph).plan.full_flops == model.plan.full_flops
        ```
        """
        graph = cls()
        layers: dict[str, keras.Layer | None] = {}
        for item in config["nodes"]:
            layer = item["layer"]
            if isinstance(layer, dict) and "shared_with" in layer:
                layer = layers[layer["shared_with"]]
            elif layer is not None:
                layer = keras.saving.deserialize_keras_object(layer)
            layers[item["name"]] = layer
            graph._add(
                Node(
                    name=item["name"],
                    kind=item["kind"],
                    inputs=tuple(item["inputs"]),
                    layer=layer,
                    when=tuple(tuple(pair) for pair in item["when"]),
                    cost=item["cost"],
                    defaults=dict(item["defaults"]),
                    shape=None
                    if item["shape"] is None
                    else tuple(item["shape"]),
                    dtype=item["dtype"],
                    actions=tuple(item["actions"]),
                    value_range=None
                    if item.get("value_range") is None
                    else tuple(item["value_range"]),
                )
            )
        for name, node_name in config["outputs"]:
            graph.output(node_name, name)
        for supervision in config.get("supervised", []):
            graph.supervise(**supervision)
        graph.metadata.update(config.get("metadata", {}))
        return graph
