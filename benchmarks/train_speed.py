"""Training speed: examples per second of routed vs masked D2NN training
and of the full static network.

For each network of `bench_networks.py` (cheap and expensive paths
differing by more than 10x), trains for `--steps` steps on real
Fashion-MNIST images, side by side in one run:

- `static`: the full static network (`keras_d2nn.static_network`), plain
  Keras `fit`;
- `routed` / `masked`: the D2NN with routing forced at random so that a
  fraction of the examples (`--fractions`) takes the expensive path;
  masked computes every branch, as mask-based peers do;
- `learned`: the D2NN training its controllers too (REINFORCE, routed),
  starting from untrained controllers: what a D2NN epoch really costs.

Each configuration is timed over `--repeats` rounds (configurations
interleaved), after a warm-up that traces the step. Writes `--output`
(JSON list of rows `{arch, runtime, batch, routed_fraction, mode,
examples_per_second, ms_per_example, time_speedup}`, speedup relative to
`static`) and prints a table. Example (the figures in docs/performance.md):

    python benchmarks/train_speed.py \
        --output=benchmarks/results/train_speed.json
"""

import argparse
import time

import bench_networks
import keras
import numpy as np
import tensorflow as tf

from keras_d2nn import data
from keras_d2nn.export import static_network

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", default="high_low,cascade")
    parser.add_argument("--fractions", default="0.3,1.0")
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--output", default="benchmarks/results/train_bench_networks.json"
    )
    return parser.parse_args()


def forced_routing(plan, fraction):
    """Random routing: each controller takes its expensive-route action
    with probability `fraction` (for a cascade, the chance of reaching the
    last stage is then lower: the rows report the fraction as given)."""
    cheap, expensive = bench_networks.cheap_and_expensive_routes(plan)
    routing = {}
    for q in plan.controllers:
        probs = np.zeros(len(plan.nodes[q].actions))
        probs[cheap[q]] += 1.0 - fraction
        probs[expensive[q]] += fraction
        routing[q] = probs.tolist()
    return routing


def trainers(arch, fractions):
    """`{(mode, fraction): model ready to fit}`."""

    def d2nn(execution, routing=None):
        model = bench_networks.BUILDERS[arch]()
        model.execution = execution
        model.compile(keras.optimizers.Adam(1e-3), LOSS, cost_weight=0.1)
        if routing is not None:
            model.set_routing(routing)
        return model

    reference = bench_networks.BUILDERS[arch]()
    static = static_network.static_network(reference)
    # No XLA, as for the D2NN (whose routed steps cannot be XLA-compiled).
    static.compile(keras.optimizers.Adam(1e-3), LOSS, jit_compile=False)
    models = {("static", 1.0): static, ("learned", None): d2nn("routed")}
    for fraction in fractions:
        routing = forced_routing(reference.plan, fraction)
        models[("routed", fraction)] = d2nn("routed", routing)
        models[("masked", fraction)] = d2nn("masked", routing)
    return models


def timed_steps(model, batches):
    """Seconds for one training step per batch (`train_on_batch` runs the
    same compiled step as `fit`, without the per-`fit` set-up)."""
    start = time.perf_counter()
    for x, y in batches:
        logs = model.train_on_batch(x, y, return_dict=True)
    model.last_logs = logs
    return time.perf_counter() - start


def bench_arch(arch, args, x, y, log=print):
    keras.utils.set_random_seed(args.seed)
    fractions = [float(f) for f in args.fractions.split(",")]
    models = trainers(arch, fractions)
    examples = args.steps * args.batch_size
    b = args.batch_size
    batches = [
        (
            tf.constant(x[i * b : (i + 1) * b]),
            tf.constant(y[i * b : (i + 1) * b]),
        )
        for i in range(args.steps)
    ]
    for model in models.values():  # warm-up: traces the train step
        timed_steps(model, batches[:2])
    seconds = {key: [] for key in models}
    for _ in range(args.repeats):
        for key, model in models.items():
            seconds[key].append(timed_steps(model, batches))
    static_s = float(np.median(seconds[("static", 1.0)]))
    rows = []
    for (mode, fraction), times in seconds.items():
        s = float(np.median(times))
        if mode == "learned":
            learned = models[(mode, fraction)]
            fraction = _expensive_rate(learned, learned.last_logs)
        rows.append(
            {
                "arch": arch,
                "runtime": "tf_train",
                "batch": args.batch_size,
                "routed_fraction": fraction,
                "mode": mode,
                "examples_per_second": examples / s,
                "ms_per_example": s * 1e3 / examples,
                "time_speedup": static_s / s,
            }
        )
        log(format_row(rows[-1]))
    return rows


def _expensive_rate(model, metrics):
    """The learned controllers' rate of the first expensive action, from
    the metrics of the last timed steps."""
    _, expensive = bench_networks.cheap_and_expensive_routes(model.plan)
    q = model.plan.controllers[0]
    action = model.plan.nodes[q].actions[expensive[q]]
    value = metrics.get(f"{q}_{action}")
    return None if value is None else float(value)


def format_row(row):
    fraction = row["routed_fraction"]
    fraction = "  - " if fraction is None else f"{fraction:.2f}"
    return (
        f"{row['arch']:9s} b={row['batch']:<4d} f={fraction} "
        f"{row['mode']:8s} {row['examples_per_second']:9.1f} ex/s  "
        f"{row['ms_per_example']:7.3f} ms/ex  "
        f"x{row['time_speedup']:.2f} vs static"
    )


def main():
    args = parse_args()
    x, y = data.load_fashion_mnist("train")
    rows = []
    for arch in args.archs.split(","):
        rows += bench_arch(arch, args, x, y)
    bench_networks.write_results(args.output, args, rows)


if __name__ == "__main__":
    main()
