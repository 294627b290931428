"""Serving speed: do the FLOPs a D2NN skips turn into time saved?

Builds high-low and cascade D2NNs whose cheap and expensive paths differ in
cost by more than 10x (small ones on Fashion-MNIST, and real-size ones on
224x224x3 synthetic images whose expensive path is a MobileNetV2 or
ResNet-style stages: `bench_networks.py`), and times, side by side in one
run:

- `static`: the full static network (`keras_d2nn.static_network`: every
  node of the most expensive route on the whole batch, no controllers);
- `routed`: the D2NN with routed execution (gather, run, scatter; a
  `tf.cond` per conditional node at batch 1);
- `masked`: the D2NN computing every branch and masking, as the peers do.

Routing is forced so that a fraction (0, 0.1, 0.3, 0.5, 1.0; 0.1 to 1.0
on the real-size networks) of the examples takes the expensive path (the
rest the cheapest one), and, for the small networks, also left to a
policy trained briefly on real Fashion-MNIST (`trained` rows). Runtimes:
TF graph (`tf.function`, CPU) at batch 1, 32 and 256, and the LiteRT
interpreter with its default settings (XNNPACK) at batch 1 and 32, with 1
and 2 threads.

FLOP speedup = full network FLOPs / mean executed FLOPs of the D2NN
(controllers included); time speedup = time of `static` / time of the
mode; efficiency = time speedup / FLOP speedup. Writes `--output` (JSON
list of rows; rows of networks and runtimes not timed in this run are
kept) and prints a table. The figures in docs/performance.md came from one
process per network and runtime:

    for arch in high_low cascade high_low_224 cascade_224; do
      for runtime in tf litert; do
        python benchmarks/speed.py --archs=$arch --runtimes=$runtime \
            --examples=1024
      done
    done
"""

import argparse
import json
import pathlib
import typing

import bench_networks
import bench_timing
import keras
import numpy as np
import speed_attention

from keras_d2nn import data
from keras_d2nn import schedules
from keras_d2nn.export import static_network

FRACTIONS = (0.0, 0.1, 0.3, 0.5, 1.0)
REAL_SIZE_FRACTIONS = (0.1, 0.3, 0.5, 1.0)
LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--archs",
        default="high_low,cascade,high_low_224,cascade_224,"
        "attention_112,attention_224",
    )
    parser.add_argument("--runtimes", default="tf,litert")
    parser.add_argument("--tf_batches", default="1,32,256")
    parser.add_argument("--litert_batches", default="1,32")
    parser.add_argument("--litert_threads", default="1,2")
    parser.add_argument(
        "--examples",
        type=int,
        default=2048,
        help="most examples timed per configuration and "
        "repeat (8 batches, at least 256, below that)",
    )
    parser.add_argument(
        "--real_size_examples",
        type=int,
        default=64,
        help="examples timed per configuration and repeat on the "
        "224x224 networks and the attention canvases (at least one batch)",
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--train_examples",
        type=int,
        default=20000,
        help="images to train the policy of `trained` rows",
    )
    parser.add_argument("--cost_weight", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default="benchmarks/results/speed.json")
    return parser.parse_args()


# -- runners: f(images, decisions (batch, controllers) int32) -> outputs ------


def mode_functions(model, static):
    """Python functions of `(images, decisions)` for each mode; column `i`
    of `decisions` forces controller `i` (ignored by the static networks
    and by `trained_routed`, which follows the trained policy).

    `static_cheap` and `static_equivalent` are the unpruned static networks
    of the cheapest and the most expensive route: every layer the D2NN runs
    on that route (controllers included), without any routing. Their
    times, mixed in the routed fraction, are what routing would cost with
    zero overhead.
    """
    cheap, expensive = bench_networks.cheap_and_expensive_routes(model.plan)
    unpruned = {
        name: static_network.static_network(model, route, prune=False)
        for name, route in (
            ("static_cheap", cheap),
            ("static_equivalent", expensive),
        )
    }

    d2nn, plain = bench_timing.d2nn_runner, bench_timing.plain_runner
    return {
        "static": plain(static),
        "static_cheap": plain(unpruned["static_cheap"]),
        "static_equivalent": plain(unpruned["static_equivalent"]),
        "routed": d2nn(model, "routed"),
        "masked": d2nn(model, "masked"),
        "trained_routed": lambda images, decisions: (
            model.trace(images, statistics=False).outputs
        ),
    }


# -- timing ------------------------------------------------------------------


def mean_flops(model, x, decisions):
    trace = model.trace(x, decisions=decisions or None, statistics=False)
    return float(np.mean(trace.executed_flops))


def train_policy(model, args):
    """One warm-up epoch of random routing, then one of learning."""
    x, y = data.load_fashion_mnist("train")
    model.compile(
        keras.optimizers.Adam(1e-3),
        LOSS,
        metrics=["accuracy"],
        cost_weight=args.cost_weight,
    )
    model.fit(
        x[: args.train_examples],
        y[: args.train_examples],
        epochs=2,
        batch_size=128,
        verbose=0,
        callbacks=[schedules.WarmUp(1)],
    )


def bench_arch(arch, args, log=print):
    keras.utils.set_random_seed(args.seed)
    model = bench_networks.BUILDERS[arch]()
    real_size = arch in bench_networks.REAL_SIZE
    if not real_size:  # no dataset of 224x224 images to train on here
        train_policy(model, args)
    static = static_network.static_network(model)
    full = static_network.static_flops(model)
    route_flops = [
        _route_flops(model, route)
        for route in bench_networks.cheap_and_expensive_routes(model.plan)
    ]
    bench = Bench(model, full, route_flops, args, log)
    rng = np.random.default_rng(args.seed)
    plans = bench_timing.runtime_plans(args)
    rows = []
    for runtime, batch, thread_counts in plans:
        log(f"{arch}: {runtime} batch {batch}")
        try:
            functions = mode_functions(model, static)
            if runtime == "tf":
                by_threads = {
                    None: bench_timing.tf_runners(model, functions, batch)
                }
            else:
                by_threads = bench_timing.litert_runners(
                    model, functions, batch, thread_counts
                )
        except ValueError as error:  # a conversion failure: say, go on
            log(f"{arch}: {runtime} batch {batch} skipped: {error}")
            rows.append(
                {
                    "arch": arch,
                    "runtime": runtime,
                    "batch": batch,
                    "error": str(error)[:500],
                }
            )
            continue
        if real_size:  # at batch 1 too: enough to route 10% exactly
            n = max(batch, args.real_size_examples)
        else:
            n = max(256, min(args.examples, 8 * batch))
        x = bench_networks.images(arch, n, args.seed)
        cases = [
            (f, bench_networks.forced_decisions(model.plan, f, n, rng))
            for f in (REAL_SIZE_FRACTIONS if real_size else FRACTIONS)
        ]
        if not real_size:
            trained = model.route(x)["decisions"]
            cases.append(
                ("trained", {q: np.asarray(d) for q, d in trained.items()})
            )
        for threads, runners in by_threads.items():
            setting = {"arch": arch, "runtime": runtime, "batch": batch}
            if threads is not None:
                setting["threads"] = threads
            for fraction, decisions in cases:
                rows += time_case(
                    bench, runners, x, fraction, decisions, setting
                )
    return rows


class Bench(typing.NamedTuple):
    """What every timed case of one network shares."""

    model: object
    full_flops: float
    route_flops: list  # of the cheapest and the most expensive route
    args: argparse.Namespace
    log: typing.Callable


def time_case(bench, runners, x, fraction, decisions, setting):
    """The rows of one routing (`fraction` forced, or "trained") in one
    runtime setting: each mode timed side by side."""
    model, full, route_flops = bench.model, bench.full_flops, bench.route_flops
    args, log = bench.args, bench.log
    modes = (
        ["static", "trained_routed"]
        if fraction == "trained"
        else [
            "static",
            "static_cheap",
            "static_equivalent",
            "routed",
            "masked",
        ]
    )
    chosen = {m: runners[m] for m in modes}
    times = bench_timing.time_modes(
        chosen,
        bench_timing.batches_of(x, decisions, setting["batch"]),
        args.repeats,
    )
    flops = mean_flops(model, x, decisions)
    expensive = _expensive_fraction(model.plan, decisions)
    rows = []
    for mode, ms in times.items():
        mode_flops = {
            "static": full,
            "static_cheap": route_flops[0],
            "static_equivalent": route_flops[1],
        }.get(mode, flops)
        flop_speedup = full / mode_flops
        time_speedup = times["static"] / ms
        extra = {}
        if mode == "routed":
            # What routing would cost with zero overhead: each example
            # through its own route's static network.
            mix = (1 - expensive) * times["static_cheap"] + expensive * times[
                "static_equivalent"
            ]
            extra = {"route_mix_ms": mix, "routing_overhead": ms / mix}
        rows.append(
            {
                **setting,
                "routed_fraction": expensive,
                "policy": "trained" if fraction == "trained" else "forced",
                "mode": mode.replace("trained_", ""),
                "ms_per_example": ms,
                "flop_speedup": flop_speedup,
                "time_speedup": time_speedup,
                "efficiency": time_speedup / flop_speedup,
                **extra,
            }
        )
        log(bench_timing.format_row(rows[-1]))
    return rows


def _route_flops(model, route):
    """FLOPs of everything the D2NN runs on `route` (controllers too)."""
    return float(
        sum(
            model.plan.flops[n]
            for n in static_network.route_nodes(model.plan, route)
        )
    )


def _expensive_fraction(plan, decisions):
    _, expensive = bench_networks.cheap_and_expensive_routes(plan)
    first = plan.controllers[0]
    return float(np.mean(decisions[first] == expensive[first]))


def main():
    args = parse_args()
    # Rows of other networks and runtimes already in `--output` stay, so
    # that each (network, runtime) can run in its own process: TF keeps
    # the memory of every batch-256 224x224 function it ran, and one
    # process timing everything outgrows 24 GiB.
    output = pathlib.Path(args.output)
    rows = json.loads(output.read_text())["rows"] if output.exists() else []
    runtimes = args.runtimes.split(",")
    for arch in args.archs.split(","):
        if arch in speed_attention.CANVASES:
            new = speed_attention.bench_attention(arch, args)
        else:
            new = bench_arch(arch, args)
        rows = [
            r
            for r in rows
            if not (r["arch"] == arch and r["runtime"] in runtimes)
        ] + new
        bench_networks.write_results(args.output, args, rows)


if __name__ == "__main__":
    main()
