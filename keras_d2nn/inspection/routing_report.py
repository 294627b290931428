"""Which examples take which route through a D2NN, and how each route does.

A route is the joint decision an example got: one action per controller
that decided for it (`"gate=stop"`, `"exit1=continue, exit2=stop"`).
"""

import numpy as np


def route_names(plan, decisions):
    """The route name of every example, and the names in order of first
    appearance, from `route()`'s `decisions` (`-1`: did not decide).

    Example: `names, order = route_names(model.plan, routes["decisions"])`.
    """
    controllers = [q for q in plan.controllers if q in decisions]
    table = np.stack([decisions[q] for q in controllers], axis=1)
    unique, inverse = np.unique(table, axis=0, return_inverse=True)
    labels = []
    for row in unique:
        parts = [
            f"{q}={plan.nodes[q].actions[a]}"
            for q, a in zip(controllers, row)
            if a >= 0
        ]
        labels.append(", ".join(parts) or "(no decision)")
    return np.asarray(labels, dtype=object)[inverse.reshape(-1)], labels


def summarize(plan, routes, class_names=None):
    """The report's data from `D2NNModel.route` output (with labels).

    Example: `summarize(model.plan, model.route(x, labels=y))`.
    """
    flops = routes["executed_flops"].astype(np.float64)
    full = plan.full_flops
    labels = routes.get("labels")
    # Predicted milliseconds: routes of a model trained on latency.
    ms = getattr(routes, "executed_ms", None)
    correct = None
    if labels is not None:
        correct = routes["predictions"] == labels.astype(np.int64)
    report = {
        "examples": int(len(flops)),
        "accuracy": None if correct is None else float(correct.mean()),
        "mean_flops": float(flops.mean()),
        "mean_cost_fraction": float(flops.mean() / full) if full else 0.0,
        "controllers": {},
        "routes": [],
    }
    if ms is not None:
        report["mean_ms"] = float(np.mean(ms))
    for q in plan.controllers:
        decided = routes["decisions"][q]
        actions = plan.nodes[q].actions
        entry = {
            "ran": float(np.mean(decided >= 0)),
            "actions": {
                a: float(np.mean(decided == i)) for i, a in enumerate(actions)
            },
        }
        if labels is not None:
            entry["by_class"] = {}
            for c in np.unique(labels.astype(np.int64)):
                mine = decided[labels == c]
                name = (
                    class_names[c]
                    if class_names is not None and 0 <= c < len(class_names)
                    else str(int(c))
                )
                entry["by_class"][name] = {
                    a: float(np.mean(mine == i)) for i, a in enumerate(actions)
                }
        report["controllers"][q] = entry
    names, order = route_names(plan, routes["decisions"])
    for name in order:
        chosen = names == name
        report["routes"].append(
            {
                "route": name,
                "examples": int(chosen.sum()),
                "share": float(chosen.mean()),
                "accuracy": (
                    None if correct is None else float(correct[chosen].mean())
                ),
                "mean_flops": float(flops[chosen].mean()),
                "mean_cost_fraction": (
                    float(flops[chosen].mean() / full) if full else 0.0
                ),
            }
        )
        if ms is not None:
            report["routes"][-1]["mean_ms"] = float(ms[chosen].mean())
    report["routes"].sort(key=lambda r: -r["share"])
    return report


def format_report(report):
    """The report as text tables (what `routing_report` prints).

    Example: `print(format_report(report))`.
    """
    accuracy = (
        ""
        if report["accuracy"] is None
        else f"accuracy {report['accuracy']:.4f}, "
    )
    with_ms = "mean_ms" in report
    predicted = (
        f", predicted {report['mean_ms']:.4g} ms per example" if with_ms else ""
    )
    lines = [
        f"Routing of {report['examples']:,} examples: {accuracy}mean "
        f"{report['mean_flops']:,.0f} FLOPs "
        f"({report['mean_cost_fraction']:.3f} of the full network)"
        f"{predicted}",
        "",
    ]
    width = max(len("route"), *(len(r["route"]) for r in report["routes"]))
    lines.append(
        f"{'route':<{width}}  {'share':>6}  {'examples':>8}  "
        f"{'accuracy':>8}  {'mean FLOPs':>12}  {'of full':>7}"
        + (f"  {'mean ms':>9}" if with_ms else "")
    )
    for r in report["routes"]:
        acc = "" if r["accuracy"] is None else f"{r['accuracy']:.4f}"
        lines.append(
            f"{r['route']:<{width}}  {r['share']:>6.1%}  {r['examples']:>8,}"
            f"  {acc:>8}  {r['mean_flops']:>12,.0f}  "
            f"{r['mean_cost_fraction']:>7.3f}"
            + (f"  {r['mean_ms']:>9.4g}" if with_ms else "")
        )
    for q, entry in report["controllers"].items():
        actions = list(entry["actions"])
        rates = ", ".join(f"{a} {entry['actions'][a]:.1%}" for a in actions)
        lines += [
            "",
            f"controller {q} (decided for {entry['ran']:.1%}): {rates}",
        ]
        if "by_class" in entry:
            name_width = max(
                len("true class"), *(len(c) for c in entry["by_class"])
            )
            cells = [max(len(a), 6) for a in actions]
            lines.append(
                f"  {'true class':<{name_width}}  "
                + "  ".join(f"{a:>{w}}" for a, w in zip(actions, cells))
            )
            for c, row in entry["by_class"].items():
                lines.append(
                    f"  {c:<{name_width}}  "
                    + "  ".join(
                        f"{row[a]:>{w}.1%}" for a, w in zip(actions, cells)
                    )
                )
    return "\n".join(lines)


def routing_report(
    model,
    data=None,
    labels=None,
    batch_size=256,
    class_names=None,
    print_fn=print,
    routes=None,
):
    """Routes `data` through `model` and reports on the routes taken.

    Args:
        model: a `keras_d2nn.D2NNModel`.
        data: inputs (array, dict or list) with `labels`, or a
            `tf.data.Dataset` of `(x, y)` pairs. Without labels, accuracy
            and the per-class rates are left out.
        labels: class indices of array `data`.
        class_names: names of the classes, for the per-class rates.
        print_fn: where the tables go (`None`: not printed).
        routes: the `Routes` of an earlier `model.route` call, instead of
            `data` and `labels`.

    Returns:
        `{"examples", "accuracy", "mean_flops", "mean_cost_fraction",
        "controllers": {q: {"ran", "actions": {action: rate}, "by_class":
        {class: {action: rate}}}}, "routes": [{"route", "examples",
        "share", "accuracy", "mean_flops", "mean_cost_fraction"}]}`, routes
        by decreasing share; with a model trained on latency
        (`compile(cost="latency")`), `"mean_ms"` too, overall and per
        route (predicted milliseconds per example). Action rates are
        shares of all examples (they sum to `ran`); per-class rates are
        shares of that class.

    Example:

    ```python
    from keras_d2nn.data import CLASS_NAMES  # names: "T-shirt/top", ...

    report = keras_d2nn.inspection.routing_report.routing_report(
        model, test_images, test_labels, class_names=CLASS_NAMES)
    report["controllers"]["gate"]["actions"]  # {"stop": ..., "high": ...}
    report["routes"][0]["route"], report["routes"][0]["accuracy"]
    ```
    """
    if routes is None:
        routes = model.route(data, batch_size, labels=labels)
    report = summarize(model.plan, routes, class_names)
    if print_fn is not None:
        print_fn(format_report(report))
    return report
