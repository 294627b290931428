"""Timing helpers shared by `speed.py`'s benchmarks: runners of a D2NN's
modes in the TF graph and in LiteRT, and interleaved timing.

A mode is a Python function `f(images, decisions (batch, controllers)
int32) -> outputs`; `tf_runners` and `litert_runners` turn a
`{mode: function}` into runners at one batch size, and `time_modes` times
them side by side.
"""

import time

import numpy as np
import tensorflow as tf

from keras_d2nn.export import litert


def runtime_plans(args):
    """`[(runtime, batch, thread counts or None)]` to time, from
    `speed.py`'s `--runtimes`, `--tf_batches`, `--litert_batches` and
    `--litert_threads`."""
    threads = [int(t) for t in args.litert_threads.split(",")]
    return [
        ("tf", int(b), None)
        for b in args.tf_batches.split(",")
        if "tf" in args.runtimes
    ] + [
        ("litert", int(b), threads)
        for b in args.litert_batches.split(",")
        if "litert" in args.runtimes
    ]


def d2nn_runner(model, mode):
    """`f(images, decisions)`: the D2NN in `mode`, each controller's
    decision forced by its column of `decisions`. The controllers'
    logits are outputs too: a served D2NN computes them to decide, and
    without them the traced graph would prune the controllers' networks
    (a forced decision does not need them)."""
    controllers = list(model.plan.controllers)

    def run(images, decisions):
        forced = {q: decisions[:, i] for i, q in enumerate(controllers)}
        trace = model.trace(
            images, decisions=forced, mode=mode, statistics=False
        )
        return {
            **trace.outputs,
            **{f"logits_{q}": trace.logits[q] for q in controllers},
        }

    return run


def plain_runner(network):
    """`f(images, decisions)` of a static network (decisions unused)."""
    return lambda images, decisions: network(images, training=False)


def signature(model, batch):
    image = list(model.plan.specs["image"].shape[1:])
    return [
        tf.TensorSpec([batch] + image, tf.float32, name="images"),
        tf.TensorSpec(
            [batch, len(model.plan.controllers)], tf.int32, name="decisions"
        ),
    ]


def tf_runners(model, functions, batch):
    """Concrete TF functions for each mode (`{mode: function}`, as
    `mode_functions` returns) at a fixed batch size."""
    return {
        mode: tf.function(fn).get_concrete_function(*signature(model, batch))
        for mode, fn in functions.items()
    }


def litert_runners(model, functions, batch, thread_counts):
    """`{threads: {mode: runner}}`: LiteRT interpreters with the default
    settings (XNNPACK, which the routed model runs at any batch: no branch
    gets a zero-size tensor), one per mode (`{mode: function}`) and thread
    count."""
    runners = {threads: {} for threads in thread_counts}
    for mode, fn in functions.items():
        content = litert.convert([model], fn, signature(model, batch))
        for threads in thread_counts:
            runner = litert.interpreter(
                content, num_threads=threads
            ).get_signature_runner()
            names = set(runner.get_input_details())

            def call(images, decisions, runner=runner, names=names):
                feed = {"images": images, "decisions": decisions}
                return runner(**{k: v for k, v in feed.items() if k in names})

            runners[threads][mode] = call
    return runners


def batches_of(x, decisions, batch):
    """`(images, decisions (batch, controllers))` pairs covering `x`."""
    matrix = np.stack(list(decisions.values()), axis=1).astype(np.int32)
    n = len(x) - len(x) % batch
    return [
        (x[i : i + batch], matrix[i : i + batch]) for i in range(0, n, batch)
    ]


def time_modes(runners, work, repeats):
    """Median ms per example of each runner over `work`, modes interleaved
    in every repeat so that machine noise hits them alike."""
    examples = sum(len(x) for x, _ in work)
    for run in runners.values():  # warm up
        run(*work[0])
    times = {mode: [] for mode in runners}
    for _ in range(repeats):
        for mode, run in runners.items():
            start = time.perf_counter()
            for x, d in work:
                run(x, d)
            times[mode].append((time.perf_counter() - start) * 1e3 / examples)
    return {mode: float(np.median(t)) for mode, t in times.items()}


def format_row(row):
    threads = f"t={row['threads']}" if "threads" in row else "   "
    return (
        f"{row['arch']:12s} {row['runtime']:6s} b={row['batch']:<4d} "
        f"{threads} "
        f"{row['policy']:7s} f={row['routed_fraction']:.2f} "
        f"{row['mode']:17s} {row['ms_per_example']:8.4f} ms/ex  "
        f"FLOPx{row['flop_speedup']:6.2f}  timex{row['time_speedup']:6.2f}"
        f"  eff {row['efficiency']:.2f}"
        + (
            f"  overhead x{row['routing_overhead']:.2f}"
            if "routing_overhead" in row
            else ""
        )
    )
