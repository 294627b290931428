"""`fit_to_routes`: node costs recovered from route times made by a known
additive model (fixed ms per batch + ms per example per node), on the
cascade's plan (three nested routes) and the high-low's (two)."""

import numpy as np
import pytest

import keras_d2nn
from keras_d2nn.profiling import LatencyProfile
from keras_d2nn.profiling.route_fit import fit_to_routes
from keras_d2nn.profiling.route_timing import distinct_routes

BATCH = 64


def route_seconds(routes, node_ms, node_fixed_ms, base_ms):
    """What a runtime obeying the additive model would measure."""
    times = {}
    for route in routes:
        for size in (1, BATCH):
            ms = base_ms + sum(
                node_fixed_ms.get(n, 0.0) + size * node_ms[n] for n in route
            )
            times.setdefault(route, {})[size] = ms / 1000.0
    return times


@pytest.fixture(scope="module")
def cascade():
    return keras_d2nn.architectures.cascade()


def test_the_fit_reproduces_every_route_and_splits_groups_by_alone(cascade):
    plan = cascade.plan
    routes = list(distinct_routes(plan))
    computing = sorted({n for r in routes for n in r})
    rng = np.random.default_rng(0)
    true_ms = {n: float(rng.uniform(0.001, 0.05)) for n in computing}
    fixed = {n: 0.1 for n in computing if not all(n in r for r in routes)}
    times = route_seconds(routes, true_ms, fixed, base_ms=0.4)
    # Alone, every node looks twice as slow: only the split within a
    # group of nodes on the same routes comes from these times.
    alone = {n: 2 * ms for n, ms in true_ms.items()}

    node_ms, fixed_ms, base_ms = fit_to_routes(times, alone, BATCH)

    profile = LatencyProfile(
        node_ms, batch_size=BATCH, node_fixed_ms=fixed_ms, base_ms=base_ms
    )
    for route, sizes in times.items():
        ran = {n: np.full(BATCH, n in route) for n in computing}
        predicted_ms = profile.predict(ran) * BATCH
        assert predicted_ms == pytest.approx(1000 * sizes[BATCH], rel=1e-9)
    # A group's nodes always run together: their shares follow `alone`,
    # which here is proportional to the truth, so each node is recovered.
    for node in computing:
        assert node_ms[node] == pytest.approx(true_ms[node], rel=1e-9)
    # Stage 1 runs on every route: its fixed cost is the batch's base.
    always = [n for n in computing if all(n in r for r in routes)]
    assert base_ms == pytest.approx(0.4)
    assert not set(always) & set(fixed_ms)


def test_a_batch_of_one_has_no_fixed_part(cascade):
    plan = cascade.plan
    routes = list(distinct_routes(plan))
    computing = sorted({n for r in routes for n in r})
    times = {
        r: {1: sum(0.01 * (i + 1) for i, n in enumerate(computing) if n in r)}
        for r in routes
    }
    node_ms, fixed_ms, base_ms = fit_to_routes(
        times, dict.fromkeys(computing, 1.0), batch_size=1
    )
    assert (fixed_ms, base_ms) == ({}, 0.0)
    for route, sizes in times.items():
        assert sum(node_ms[n] for n in route) == pytest.approx(1000 * sizes[1])


def test_noise_that_would_make_a_cost_negative_leaves_it_at_zero():
    model = keras_d2nn.architectures.high_low()
    routes = list(distinct_routes(model.plan))
    cheap, full = sorted(routes, key=len)
    # Noise: the full route measured faster than the cheap one.
    times = {cheap: {1: 0.002, BATCH: 0.004}, full: {1: 0.0019, BATCH: 0.0037}}
    alone = dict.fromkeys(full, 0.01)
    node_ms, fixed_ms, base_ms = fit_to_routes(times, alone, BATCH)
    extra = set(full) - set(cheap)
    assert all(node_ms[n] == 0.0 for n in extra)
    assert not extra & set(fixed_ms)
    assert all(ms >= 0 for ms in node_ms.values()) and base_ms > 0
