"""FLOP cost against latency cost on Fashion-MNIST, TF CPU or LiteRT.

Issue 18's check of `compile(cost="latency")`, on one of two networks
(`--network`): the cascade, whose routes rank alike in FLOPs and in time
(each exit saves FLOPs and time), and `wide_or_deep`
(`bench_networks.py`), whose gate picks among stopping and two branches
as accurate as each other, one with half the FLOPs of the other but the
slower. For one seed:

1. trains the network (its gates reading a head's confidence) with the
   two-phase recipe of `tradeoff.py` (`--epochs` of every module on every
   example, `--gate_epochs` of the controllers alone): the controllers'
   logits are values of the task reward, so the cost enters only through
   the price that `calibrate_budget` puts on it, exactly as training with
   that cost weight would;
2. profiles it on `--runtime` at `--batch_size` (TF CPU at 64 or LiteRT
   at 1 by default)
   (`keras_d2nn.profiling.profile_latency`: the nodes alone, then the
   routed model on each route, the profile fitted to those times), and
   the nodes alone only (`routes=False`), for comparison;
3. for each cost, FLOPs (`compile(cost="flops")`) and the profiled
   milliseconds (`compile(cost="latency", latency_profile=...)`), lands
   the model on a grid of budgets (fractions of the full FLOPs or of the
   full latency) with the held-out images, and on the test images
   records accuracy, FLOP fraction, the profile's predicted ms per
   example and the measured ms per example (the routed model at
   `--batch_size`, as a `tf.function` or converted to LiteRT with the
   point's offsets and run with one thread; medians of `--repeats`
   passes, the two costs' points interleaved);
4. times, in the same passes, the model with every example forced down
   each route: the profile's own routes measured again;
5. profiles the model again after those passes: two profiles of one
   model on one machine stand apart by the machine's drift, which
   bounds how close any prediction can come.

Printed and saved (`--output`): every point, predicted / measured ms,
and, at matched accuracy, the measured ms of the fastest FLOP-priced
point at least as accurate as each latency-priced point, over that
point's (> 1: the latency cost is faster at that accuracy).

    python benchmarks/latency_cost.py                   # TF CPU, batch 64
    python benchmarks/latency_cost.py --runtime=litert  # LiteRT, batch 1
    python benchmarks/latency_cost.py --network=wide_or_deep [--runtime=..]
"""

import argparse
import json
import pathlib
import statistics
import time

import bench_networks
import keras
import numpy as np
import tensorflow as tf
import tradeoff

import keras_d2nn
from keras_d2nn.estimators import FullInformation
from keras_d2nn.estimators import budget as budget_lib
from keras_d2nn.export import litert
from keras_d2nn.models import calibration
from keras_d2nn.profiling import route_timing

COSTS = ("flops", "latency")
NETWORKS = ("cascade", "wide_or_deep")


def parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--network",
        choices=NETWORKS,
        default="cascade",
        help="cascade: its routes rank alike in FLOPs and in time; "
        "wide_or_deep (bench_networks.py): its branches rank differently",
    )
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--gate_epochs", type=int, default=3)
    parser.add_argument("--points", type=int, default=8)
    parser.add_argument(
        "--runtime", choices=keras_d2nn.profiling.RUNTIMES, default="tf_cpu"
    )
    parser.add_argument(
        "--batch_size",
        type=int,
        default=None,
        help="default: 64 on tf_cpu, 1 on litert",
    )
    parser.add_argument(
        "--tf_threads",
        type=int,
        default=0,
        help="TF's intra- and inter-op threads for training, profiling and "
        "timing alike (0: TF's default, every core)",
    )
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--profile_repeats", type=int, default=20)
    parser.add_argument("--profile_warmup", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    tradeoff.add_data_flag(parser)
    parser.add_argument(
        "--output",
        default=None,
        help="default: benchmarks/results/latency_cost.json on tf_cpu, "
        "latency_cost_litert.json on litert",
    )
    parser.add_argument(
        "--summary_only",
        action="store_true",
        help="print the saved points and compare them again",
    )
    args = parser.parse_args(argv)
    if args.batch_size is None:
        args.batch_size = 1 if args.runtime == "litert" else 64
    if args.output is None:
        network = "" if args.network == "cascade" else f"_{args.network}"
        runtime = "_litert" if args.runtime == "litert" else ""
        args.output = f"benchmarks/results/latency_cost{network}{runtime}.json"
    return args


def train(args, data):
    """`--network`, trained with the two-phase recipe."""
    if args.network == "wide_or_deep":
        return train_wide_or_deep(args, data)
    return train_cascade(args, data)


def train_cascade(args, data):
    """The two-phase cascade (tradeoff.py's `two_phase` contender)."""
    options = tradeoff.parse_args(
        [
            "--arch=cascade",
            f"--epochs={args.epochs}",
            f"--gate_epochs={args.gate_epochs}",
        ]
        + args.data_args.split()
    )
    model, _ = tradeoff.train_learned(
        "two_phase", None, data[0], options, args.seed
    )
    return model


def train_wide_or_deep(args, data):
    """`bench_networks.wide_or_deep` with the two-phase recipe: its
    modules (the cheap path with its head, `wide`, `deep`) each trained
    on every training image for `--epochs`, as classifiers of their own,
    then the gate alone for `--gate_epochs` on the values of the task
    reward (`FullInformation`: every action's reward on every example)."""
    keras.utils.set_random_seed(args.seed)
    model = bench_networks.wide_or_deep()
    (x_train, y_train), _, _ = data
    layer = {name: node.layer for name, node in model.plan.nodes.items()}
    classifiers = [
        keras.Sequential([layer["low"], layer["low_head"]]),
        layer["wide"],
        layer["deep"],
    ]
    for classifier in classifiers:
        classifier.compile(keras.optimizers.Adam(1e-3), tradeoff.LOSS)
        classifier.fit(
            x_train, y_train, epochs=args.epochs, batch_size=128, verbose=2
        )
    model.freeze_modules()
    tradeoff.compile_full_information(model)
    model.fit(
        x_train, y_train, epochs=args.gate_epochs, batch_size=128, verbose=2
    )
    model.freeze_modules(False)
    return model


def priced(model, cost, profile):
    """Compiles `model` so that calibration prices `cost`."""
    model.compile(
        keras.optimizers.Adam(1e-3),
        tradeoff.LOSS,
        cost_weight=0.0,
        estimator=FullInformation(objective="value"),
        cost=cost,
        latency_profile=profile if cost == "latency" else None,
    )


def route_rows(model, profile, alone, data):
    """Every route, each example forced down it (as the profiler times
    it), on the test images."""
    _, _, (x_test, y_test) = data
    plan = model.plan
    rows = []
    for route, index in route_timing.distinct_routes(plan).items():
        actions = route_timing.joint_actions(plan, index)
        offsets = route_timing.forcing_offsets(plan, actions)
        forced = {q: np.full(len(x_test), a) for q, a in actions.items()}
        routes = model.route(x_test, labels=y_test, decisions=forced)
        rows.append(
            {
                "cost": "route",
                "route": list(route),
                "accuracy": routes.accuracy,
                "flop_fraction": routes.mean_flop_fraction,
                "predicted_ms": profile.predict(routes),
                "predicted_alone_ms": alone.predict(routes),
                "offsets": offsets,
                "executed": routes.executed,
            }
        )
    return rows


def points(model, profile, alone, args, data):
    """Every (cost, budget) point: the landed model on the test images."""
    _, held_out, (x_test, y_test) = data
    rows = []
    for cost in COSTS:
        priced(model, cost, profile)
        measure = model.cost_measure
        cheapest = budget_lib.cheapest_cost(model.plan, measure)
        # 0.9 of the dearest route (of the full cost on the cascade, whose
        # dearest route runs every node; wide_or_deep's runs one branch).
        top = 0.9 * measure.route_costs.max() / measure.full
        for budget in np.linspace(cheapest + 0.03, top, args.points):
            landed = model.calibrate_budget(held_out[0], float(budget))
            routes = model.route(x_test, labels=y_test)
            rows.append(
                {
                    "cost": cost,
                    "budget": float(budget),
                    "price": landed.delta,
                    "accuracy": routes.accuracy,
                    "flop_fraction": routes.mean_flop_fraction,
                    "predicted_ms": profile.predict(routes),
                    "predicted_alone_ms": alone.predict(routes),
                    "executed": routes.executed,
                    "offsets": {
                        q: np.asarray(o).tolist()
                        for q, o in calibration.logit_offsets(
                            model.plan, landed.delta, model.cost_measure
                        ).items()
                    },
                }
            )
    return rows


def _assign_offsets(model, row):
    for q, offset in row["offsets"].items():
        model.plan.nodes[q].layer.logit_offset.assign(offset)


def tf_cpu_runners(model, rows, batches):
    """One runner per row: the routed model as a `tf.function`; its
    offsets are variables, so one trace serves every row (`time_points`
    assigns each row's before its pass)."""
    call = tf.function(lambda x: model(x, training=False))
    tensors = [tf.constant(b) for b in batches]
    for batch in tensors[:2]:
        call(batch)  # traced and warm

    def run():
        for batch in tensors:
            tf.nest.flatten(call(batch))[0].numpy()

    return [run] * len(rows)


def litert_runners(model, rows, batches):
    """One runner per row: the model converted to LiteRT with the row's
    offsets (frozen as constants on conversion), one thread, the default
    interpreter settings (XNNPACK)."""
    runners = []
    for row in rows:
        _assign_offsets(model, row)
        content = litert.convert(
            [model],
            lambda x: model(x, training=False),
            [tf.TensorSpec(batches[0].shape, tf.float32)],
        )
        interpreter = litert.interpreter(content, num_threads=1)
        index = interpreter.get_input_details()[0]["index"]

        def run(interpreter=interpreter, index=index):
            for batch in batches:
                interpreter.set_tensor(index, batch)
                interpreter.invoke()

        runners.append(run)
    return runners


def time_points(model, rows, args, x_test):
    """Measured ms per example of every row on `--runtime`, the rows
    interleaved in each of `--repeats` passes over the test images so
    that machine noise hits them alike; the median pass."""
    size = args.batch_size
    batches = [
        np.ascontiguousarray(x_test[i : i + size], np.float32)
        for i in range(0, len(x_test) - size + 1, size)
    ]
    make = litert_runners if args.runtime == "litert" else tf_cpu_runners
    runners = make(model, rows, batches)
    samples = {i: [] for i in range(len(rows))}
    for _ in range(args.repeats):
        for i, run in enumerate(runners):
            _assign_offsets(model, rows[i])  # untimed; LiteRT froze them
            start = time.perf_counter()
            run()
            elapsed = time.perf_counter() - start
            samples[i].append(1000.0 * elapsed / (len(batches) * size))
    for i, row in enumerate(rows):
        row["measured_ms"] = statistics.median(samples[i])
        for key in ("predicted", "predicted_alone"):
            row[f"{key}_over_measured"] = row[f"{key}_ms"] / row["measured_ms"]


def matched(rows):
    """At the accuracy of each latency-priced point on its curve's frontier
    (no faster point of that curve is as accurate): the fastest measured
    ms of a FLOP-priced point at least as accurate, over the
    latency-priced point's ms (> 1: the latency cost is faster at that
    accuracy). The curves' best trade-offs compared: on the cascade
    accuracy is not monotonic in cost, so they cannot be interpolated."""
    flops = [r for r in rows if r["cost"] == "flops"]
    latency = [r for r in rows if r["cost"] == "latency"]
    result = []
    for row in latency:
        if any(
            other["measured_ms"] < row["measured_ms"]
            and other["accuracy"] >= row["accuracy"]
            for other in latency
        ):
            continue  # dominated on its own curve: not a trade-off to pick
        rivals = [r for r in flops if r["accuracy"] >= row["accuracy"]]
        if not rivals:
            continue  # more accurate than every FLOP-priced point
        fastest = min(rivals, key=lambda r: r["measured_ms"])
        result.append(
            {
                "accuracy": row["accuracy"],
                "latency_priced_ms": row["measured_ms"],
                "flop_priced_ms": fastest["measured_ms"],
                "flop_priced_accuracy": fastest["accuracy"],
                "flop_over_latency": fastest["measured_ms"]
                / row["measured_ms"],
            }
        )
    return result


def frontier(rows):
    """`(accuracy, ms)` of the points no faster point is as accurate as,
    by increasing time (and so accuracy)."""
    points = sorted((r["measured_ms"], r["accuracy"]) for r in rows)
    result = []
    for ms, accuracy in points:
        if not result or accuracy > result[-1][0]:
            result.append((accuracy, ms))
    return result


def time_at(curve, accuracy):
    """The time `curve` (a `frontier`) needs for `accuracy`, linearly
    interpolated between its points; None outside its range."""
    for (a0, t0), (a1, t1) in zip(curve, curve[1:]):
        if a0 <= accuracy <= a1:
            return t0 + (accuracy - a0) / (a1 - a0) * (t1 - t0)
    if curve and accuracy == curve[0][0]:
        return curve[0][1]
    return None


def interpolated(rows):
    """At each accuracy of either curve's frontier within both frontiers'
    range: the time each frontier needs for it, interpolated, and FLOP
    over latency (> 1: the latency cost is faster). Unlike `matched`,
    which compares a point with the fastest at least as accurate (a
    coarse grid then favours whichever curve has the point), both curves
    are read at the same accuracy."""
    curves = {
        cost: frontier([r for r in rows if r["cost"] == cost]) for cost in COSTS
    }
    accuracies = sorted({a for curve in curves.values() for a, _ in curve})
    result = []
    for accuracy in accuracies:
        times = {
            cost: time_at(curve, accuracy) for cost, curve in curves.items()
        }
        if None in times.values():
            continue
        result.append(
            {
                "accuracy": accuracy,
                "flop_priced_ms": times["flops"],
                "latency_priced_ms": times["latency"],
                "flop_over_latency": times["flops"] / times["latency"],
            }
        )
    return result


def report(results):
    """Prints the points and the comparison at matched accuracy."""
    print(
        f"{'cost':<8} {'budget':>6} {'accuracy':>8} {'FLOPs':>6} "
        f"{'predicted ms':>12} {'measured ms':>11} {'pred/meas':>9} "
        f"{'again/meas':>10} {'alone/meas':>10}"
    )
    for r in results.get("routes", []) + results["points"]:
        budget = f"{r['budget']:>6.3f}" if "budget" in r else f"{'-':>6}"
        print(
            f"{r['cost']:<8} {budget} {r['accuracy']:>8.4f} "
            f"{r['flop_fraction']:>6.3f} {r['predicted_ms']:>12.4f} "
            f"{r['measured_ms']:>11.4f} {r['predicted_over_measured']:>9.2f} "
            f"{r.get('predicted_after_over_measured', float('nan')):>10.2f} "
            f"{r.get('predicted_alone_over_measured', float('nan')):>10.2f}"
        )
    print(
        "\nat matched accuracy: measured ms of the fastest FLOP-priced point "
        "at least as accurate / the latency-priced point's"
    )
    for c in results["matched_accuracy"]:
        print(
            f"  accuracy {c['accuracy']:.4f}: {c['flop_priced_ms']:.4f} "
            f"(at {c['flop_priced_accuracy']:.4f}) / "
            f"{c['latency_priced_ms']:.4f} = {c['flop_over_latency']:.2f}"
        )
    print(
        "\ninterpolated on both frontiers at the same accuracy: FLOP-priced "
        "ms / latency-priced ms"
    )
    for c in results.get("interpolated", []):
        print(
            f"  accuracy {c['accuracy']:.4f}: {c['flop_priced_ms']:.4f} / "
            f"{c['latency_priced_ms']:.4f} = {c['flop_over_latency']:.2f}"
        )


def profiled(model, args, routes):
    """The model's profile on `--runtime` at `--batch_size`: fitted to its
    routes, or (`routes=False`) its nodes alone."""
    return keras_d2nn.profiling.profile_latency(
        model,
        runtime=args.runtime,
        batch_size=args.batch_size,
        repeats=args.profile_repeats,
        warmup=args.profile_warmup,
        routes=routes,
    )


def _saved(row):
    """A row without what only the run needs (offsets, masks)."""
    return {k: v for k, v in row.items() if k not in ("offsets", "executed")}


def main(argv=None):
    args = parse(argv)
    if args.tf_threads:  # before TF starts: it cannot change afterwards
        tf.config.threading.set_intra_op_parallelism_threads(args.tf_threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.tf_threads)
    path = pathlib.Path(args.output)
    if args.summary_only:  # the comparison again, from the saved points
        results = json.loads(path.read_text())
        results["matched_accuracy"] = matched(results["points"])
        results["interpolated"] = interpolated(results["points"])
    else:
        data = tradeoff.load_data_of("cascade", args.data_args)
        model = train(args, data)
        profile, alone = (
            profiled(model, args, routes=routes) for routes in (True, False)
        )
        forced = route_rows(model, profile, alone, data)
        rows = points(model, profile, alone, args, data)
        time_points(model, forced + rows, args, data[2][0])
        # Profiled again after the passes: how far two profiles of the
        # same model on this machine stand apart bounds any prediction.
        after = profiled(model, args, routes=True)
        for row in forced + rows:
            row["predicted_after_ms"] = after.predict(row["executed"])
            row["predicted_after_over_measured"] = (
                row["predicted_after_ms"] / row["measured_ms"]
            )
        results = {
            "settings": vars(args),
            "profile": profile.get_config(),
            "profile_after": after.get_config(),
            "profile_alone": alone.get_config(),
            "routes": [_saved(r) for r in forced],
            "points": [_saved(r) for r in rows],
            "matched_accuracy": matched(rows),
            "interpolated": interpolated(rows),
        }
    report(results)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1, default=float))
    print(f"wrote {path}")
    return results


if __name__ == "__main__":
    main()
