"""Drawing a D2NN graph like the paper's Figure 1 (Graphviz, via pydot).

F-nodes are rectangles, Q-nodes (controllers) diamonds, dummy nodes shaded
rectangles, merges shaded ovals, inputs and outputs ovals. Data edges are solid;
control edges dashed, labelled with the actions that select the node. Each
node shows its FLOPs per example and, given data, how often it ran.

The layout is Graphviz's, as in `keras.utils.plot_model`.
"""

import pathlib

import numpy as np

_SHAPES = {
    "input": dict(shape="oval"),
    "f": dict(shape="box"),
    "q": dict(shape="diamond", style="filled", fillcolor="#fde9c9"),
    "dummy": dict(shape="box", style="filled,dashed", fillcolor="#d9d9d9"),
    "merge": dict(shape="ellipse", style="filled", fillcolor="#dbe9f6"),
}
_FORMATS = ("png", "svg", "pdf", "dot")


def _flops_text(flops):
    if flops >= 1e9:
        return f"{flops / 1e9:.3g} GFLOPs"
    if flops >= 1e6:
        return f"{flops / 1e6:.3g} MFLOPs"
    if flops >= 1e3:
        return f"{flops / 1e3:.3g} kFLOPs"
    return f"{flops:.0f} FLOPs"


def _node_label(node, flops, run_rate):
    lines = [node.name]
    if node.layer is not None and node.kind in ("f", "q"):
        lines.append(type(node.layer).__name__)
    if node.kind == "dummy":
        lines.append("(dummy: does nothing)")
    if node.kind in ("merge", "input"):
        lines.append(f"({node.kind})")
    if flops:
        lines.append(_flops_text(flops))
    if run_rate is not None:
        lines.append(f"ran for {run_rate:.1%}")
    return "\n".join(lines)


def graph_dot(model, data=None, batch_size=256, rankdir="TB", routes=None):
    """The graph of a `D2NNModel` as a `pydot.Dot` (see `plot_graph`).

    Example: `print(graph_dot(model).to_string())`.
    """
    try:
        import pydot
    except ImportError:
        raise ImportError(
            "plot_graph needs pydot: `pip install pydot` (and Graphviz's "
            "`dot` program)."
        ) from None
    plan = model.plan
    rates = {}
    if routes is None and data is not None:
        routes = model.route(data, batch_size)
    if routes is not None:
        executed = routes["executed"]
        rates = {name: float(np.mean(ran)) for name, ran in executed.items()}
    dot = pydot.Dot(graph_type="digraph", rankdir=rankdir, fontname="Helvetica")
    dot.set_node_defaults(fontname="Helvetica", fontsize="10")
    dot.set_edge_defaults(fontname="Helvetica", fontsize="9")
    for node in plan.order:
        dot.add_node(
            pydot.Node(
                node.name,
                label=_node_label(
                    node, plan.flops[node.name], rates.get(node.name)
                ),
                **_SHAPES.get(node.kind, {}),
            )
        )
    for node in plan.order:
        for parent in node.inputs:
            dot.add_edge(pydot.Edge(parent, node.name))
        for controller, actions in node.control.items():
            names = plan.nodes[controller].actions
            dot.add_edge(
                pydot.Edge(
                    controller,
                    node.name,
                    style="dashed",
                    color="#b35900",
                    label=" " + ", ".join(names[a] for a in actions),
                )
            )
    for output, node_name in plan.outputs:
        box = f"output__{output}"
        dot.add_node(
            pydot.Node(
                box, label=f"output\n{output}", shape="oval", style="bold"
            )
        )
        dot.add_edge(pydot.Edge(node_name, box))
    return dot


def plot_graph(
    model, path, data=None, batch_size=256, rankdir="TB", dpi=96, routes=None
):
    """Draws the graph of a `D2NNModel` to a file, like the paper's Fig. 1.

    Args:
        model: a `keras_d2nn.D2NNModel`.
        path: the file to write; its suffix picks the format (`.png`,
            `.svg`, `.pdf`, or `.dot` for the Graphviz source).
        data: optional inputs (as for `D2NNModel.route`): each node is
            then labelled with the share of examples it ran for.
        batch_size: batch size for routing `data`.
        rankdir: Graphviz layout direction, `"TB"` (top to bottom) or
            `"LR"` (left to right).
        dpi: resolution of a PNG.
        routes: the `Routes` of an earlier `model.route` call, instead of
            `data`.

    Returns:
        The path written.

    Example:

    ```python
    keras_d2nn.plot_graph(model, "graph.png", data=test_images)
    keras_d2nn.plot_graph(model, "graph.dot")  # the source: no Graphviz
    ```
    """
    path = pathlib.Path(path)
    fmt = path.suffix.lstrip(".").lower()
    if fmt not in _FORMATS:
        raise ValueError(
            f"plot_graph writes {', '.join('.' + f for f in _FORMATS)} "
            f"files; received path {str(path)!r}."
        )
    if rankdir not in ("TB", "LR", "BT", "RL"):
        raise ValueError(
            f"`rankdir` should be 'TB', 'LR', 'BT' or 'RL'. Received: "
            f"{rankdir!r}"
        )
    dot = graph_dot(model, data, batch_size, rankdir, routes)
    if fmt == "dot":
        path.write_text(dot.to_string())
        return path
    dot.set_graph_defaults(dpi=str(dpi))
    try:
        content = dot.create(format=fmt)
    except FileNotFoundError:
        raise RuntimeError(
            "plot_graph needs Graphviz's `dot` program, which is not on "
            "the PATH: install Graphviz (`apt-get install graphviz` on "
            "Debian/Ubuntu, `brew install graphviz` on macOS, or "
            "https://graphviz.org/download/), or write the `.dot` source "
            "instead."
        ) from None
    path.write_bytes(content)
    return path
