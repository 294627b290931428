"""An input's declared range of values: `graph.input(..., value_range=)`.

Declared and validated here, with the graph; checked on the data by
`keras_d2nn.models.value_range`.
"""

import math

# How far beyond the declared range a value may lie, as a fraction of its
# width: enough for rounding (x / 255 * 255), far below a unit mistake.
SLACK = 0.01


def validated(name, value_range, dtype):
    """`value_range` as `(low, high)` floats, or None; a ValueError for
    anything else, at the point where the graph input is declared.

    Example: `validated("pixels", [0, 1], "float32")  # (0.0, 1.0)`.
    """
    if value_range is None:
        return None
    try:
        low, high = (float(v) for v in value_range)
    except (TypeError, ValueError):
        raise ValueError(
            f"Input '{name}': `value_range` should be two numbers "
            f"(low, high). Received: value_range={value_range!r}"
        ) from None
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ValueError(
            f"Input '{name}': `value_range` should be finite numbers with "
            f"low < high. Received: value_range={value_range!r}"
        )
    if str(dtype) == "bool":
        raise ValueError(
            f"Input '{name}' holds bools: a `value_range` does not apply. "
            f"Received: value_range={value_range!r}"
        )
    return (low, high)


def bounds(value_range):
    """`(low, high)` widened by `SLACK` of the width: what passes.

    Example: `bounds((0.0, 1.0))  # (-0.01, 1.01)`.
    """
    low, high = value_range
    slack = SLACK * (high - low)
    return low - slack, high + slack
