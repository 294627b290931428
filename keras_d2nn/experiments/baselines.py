"""Baselines a reviewer asks for, measured like the D2NN itself.

- **Static networks**: the D2NN's graph with every controller's decision
  fixed (each branch alone, the full network), trained from scratch with
  that routing (`set_routing`). Their FLOPs exclude the controllers, which
  a static network would not run.
- **Random routing at matched cost**: the same graph trained and evaluated
  with decisions drawn at random with the trained D2NN's action rates.
- **Confidence-threshold early exit**: on the full static network (every
  stage and head trained on every example), run the cheap classifier and
  continue only when its max softmax is below a threshold; swept over
  thresholds. Needs the graph's early exits (`Graph.early_exit`; the
  high-low and cascade builders declare theirs).

Every point is a `Point(name, kind, test_accuracy, mean_flops)`.

Example:

```python
from keras_d2nn.experiments import baselines

accuracy, flops, decisions = baselines.measure(model, test_images,
                                               test_labels)
baselines.action_rates(model, decisions)
# e.g. {"gate": [0.81, 0.19]}: the shares of "stop" and "high"
points = [baselines.Point("D2NN", "d2nn", accuracy, flops)]
points += baselines.threshold_exit_curve(model, test_images, test_labels,
                                         thresholds=[0.5, 0.9])
[(p.name, p.test_accuracy) for p in points]
```
"""

import dataclasses
import itertools

import numpy as np

from keras_d2nn.export.static_network import static_routes


@dataclasses.dataclass
class Point:
    """One accuracy/cost measurement.

    `kind` is `"d2nn"`, `"static"`, `"random"` or `"threshold"`.
    """

    name: str
    kind: str
    test_accuracy: float
    mean_flops: float
    details: dict = dataclasses.field(default_factory=dict)

    def as_dict(self):
        return dataclasses.asdict(self)


def measure(
    model, x, y, decisions=None, batch_size=500, count_controllers=True
):
    """Top-1 accuracy and mean executed FLOPs of `model` on `(x, y)`.

    Args:
        decisions: optional `{controller: int array (n,)}` to force.
        count_controllers: include the controllers' FLOPs (False for static
            networks, which have none).

    Returns:
        `(accuracy, mean_flops, decisions)` with the decisions taken.

    Example: `accuracy, flops, _ = measure(model, x_test, y_test)`.
    """
    routes = model.route(x, batch_size, labels=y, decisions=decisions)
    flops = (
        routes.executed_flops.astype(np.float64)
        if count_controllers
        else routes.without_controller_flops(model.plan)
    )
    return routes.accuracy, float(flops.mean()), routes.decisions


def action_rates(model, decisions):
    """Per controller, the share of each action among examples it ran on.

    Example: `action_rates(model, model.route(x)["decisions"])`.
    """
    rates = {}
    for q in model.plan.controllers:
        chosen = decisions[q][decisions[q] >= 0]
        counts = np.bincount(chosen, minlength=len(model.plan.nodes[q].actions))
        total = counts.sum()
        rates[q] = (
            counts / total if total else np.full(len(counts), 1.0 / len(counts))
        ).tolist()
    return rates


def declared_exits(model, what="the threshold exit"):
    """`model`'s early exits (`model.plan.exits`), or a ValueError saying
    that `what` needs them and how to declare them.

    Example: `declared_exits(model)[0].head  # high_low: "low_head"`.
    """
    exits = model.plan.exits
    if not exits:
        raise ValueError(
            f"{what} needs the graph's early exits, and "
            f"{getattr(model, 'name', 'the model')!r} declares none. "
            "Declare each where the graph is built: graph.early_exit("
            "controller, head=..., stop=..., proceed=...)."
        )
    return exits


def threshold_exit_curve(model, x, y, thresholds=None, batch_size=500):
    """The confidence-threshold early-exit baseline on a trained model.

    Give it a model whose heads were all trained on every example (the full
    static network of `static_baselines`): the D2NN's own later stages saw
    only the examples its controllers sent them.

    For each threshold `t`, an example stops at the first exit whose head
    has max softmax >= t and otherwise continues; the decisions are then
    executed for real and measured (controllers' FLOPs excluded). By
    default the thresholds are the deciles of the heads' confidences.

    Returns:
        A list of `Point`s, one per threshold. A graph that declares no
        early exit is a ValueError.

    Example: `curve = threshold_exit_curve(cascade_model, x_test, y_test)`.
    """
    exits = declared_exits(model, "threshold_exit_curve")
    confidences = exit_confidences(model, x, batch_size)
    if thresholds is None:
        # Quantiles of the confidences spread the sweep over exit rates
        # from all to none, however (un)confident the heads are.
        pooled = np.concatenate(list(confidences.values()))
        thresholds = np.unique(
            np.concatenate(
                [np.quantile(pooled, np.linspace(0.0, 1.0, 11)), [1.01]]
            )
        )
    return [
        _threshold_point(model, x, y, t, confidences, exits, batch_size)
        for t in thresholds
    ]


def threshold_exit_at_cost(model, x, y, mean_flops, batch_size=500, steps=12):
    """The threshold-exit `Point` whose mean FLOPs are nearest
    `mean_flops`: the threshold is bisected (`steps` routing passes), so
    a D2NN is compared with the threshold at its own cost, not with a
    line drawn between the points of a coarse sweep (which lies below the
    concave curve and flatters the D2NN).

    A graph that declares no early exit is a ValueError.

    Example: `threshold_exit_at_cost(full_network, x_test, y_test, 2.6e6)`.
    """
    exits = declared_exits(model, "threshold_exit_at_cost")
    confidences = exit_confidences(model, x, batch_size)
    # Bisected on the quantile of the confidences, not the threshold: they
    # crowd near 1, where a step in the threshold moves many examples.
    pooled = np.concatenate(list(confidences.values()))
    low, high = 0.0, 1.0  # a higher threshold continues more: costs more
    best = None
    for _ in range(steps):
        middle = (low + high) / 2
        threshold = float(np.quantile(pooled, middle))
        point = _threshold_point(
            model, x, y, threshold, confidences, exits, batch_size
        )
        if best is None or abs(point.mean_flops - mean_flops) < abs(
            best.mean_flops - mean_flops
        ):
            best = point
        if point.mean_flops < mean_flops:
            low = middle
        else:
            high = middle
    return best


def exit_confidences(model, x, batch_size=500):
    """`{exit head: max softmax (n,)}` of each exit the graph declares,
    with every exit continuing: what the threshold exit compares with its
    threshold. A graph that declares no early exit is a ValueError.

    Example: `exit_confidences(full_network, x_test)["low_head"]`.
    """
    exits = declared_exits(model, "exit_confidences")
    plan = model.plan
    everything = {
        e.controller: np.full(
            len(x),
            plan.nodes[e.controller].actions.index(e.proceed),
            np.int32,
        )
        for e in exits
    }
    return _head_confidences(model, x, everything, exits, batch_size)


def _threshold_point(model, x, y, t, confidences, exits, batch_size):
    """The threshold exit at `t`, executed and measured."""
    plan = model.plan
    stopped = np.zeros(len(x), dtype=bool)
    decisions = {}
    for e in exits:
        q = e.controller
        actions = plan.nodes[q].actions
        exit_here = (confidences[e.head] >= t) & ~stopped
        decisions[q] = np.where(
            exit_here,
            actions.index(e.stop),
            actions.index(e.proceed),
        ).astype(np.int32)
        stopped |= exit_here
    accuracy, flops, _ = measure(
        model, x, y, decisions, batch_size, count_controllers=False
    )
    return Point(
        f"threshold {t:.3f}",
        "threshold",
        accuracy,
        flops,
        {"threshold": float(t), "exit_rate": float(stopped.mean())},
    )


def _head_confidences(model, x, decisions, exits, batch_size):
    """Each exit head's max softmax on every example of `x`."""
    heads = [e.head for e in exits]
    values = model.route(
        x, batch_size, decisions=decisions, values=heads
    ).node_values
    return {h: np.max(_softmax(values[h]), axis=-1) for h in heads}


def _softmax(logits):
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def train_with_routing(build, routing, train, epochs, compile_model, verbose=0):
    """Builds a fresh model, forces `routing`, trains it; returns it.

    `compile_model(model)` compiles each new model (with a new optimizer:
    a Keras optimizer serves one model). `train` is a dataset, or a
    function returning a fresh one: each model then sees the examples in
    the same order (a shuffled `tf.data.Dataset` reshuffles at each pass).
    With a `build` that seeds, the full static network trains as the
    D2NN's modules do when they see every example (the two-phase recipe),
    so that comparing them compares the routing, not two draws of the
    weights.

    Example:

    ```python
    static = train_with_routing(architectures.high_low, {"gate": 1},
                                train_ds, 3, lambda m: m.compile(...))
    ```
    """
    model = build()
    compile_model(model)
    model.set_routing(routing)
    data = train() if callable(train) else train
    model.fit(data, epochs=epochs, verbose=verbose, shuffle=False)
    return model


def static_baselines(
    build,
    train,
    x_test,
    y_test,
    epochs,
    compile_model,
    max_routes=8,
    verbose=0,
    log=print,
):
    """Trains and measures each static network of the architecture.

    Returns:
        `(points, full_network)`: a list of `Point`s of kind `"static"`,
        cheapest first, and the trained model of the most expensive route
        (every exit head trained on every example: what the threshold exit
        runs on).

    Example: `static_baselines(architectures.cascade, train, x, y, 3, kw)`.
    """
    plan = build().plan
    points, model = [], None
    for name, route in static_routes(plan, max_routes):
        if log:
            log(f"baseline: static network {name}")
        model = train_with_routing(
            build, route, train, epochs, compile_model, verbose
        )
        accuracy, flops, _ = measure(
            model, x_test, y_test, count_controllers=False
        )
        points.append(
            Point(
                f"static {name}",
                "static",
                accuracy,
                flops,
                {"route": {q: int(a) for q, a in route.items()}},
            )
        )
    return points, model


def random_routing_baseline(
    build, rates, train, x_test, y_test, epochs, compile_model, verbose=0
):
    """Trains and measures the graph under random routing at `rates`.

    Args:
        rates: `{controller: probabilities}`, e.g. the trained D2NN's
            `action_rates`, so the cost matches.

    Example: `random_routing_baseline(build, rates, train, x, y, 3, kw)`.
    """
    model = train_with_routing(
        build, rates, train, epochs, compile_model, verbose
    )
    accuracy, flops, _ = measure(model, x_test, y_test)
    return Point("random routing", "random", accuracy, flops, {"rates": rates})


def route_points(model, x, y, max_routes=256, batch_size=500):
    """Every static route of a trained `model` (each joint decision forced
    on every example), measured without the controllers' FLOPs.

    These are routes of the D2NN's own network, whose modules trained on
    the examples routed to them (with the two-phase recipe on a graph
    without exits: on random shares of them), not networks trained alone
    (`static_baselines`). Their front (`pareto_front`) is the best fixed
    choice at each cost: what per-example routing must beat.

    Returns:
        A list of `Point`s of kind `"route"`, the route in
        `details["route"]` (`{controller: action name}`).

    Example:

    ```python
    points = route_points(model, x_test, y_test)
    front = pareto_front(points)
    front_accuracy(front, d2nn_flops)  # the best fixed route's accuracy there
    ```
    """
    plan = model.plan
    sizes = [len(plan.nodes[q].actions) for q in plan.controllers]
    if int(np.prod(sizes)) > max_routes:
        raise ValueError(
            f"route_points: {int(np.prod(sizes))} joint decisions, above "
            f"max_routes={max_routes}."
        )
    points = []
    for joint in itertools.product(*[range(k) for k in sizes]):
        decisions = {
            q: np.full(len(x), a, np.int32)
            for q, a in zip(plan.controllers, joint)
        }
        accuracy, flops, _ = measure(
            model, x, y, decisions, batch_size, count_controllers=False
        )
        route = {
            q: plan.nodes[q].actions[a] for q, a in zip(plan.controllers, joint)
        }
        name = ", ".join(f"{q}={a}" for q, a in route.items())
        points.append(
            Point(f"route {name}", "route", accuracy, flops, {"route": route})
        )
    return points


def pareto_front(points):
    """The points no cheaper point beats in accuracy, cheapest first.

    Example: `pareto_front(route_points(model, x_test, y_test))`.
    """
    front, best = [], -np.inf
    for point in sorted(points, key=lambda p: (p.mean_flops, -p.test_accuracy)):
        if point.test_accuracy > best:
            front.append(point)
            best = point.test_accuracy
    return front


def front_accuracy(front, mean_flops):
    """The accuracy of a `pareto_front` at `mean_flops`, interpolated
    between its points and flat after the last; None below the first.

    Example: `front_accuracy(pareto_front(points), d2nn_flops)`.
    """
    if not front or mean_flops < front[0].mean_flops:
        return None
    return float(
        np.interp(
            mean_flops,
            [p.mean_flops for p in front],
            [p.test_accuracy for p in front],
        )
    )
