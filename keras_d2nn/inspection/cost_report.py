"""Per node: its FLOPs, how often it ran, and what it cost on average."""

import numpy as np


def cost_rows(plan, routes=None):
    """The rows of `D2NNModel.cost_report`: one per node, then `"total"`.

    Args:
        plan: the model's `Plan`.
        routes: the `Routes` of some data, or None for static FLOPs only.

    Returns:
        `[{"node", "kind", "flops", "run_rate", "mean_flops"}]` (rates and
        means None without routes).

    Example: `cost_rows(model.plan, model.route(test_images))[-1]`.
    """
    rows = []
    for node in plan.order:
        flops = plan.flops[node.name]
        rate = None
        if routes is not None:
            rate = float(np.mean(routes["executed"][node.name]))
        rows.append(
            {
                "node": node.name,
                "kind": node.kind,
                "flops": flops,
                "run_rate": rate,
                "mean_flops": None if rate is None else flops * rate,
            }
        )
    mean_total = None
    if routes is not None:
        mean_total = float(
            np.asarray(routes["executed_flops"], np.float64).mean()
        )
    rows.append(
        {
            "node": "total",
            "kind": "",
            "flops": plan.full_flops,
            "run_rate": None,
            "mean_flops": mean_total,
        }
    )
    return rows


def format_cost_table(rows, full_flops):
    """The `cost_report` rows as a fixed-width table.

    Example: `print(format_cost_table(rows, model.full_flops))`.
    """
    header = (
        f"{'node':<20} {'kind':<6} {'FLOPs':>14} {'share':>7} "
        f"{'run rate':>9} {'mean FLOPs':>14}"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        share = row["flops"] / full_flops if full_flops else 0.0
        rate = "" if row["run_rate"] is None else f"{row['run_rate']:.3f}"
        mean = "" if row["mean_flops"] is None else f"{row['mean_flops']:,.0f}"
        lines.append(
            f"{row['node']:<20} {row['kind']:<6} {row['flops']:>14,.0f} "
            f"{share:>7.1%} {rate:>9} {mean:>14}"
        )
    return "\n".join(lines)
