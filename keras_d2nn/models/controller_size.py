"""Warning about controllers that cost a large share of the network.

Every example that reaches a controller pays for it, so a controller
sized for a large network eats the savings of a small one. On
scikit-learn's digits (docs/own_model.md: a 2,410-FLOP cheap path, a
52,234-FLOP deep one), a gate of two layers of 64 on the cheap head's
confidence cost 10,370 FLOPs, four times the cheap path, and at matched
cost it ended 1.48 to 0.00 points below the confidence threshold over two
seeds and three budgets; a gate of 8 units (258 FLOPs) ended 0.00 to
+0.37 above (benchmarks/own_model_digits.py). The built-in
architectures' controllers cost at most 1.1% of their networks. `compile`
warns above `SHARE_WARNING`.
"""

import warnings

# A controller costing more than this share of the full network's FLOPs
# is warned about at `compile`.
SHARE_WARNING = 0.05


def oversized(plan):
    """`{controller: share of the full FLOPs}` of the controllers above
    `SHARE_WARNING`.

    Example: `oversized(model.plan)  # {}: the built-in architectures`.
    """
    full = plan.full_flops or 1.0
    return {
        q: plan.flops[q] / full
        for q in plan.controllers
        if plan.flops[q] / full > SHARE_WARNING
    }


def warn_if_oversized(plan):
    """Warns, for each controller above `SHARE_WARNING` of the network's
    FLOPs, with its cost and how to size it.

    Example: `warn_if_oversized(model.plan)`.
    """
    for q, share in oversized(plan).items():
        layer = plan.nodes[q].layer
        units = getattr(layer, "hidden_units", ())
        warnings.warn(
            f"Controller '{q}' costs {plan.flops[q]:,.0f} FLOPs per example, "
            f"{share:.0%} of the full network's {plan.full_flops:,.0f}, and "
            "every example that reaches it pays that: at a budget it "
            "leaves fewer examples the expensive path. Size it to what it "
            "reads: a few units for a few features, e.g. "
            f"Controller({layer.num_actions}, hidden_units=(8,)) (was "
            f"hidden_units={units}; docs/own_model.md measures the effect).",
            stacklevel=3,
        )
