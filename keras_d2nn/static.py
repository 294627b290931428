"""The static network behind one route of a D2NN, as a plain Keras model.

A constant route (every controller always taking the same action) turns a
D2NN into an ordinary feed-forward network: the nodes on the route, run on
the whole batch, with no controllers, masks, gathers or scatters. This is
the "equivalent static network" the speed benchmarks compare against, and a
way to ship one route alone. It shares its layers (and weights) with the
D2NN.
"""

import keras
import numpy as np

from keras_d2nn import baselines


@keras.saving.register_keras_serializable(package="keras_d2nn")
class FillLike(keras.layers.Layer):
    """A constant tensor `(batch,) + shape` filled with `value`, batch size
    taken from the input: what a node reads from a parent that is not on
    the route (its edge default, or 0, as in routed execution).

    Example: `FillLike((10,), 0.0)(images)  # zeros of shape (batch, 10)`.
    """

    def __init__(self, shape, value=0.0, **kwargs):
        super().__init__(**kwargs)
        self.fill_shape = tuple(int(d) for d in shape)
        self.value = float(value)

    def call(self, reference):
        batch = keras.ops.shape(reference)[0]
        return keras.ops.full((batch,) + self.fill_shape, self.value,
                              dtype=self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return (input_shape[0],) + self.fill_shape

    def get_config(self):
        return {**super().get_config(), "shape": self.fill_shape,
                "value": self.value}


def route_nodes(plan, route):
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
            f"{missing}. Received: route={route}")
    for q, action in route.items():
        actions = plan.nodes[q].actions if q in plan.nodes else None
        if actions is None or q not in plan.controllers:
            raise ValueError(
                f"'{q}' is not a controller of this graph; controllers: "
                f"{list(plan.controllers)}")
        if not 0 <= int(action) < len(actions):
            raise ValueError(
                f"Controller '{q}' has actions 0..{len(actions) - 1} "
                f"{list(actions)}; received {action}.")
    sizes = [len(plan.nodes[q].actions) for q in plan.controllers]
    joint = tuple(int(route[q]) for q in plan.controllers)
    index = int(np.ravel_multi_index(joint, sizes)) if sizes else 0
    return {name for name, ran in plan.conditions.items() if ran[index]}


def most_expensive_route(plan):
    """The constant route that runs the most FLOPs (the "full network").

    Example: `most_expensive_route(model.plan)  # {"gate": 1}`.
    """
    routes = baselines.static_routes(plan, max_routes=1 << 30)
    return dict(routes[-1][1]) if routes else {}


def static_network(model, route=None, name=None, prune=True):
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
    d2nn = keras_d2nn.architectures.high_low()
    full = keras_d2nn.static_network(d2nn)  # the high network alone
    full.predict(images)
    ```
    """
    plan = model.plan
    route = most_expensive_route(plan) if route is None else dict(route)
    on_route = route_nodes(plan, route)
    inputs, values = {}, {}
    for node in plan.order:
        if node.name not in on_route or (node.kind == "q" and prune):
            continue
        if node.kind == "input":
            inputs[node.name] = keras.Input(
                shape=tuple(node.shape), dtype=node.dtype, name=node.name)
            values[node.name] = inputs[node.name]
            continue
        reference = next(iter(inputs.values()))
        args = [
            values[p] if p in on_route else FillLike(
                tuple(plan.specs[p].shape[1:]), node.defaults.get(p, 0.0),
                name=f"{node.name}_default_{p}")(reference)
            for p in node.inputs
        ]
        if node.kind == "dummy":
            values[node.name] = args[0] if args else None
        elif node.kind == "merge" and node.layer is None:
            # A merge of alternatives: exactly one input runs on a route.
            values[node.name] = next(values[p] for p in node.inputs
                                     if p in on_route)
        else:
            values[node.name] = node.layer(args[0] if len(args) == 1
                                           else args)
    outputs = {out: values[node] for out, node in plan.outputs}
    if not prune:
        produced = {node for _, node in plan.outputs}
        read = {p for n in plan.order if n.name in values
                for p in n.inputs}
        outputs.update({n: v for n, v in values.items()
                        if n not in read and n not in inputs
                        and v is not None and n not in produced})
    model_inputs = [inputs[n.name] for n in plan.order if n.name in inputs]
    return keras.Model(
        inputs=model_inputs[0] if len(model_inputs) == 1 else model_inputs,
        outputs=(next(iter(outputs.values())) if len(outputs) == 1
                 else outputs),
        name=name or f"{model.name}_static")


def static_nodes(plan, route):
    """The nodes of `static_network` for `route`: those on the route that
    the outputs depend on (through data edges; controllers excluded).

    In the high-low network the full route's output is the high network's,
    so its static network is the high network alone: the network one would
    deploy without dynamic routing.

    Example: `static_nodes(model.plan, {"gate": 1})  # {"image", "high"...}`.
    """
    on_route = route_nodes(plan, route)
    needed, stack = set(), [node for _, node in plan.outputs]
    while stack:
        name = stack.pop()
        if name in needed or name not in on_route:
            continue
        needed.add(name)
        stack.extend(plan.nodes[name].inputs)
    return needed


def static_flops(model, route=None):
    """FLOPs per example of `static_network(model, route)`.

    Example: `static_flops(model)  # FLOPs of the full network`.
    """
    plan = model.plan
    route = most_expensive_route(plan) if route is None else dict(route)
    return float(sum(plan.flops[n] for n in static_nodes(plan, route)))

