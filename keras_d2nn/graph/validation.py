"""Checking a graph description and turning it into a `Plan`.

Every error names the node(s) at fault, what was found and what is
expected: cycles, dangling names, controllers with unknown actions, nodes
that can never run, outputs some example would not reach, merges whose
inputs are not alternatives, and layers or merges whose shapes do not fit.
"""

import dataclasses

import keras
import numpy as np

from keras_d2nn.graph import exits as early_exits
from keras_d2nn.graph import reachability
from keras_d2nn.graph.flops import layer_flops
from keras_d2nn.graph.plan import Plan


class Validator:
    """Validates one graph description; `plan()` returns its `Plan`.

    Args:
        nodes: `{name: Node}` in the order they were added.
        outputs: `(output name, node name)` pairs.
        supervised: `Supervision`s.
        exits: `EarlyExit`s.

    Example: `plan = Validator(nodes, outputs, supervised).plan()`.
    """

    def __init__(self, nodes, outputs, supervised, exits=()):
        self._nodes = dict(nodes)
        self._outputs = list(outputs)
        self._supervised = list(supervised)
        self._exits = tuple(exits)

    def plan(self):
        """Checks everything and returns the `Plan` (builds the layers)."""
        self._check_structure()
        nodes = self._resolve_control()
        order = self._topological_order(nodes)
        controllers = {n.name: n.actions for n in order if n.kind == "q"}
        space = reachability.DecisionSpace(controllers)
        conditions = reachability.execution_conditions(order, space)
        self._check_reachability(order, conditions, space)
        specs, flops = self._infer_shapes_and_flops(order)
        self._check_supervised_shapes(specs)
        by_name = {node.name: node for node in order}
        early_exits.check(
            self._exits, by_name, specs, conditions, self._outputs[0][1]
        )
        return Plan(
            order=tuple(order),
            outputs=tuple(self._outputs),
            supervised=tuple(self._supervised),
            specs=specs,
            flops=flops,
            controllers=tuple(controllers),
            conditions=conditions,
            space=space,
            exits=self._exits,
        )

    def _check_supervised_shapes(self, specs):
        output_name, output_node = self._outputs[0]
        expected = tuple(specs[output_node].shape)
        for supervision in self._supervised:
            shape = tuple(specs[supervision.node].shape)
            if supervision.label_map is None and shape != expected:
                raise ValueError(
                    f"Supervised node '{supervision.node}' has shape {shape}, "
                    f"but the loss compares with labels for output "
                    f"'{output_name}' of shape {expected}."
                )
            if supervision.label_map is not None:
                label_map = supervision.label_map
                if len(label_map) != expected[-1] or (
                    max(label_map) >= shape[-1]
                ):
                    raise ValueError(
                        f"Supervised node '{supervision.node}': `label_map` "
                        f"should map each of the {expected[-1]} classes of "
                        f"output '{output_name}' to one of the node's "
                        f"{shape[-1]} classes. Received: "
                        f"label_map={list(label_map)}"
                    )
            classes = supervision.classes
            if classes is not None and max(classes) >= expected[-1]:
                raise ValueError(
                    f"Supervised node '{supervision.node}': `classes` should "
                    f"be among the {expected[-1]} classes of output "
                    f"'{output_name}'. Received: classes={list(classes)}"
                )

    def _check_structure(self):
        if not any(n.kind == "input" for n in self._nodes.values()):
            raise ValueError(
                "The graph has no input node; add one with "
                "graph.input(name, shape)."
            )
        if not self._outputs:
            raise ValueError(
                "The graph has no output; mark one with "
                "graph.output(node_name)."
            )
        known = sorted(self._nodes)
        for node in self._nodes.values():
            for parent in node.inputs:
                if parent not in self._nodes:
                    raise ValueError(
                        f"Node '{node.name}' takes input '{parent}', which is "
                        f"not a node of the graph. Known nodes: {known}"
                    )
            if node.kind == "input" and node.when:
                raise ValueError(
                    f"Input node '{node.name}' cannot be controlled (`when`)."
                )
            if node.kind in ("f", "q", "merge") and not node.inputs:
                raise ValueError(
                    f"Node '{node.name}' ({node.kind}-node) needs at least one "
                    "data input."
                )
            if node.kind == "dummy" and len(node.inputs) > 1:
                raise ValueError(
                    f"Dummy node '{node.name}' passes on at most one input; "
                    f"received {len(node.inputs)}: {list(node.inputs)}"
                )
            if node.kind == "merge" and len(node.inputs) < 2:
                raise ValueError(
                    f"Merge node '{node.name}' needs at least 2 inputs; "
                    f"received {list(node.inputs)}"
                )
            for parent in node.inputs:
                if self._nodes[parent].kind == "q":
                    raise ValueError(
                        f"Node '{node.name}' takes data from Q-node "
                        f"'{parent}'; a Q-node's output is a decision, not "
                        "data. Use `when=` for control, or read the "
                        "Q-node's own inputs."
                    )
            for parent in node.defaults:
                if parent not in node.inputs:
                    raise ValueError(
                        f"Node '{node.name}' gives a default for '{parent}', "
                        f"which is not one of its inputs {list(node.inputs)}."
                    )
        for supervision in self._supervised:
            node_name = supervision.node
            node = self._nodes.get(node_name)
            if node is None:
                raise ValueError(
                    f"Supervised node '{node_name}' is not a node of the "
                    f"graph. Known nodes: {known}"
                )
            if node.kind == "q" or (node.kind == "dummy" and not node.inputs):
                raise ValueError(
                    f"Supervised node '{node_name}' is a {node.kind}-node "
                    "without a value to compare with the labels."
                )
        for name, node_name in self._outputs:
            if node_name not in self._nodes:
                raise ValueError(
                    f"Output '{name}' refers to '{node_name}', which is not a "
                    f"node of the graph. Known nodes: {known}"
                )

    def _resolve_control(self):
        resolved = {}
        for node in self._nodes.values():
            control = {}
            for controller, action in node.when:
                q = self._nodes.get(controller)
                if q is None:
                    raise ValueError(
                        f"Node '{node.name}' has a control edge from "
                        f"'{controller}', which is not a node of the graph."
                    )
                if q.kind != "q":
                    raise ValueError(
                        f"Node '{node.name}' has a control edge from "
                        f"'{controller}', which is a {q.kind}-node, not a "
                        "Q-node (controller)."
                    )
                if isinstance(action, str):
                    if action not in q.actions:
                        raise ValueError(
                            f"Node '{node.name}': controller '{controller}' "
                            f"has no action '{action}'. Its actions: "
                            f"{list(q.actions)}"
                        )
                    action = q.actions.index(action)
                elif not 0 <= action < len(q.actions):
                    raise ValueError(
                        f"Node '{node.name}': controller '{controller}' has "
                        f"actions 0..{len(q.actions) - 1}; received action "
                        f"{action}."
                    )
                control.setdefault(controller, set()).add(action)
            resolved[node.name] = dataclasses.replace(
                node,
                control={c: tuple(sorted(a)) for c, a in control.items()},
            )
        return resolved

    def _topological_order(self, nodes):
        parents = {
            name: list(node.inputs) + list(node.control)
            for name, node in nodes.items()
        }
        order, state = [], {}

        def visit(name, path):
            if state.get(name) == "done":
                return
            if state.get(name) == "active":
                # The walk follows edges backwards (to parents); report the
                # cycle in the direction data and decisions flow.
                cycle = (path[path.index(name) :] + [name])[::-1]
                raise ValueError(
                    "The graph has a cycle: "
                    + " -> ".join(cycle)
                    + ". A D2NN must be a DAG (data and control edges)."
                )
            state[name] = "active"
            for parent in parents[name]:
                visit(parent, path + [name])
            state[name] = "done"
            order.append(nodes[name])

        for name in nodes:
            visit(name, [])
        return order

    def _check_reachability(self, order, conditions, space):
        for node in order:
            if conditions[node.name].any():
                continue
            if node.control:
                raise ValueError(
                    f"Node '{node.name}' can never execute: no decision of "
                    f"its controllers {list(node.control)} selects it while "
                    f"one of its data inputs {list(node.inputs)} executes. "
                    "Its control edge points at an unreachable node."
                )
            raise ValueError(
                f"Node '{node.name}' can never execute: none of "
                f"its data inputs {list(node.inputs)} ever runs."
            )
        for name, node_name in self._outputs:
            missing = np.flatnonzero(~conditions[node_name])
            if missing.size:
                raise ValueError(
                    f"Output '{name}' is not produced for every example: node "
                    f"'{node_name}' does not execute when "
                    f"{space.describe(missing[0], conditions)}. Close the "
                    "conditional region with a merge of all its branches."
                )
        for node in order:
            if node.kind != "merge" or node.layer is not None:
                continue
            for i, a in enumerate(node.inputs):
                for b in node.inputs[i + 1 :]:
                    both = np.flatnonzero(conditions[a] & conditions[b])
                    if both.size:
                        raise ValueError(
                            f"Merge '{node.name}' selects among alternative "
                            f"inputs, but '{a}' and '{b}' are not "
                            "alternatives: both execute when "
                            f"{space.describe(both[0], conditions)}. Pass "
                            "`combine=` (e.g. keras.layers.Add()) to combine "
                            "inputs that can coexist."
                        )

    def _infer_shapes_and_flops(self, order):
        specs, flops = {}, {}
        for node in order:
            if node.kind == "input":
                spec = keras.KerasTensor((None,) + node.shape, dtype=node.dtype)
                specs[node.name], flops[node.name] = spec, 0.0
                continue
            for parent in node.inputs:
                if specs[parent] is None:
                    raise ValueError(
                        f"Node '{node.name}' takes input from dummy node "
                        f"'{parent}', which has no input and so no value."
                    )
            args = [specs[p] for p in node.inputs]
            if node.kind == "dummy":
                specs[node.name] = args[0] if args else None
                flops[node.name] = 0.0
                continue
            if node.kind == "merge" and node.layer is None:
                self._check_same_shapes(node, args)
                specs[node.name], flops[node.name] = args[0], 0.0
                continue
            call_args = args[0] if len(args) == 1 else args
            try:
                out = node.layer(call_args)
            except Exception as error:  # re-raised with the node named
                shapes = [tuple(a.shape) for a in args]
                raise ValueError(
                    f"Node '{node.name}' ({type(node.layer).__name__}) cannot "
                    f"be applied to its inputs {list(node.inputs)} of shapes "
                    f"{shapes}: {error}"
                ) from error
            if not isinstance(out, keras.KerasTensor):
                raise ValueError(
                    f"Node '{node.name}': its layer should return one tensor; "
                    f"it returned {type(out).__name__}."
                )
            if node.kind == "q":
                expected = (None, node.layer.num_logits)
                if tuple(out.shape) != expected:
                    raise ValueError(
                        f"Q-node '{node.name}' produced logits of shape "
                        f"{tuple(out.shape)}; expected {expected}."
                    )
            if any(d is None for d in out.shape[1:]):
                raise ValueError(
                    f"Node '{node.name}' produces shape {tuple(out.shape)}; "
                    "routed execution needs every dimension but the batch "
                    "to be known. Give the input node a full shape."
                )
            specs[node.name] = out
            if node.cost is not None:
                flops[node.name] = node.cost
            else:
                flops[node.name] = layer_flops(
                    node.layer, call_args, node_name=node.name
                )
        return specs, flops

    @staticmethod
    def _check_same_shapes(node, args):
        first = args[0]
        for parent, spec in zip(node.inputs[1:], args[1:]):
            if tuple(spec.shape[1:]) != tuple(first.shape[1:]) or (
                spec.dtype != first.dtype
            ):
                raise ValueError(
                    f"Merge '{node.name}' has inputs of mismatched shapes: "
                    f"'{node.inputs[0]}' is {tuple(first.shape)} "
                    f"{first.dtype}, '{parent}' is {tuple(spec.shape)} "
                    f"{spec.dtype}. Alternatives must have the same shape."
                )
