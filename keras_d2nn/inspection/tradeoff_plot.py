"""Accuracy-versus-cost plots."""

import matplotlib

matplotlib.use("Agg")  # files only; no display needed

import matplotlib.pyplot as plt  # noqa: E402

_STYLE = {
    "d2nn": dict(marker="*", s=220, color="tab:red", zorder=5),
    "static": dict(marker="s", s=60, color="tab:blue", zorder=4),
    "random": dict(marker="^", s=70, color="tab:gray", zorder=4),
}


def tradeoff_plot(
    points, path, full_flops, title="Accuracy vs cost", budget=None
):
    """Writes a PNG of test accuracy against mean FLOPs per example.

    D2NN points are stars, static networks squares, random routing
    triangles, and the threshold-exit sweep a line.

    Args:
        points: `baselines.Point`s (or dicts with the same keys).
        path: where the PNG goes.
        full_flops: FLOPs of running every node (top axis in fractions).
        budget: a FLOP fraction to mark with a dashed line (a tuning
            budget), or None.

    Example:

    ```python
    from keras_d2nn.inspection.tradeoff_plot import tradeoff_plot

    full = model.full_flops
    points = [
        {"name": "D2NN", "kind": "d2nn", "test_accuracy": 0.87,
         "mean_flops": 0.39 * full},
        {"name": "gate=stop", "kind": "static", "test_accuracy": 0.83,
         "mean_flops": 0.01 * full},
        {"name": "gate=high", "kind": "static", "test_accuracy": 0.90,
         "mean_flops": full},
    ]
    tradeoff_plot(points, "tradeoff.png", full, budget=0.4)
    ```
    """
    points = [p if isinstance(p, dict) else p.as_dict() for p in points]
    fig, ax = plt.subplots(figsize=(7, 5))
    threshold = sorted(
        (p for p in points if p["kind"] == "threshold"),
        key=lambda p: p["mean_flops"],
    )
    if threshold:
        ax.plot(
            [p["mean_flops"] for p in threshold],
            [p["test_accuracy"] for p in threshold],
            "-o",
            color="tab:green",
            label="confidence-threshold exit",
            markersize=4,
        )
    for kind, style in _STYLE.items():
        chosen = [p for p in points if p["kind"] == kind]
        if not chosen:
            continue
        label = {
            "d2nn": "D2NN",
            "static": "static networks",
            "random": "random routing",
        }[kind]
        ax.scatter(
            [p["mean_flops"] for p in chosen],
            [p["test_accuracy"] for p in chosen],
            label=label,
            **style,
        )
        for p in chosen:
            ax.annotate(
                p["name"].replace("static ", ""),
                (p["mean_flops"], p["test_accuracy"]),
                textcoords="offset points",
                xytext=(5, -10),
                fontsize=7,
            )
    if budget is not None:
        ax.axvline(
            budget * full_flops,
            color="black",
            linestyle="--",
            linewidth=1,
            label=f"budget {budget:g}",
        )
    ax.set_xscale("log")
    ax.set_xlabel("mean FLOPs per example (log scale)")
    ax.set_ylabel("test accuracy")
    ax.set_title(title)
    secondary = ax.secondary_xaxis(
        "top", functions=(lambda f: f / full_flops, lambda r: r * full_flops)
    )
    secondary.set_xlabel("fraction of the full network's FLOPs")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
