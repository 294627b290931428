"""The static network behind one route of a D2NN, as a plain Keras model.

A constant route (every controller always taking the same action) turns a
D2NN into an ordinary feed-forward network: the nodes on the route, run on
the whole batch, with no controllers, masks, gathers or scatters. This is
the "equivalent static network" the speed benchmarks compare against, and a
way to ship one route alone. It shares its layers (and weights) with the
D2NN.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import TYPE_CHECKING

import keras
import numpy as np

from keras_d2nn.layers.fill_like import FillLike

if TYPE_CHECKING:
    from keras_d2nn.graph import Plan
    from keras_d2nn.models import D2NNModel


def route_nodes(plan: Plan, route: Mapping[str, int]) -> set[str]:
    """Names of the nodes that run when every controller follows `route`.

    Args:
        plan: a `graph.Plan`.
        route: `{controller: action index}` for every controller.

    Example: `route_nodes(model.plan, {"gate": 1})  # {"image", "low", ...}`.
    """
    missing = [q for q in plan.controllers if q not in route]
    if missing:
        raise ValueError(
            f"A static route needs an action for every controller; missing: "
            f"{missing}. Received: route={route}"
        )
    for q, action in route.items():
        actions = plan.nodes[q].actions if q in plan.nodes else None
        if actions is None or q not in plan.controllers:
            raise ValueError(
                f"'{q}' is not a controller of this graph; controllers: "
                f"{list(plan.controllers)}"
            )
        if not 0 <= int(action) < len(actions):
            raise ValueError(
                f"Controller '{q}' has actions 0..{len(actions) - 1} "
                f"{list(actions)}; received {action}."
            )
    sizes = [len(plan.nodes[q].actions) for q in plan.controllers]
    joint = tuple(int(route[q]) for q in plan.controllers)
    index = int(np.ravel_multi_index(joint, sizes)) if sizes else 0
    return {name for name, ran in plan.conditions.items() if ran[index]}


def static_routes(
    plan: Plan, max_routes: int = 8
) -> list[tuple[str, dict[str, int]]]:
    """Constant routings that give distinct static networks.

    Enumerates every joint decision, keeps one per distinct set of executed
    nodes, and names it by the decisions of the controllers that run. When
    there are more than `max_routes`, keeps the "uniform" ones (every
    controller taking the same action name) plus the cheapest and the most
    expensive.

    Returns:
        A list of `(name, {controller: action index})`, cheapest first.

    Example: `static_routes(model.plan)  # [("gate=stop", {...}), ...]`.
    """
    controllers = plan.controllers
    actions = [plan.nodes[q].actions for q in controllers]
    seen: set[frozenset[str]] = set()
    routes = []
    for index, joint in enumerate(
        itertools.product(*[range(len(a)) for a in actions])
    ):
        executed = frozenset(n for n, c in plan.conditions.items() if c[index])
        if executed in seen:
            continue
        seen.add(executed)
        name = ", ".join(
            f"{q}={a[d]}"
            for q, a, d in zip(controllers, actions, joint)
            if q in executed
        )
        cost = sum(plan.flops[n] for n in executed if n not in controllers)
        uniform = (
            len(
                {
                    a[d]
                    for a, d, q in zip(actions, joint, controllers)
                    if q in executed
                }
            )
            == 1
        )
        routes.append((cost, name, dict(zip(controllers, joint)), uniform))
    routes.sort(key=lambda r: r[0])
    if len(routes) > max_routes:
        keep = [r for r in routes if r[3]]
        keep += [r for r in (routes[0], routes[-1]) if r not in keep]
        routes = sorted(keep[:max_routes], key=lambda r: r[0])
    return [(name, route) for _, name, route, _ in routes]


def most_expensive_route(plan: Plan) -> dict[str, int]:
    """The constant route that runs the most FLOPs (the "full network").

    Example: `most_expensive_route(model.plan)  # {"gate": 1}`.
    """
    routes = static_routes(plan, max_routes=1 << 30)
    return dict(routes[-1][1]) if routes else {}


def static_network(
    model: D2NNModel,
    route: Mapping[str, int] | None = None,
    name: str | None = None,
    prune: bool = True,
) -> keras.Model:
    """The plain Keras model of one constant route of `model`.

    Args:
        model: a `D2NNModel` (built: its graph validated).
        route: `{controller: action index}`; default: the most expensive
            route (every branch that can run together, i.e. the full
            network).
        name: model name (default: `<model name>_static`).
        prune: True (default): only the nodes the outputs depend on.
            False: every node on the route, controllers' networks
            included, each result nothing else reads becoming an extra
            output (a dict keyed by node name): the "equivalent static
            network" that does all the D2NN's work on that route without
            any routing, for measuring the routing's overhead.

    Returns:
        A functional `keras.Model` with the D2NN's inputs and outputs,
        sharing its layers, made of the nodes the outputs depend on
        (`static_nodes`). Its outputs equal the D2NN's under the forced
        route.

    Example:

    ```python
    full = keras_d2nn.static_network(model)  # the high network alone
    full.predict(images, verbose=0)  # logits, as model's with gate=high
    cheap = keras_d2nn.static_network(model, {"gate": 0})  # low + low_head
    ```
    """
    plan = model.plan
    route = most_expensive_route(plan) if route is None else dict(route)
    on_route = route_nodes(plan, route)
    inputs: dict[str, keras.KerasTensor] = {}
    values: dict[str, keras.KerasTensor | None] = {}
    for node in plan.order:
        if node.name not in on_route or (node.kind == "q" and prune):
            continue
        if node.kind == "input":
            inputs[node.name] = keras.Input(
                shape=tuple(node.shape or ()), dtype=node.dtype, name=node.name
            )
            values[node.name] = inputs[node.name]
            continue
        reference = next(iter(inputs.values()))
        args = [
            values[p]
            if p in on_route
            else FillLike(
                tuple(_spec(plan, p).shape[1:]),
                node.defaults.get(p, 0.0),
                name=f"{node.name}_default_{p}",
            )(reference)
            for p in node.inputs
        ]
        if node.kind == "dummy":
            values[node.name] = args[0] if args else None
        elif node.kind == "merge" and node.layer is None:
            # A merge of alternatives: exactly one input runs on a route.
            values[node.name] = next(
                values[p] for p in node.inputs if p in on_route
            )
        else:
            layer = node.layer
            assert layer is not None, f"{node.name} has no layer"
            values[node.name] = layer(args[0] if len(args) == 1 else args)
    outputs = {out: values[node] for out, node in plan.outputs}
    if not prune:
        produced = {node for _, node in plan.outputs}
        read = {p for n in plan.order if n.name in values for p in n.inputs}
        outputs.update(
            {
                n: v
                for n, v in values.items()
                if n not in read
                and n not in inputs
                and v is not None
                and n not in produced
            }
        )
    model_inputs = [inputs[n.name] for n in plan.order if n.name in inputs]
    return keras.Model(
        inputs=model_inputs[0] if len(model_inputs) == 1 else model_inputs,
        outputs=(
            next(iter(outputs.values())) if len(outputs) == 1 else outputs
        ),
        name=name or f"{model.name}_static",
    )


def static_nodes(plan: Plan, route: Mapping[str, int]) -> set[str]:
    """The nodes of `static_network` for `route`: those on the route that
    the outputs depend on (through data edges; controllers excluded).

    In the high-low network the full route's output is the high network's,
    so its static network is the high network alone: the network one would
    deploy without dynamic routing.

    Example: `static_nodes(model.plan, {"gate": 1})  # {"image", "high"...}`.
    """
    on_route = route_nodes(plan, route)
    needed: set[str] = set()
    stack = [node for _, node in plan.outputs]
    while stack:
        name = stack.pop()
        if name in needed or name not in on_route:
            continue
        needed.add(name)
        stack.extend(plan.nodes[name].inputs)
    return needed


def static_flops(
    model: D2NNModel, route: Mapping[str, int] | None = None
) -> float:
    """FLOPs per example of `static_network(model, route)`.

    Example: `static_flops(model)  # FLOPs of the full network`.
    """
    plan = model.plan
    route = most_expensive_route(plan) if route is None else dict(route)
    return float(sum(plan.flops[n] for n in static_nodes(plan, route)))


def _spec(plan, name):
    """The symbolic output of node `name` (every node but a dummy without
    input has one)."""
    spec = plan.specs[name]
    if spec is None:
        raise ValueError(f"node {name!r} produces no value to stand in for")
    return spec
