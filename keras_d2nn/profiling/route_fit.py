"""Node costs that add up to the routed model's measured route times.

Each route's time at two batch sizes (`route_timing.time_routes`) is a
fixed part per batch and a part per example. Both are split over nodes
by least squares: a route's part is the sum of its nodes'. Nodes that
run on exactly the same routes cannot be told apart by timing the
model; their group's share is split in proportion to their times alone.
The group that runs on every route carries the batch's base cost: its
fixed part is the profile's `base_ms`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


def fit_to_routes(
    route_seconds: Mapping[tuple[str, ...], Mapping[int, float]],
    alone_ms: Mapping[str, float],
    batch_size: int,
) -> tuple[dict[str, float], dict[str, float], float]:
    """`(node_ms, node_fixed_ms, base_ms)` fitted to `route_seconds`
    (`{route: {batch size: seconds per batch}}`, with `batch_size` and,
    when it is above 1, 1 among the sizes).

    `alone_ms` (each node timed alone, ms per example) splits a group of
    nodes that always run together; a node on no timed route keeps it.
    At batch size 1 there is no fixed part: everything is per example.

    Example: `fit_to_routes(times, profile.node_ms, 64)`.
    """
    routes = list(route_seconds)
    per_batch = np.array(
        [1000.0 * route_seconds[r][batch_size] for r in routes]
    )
    if batch_size > 1:
        single = np.array([1000.0 * route_seconds[r][1] for r in routes])
        per_example = np.maximum((per_batch - single) / (batch_size - 1), 0.0)
        fixed = np.maximum(single - per_example, 0.0)
    else:
        per_example, fixed = per_batch, np.zeros(len(routes))

    groups: dict[tuple[bool, ...], list[str]] = {}
    for node in alone_ms:
        column = tuple(node in route for route in routes)
        if any(column):
            groups.setdefault(column, []).append(node)
    everywhere = tuple(True for _ in routes)
    columns = list(groups)
    if everywhere not in groups:  # no node runs on every route: a base
        columns.append(everywhere)  # column of its own, for the fixed part
    incidence = np.array(columns, dtype=np.float64).T  # (routes, groups)
    group_ms = _nonnegative_lstsq(incidence, per_example)
    group_fixed = _nonnegative_lstsq(incidence, fixed)

    node_ms = dict(alone_ms)  # nodes on no timed route keep their own
    node_fixed_ms = {}
    base_ms = 0.0
    for g, column in enumerate(columns):
        members = groups.get(column, [])
        if column == everywhere:
            base_ms = float(group_fixed[g])
            if not members:  # work every example pays, in no node
                base_ms += float(group_ms[g]) * batch_size
                continue
        weights = _shares([alone_ms[n] for n in members])
        for node, weight in zip(members, weights):
            node_ms[node] = float(group_ms[g] * weight)
            if column != everywhere and group_fixed[g] > 0:
                node_fixed_ms[node] = float(group_fixed[g] * weight)
    return node_ms, node_fixed_ms, base_ms


def _nonnegative_lstsq(matrix: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Least squares (minimum norm where underdetermined), then groups
    pushed below 0 by noise set to 0 and the rest fitted again."""
    free = np.ones(matrix.shape[1], bool)
    solution = np.zeros(matrix.shape[1])
    while free.any():
        fitted, *_ = np.linalg.lstsq(matrix[:, free], target, rcond=None)
        if (fitted >= 0).all():
            solution[free] = fitted
            break
        indices = np.flatnonzero(free)
        free[indices[fitted < 0]] = False
    return solution


def _shares(alone: list[float]) -> np.ndarray:
    """Weights summing to 1, in proportion to `alone` (equal if all 0)."""
    values = np.asarray(alone, dtype=np.float64)
    if values.sum() > 0:
        return values / values.sum()
    return np.full(len(values), 1.0 / max(len(values), 1))
