"""Peak memory of serving at batch 256: static network vs routed D2NN.

Each measurement runs in its own process (peak resident memory cannot be
reset inside one): the process builds the network of `bench_networks.py`,
traces the serving function, records its peak resident set size, serves
`--batches` batches of images (Fashion-MNIST test images, or synthetic
224x224x3 pixels for the real-size networks; routing forced so
that `--fraction` of the examples take the expensive path), and records
the peak again. The difference is the memory serving added; the rows
compare it with the static network's. Writes `--output` JSON and prints a
table:

    python benchmarks/serving_memory.py \\
        --output=benchmarks/results/serving_memory.json
"""

import argparse
import json
import pathlib
import resource
import subprocess
import sys

MODES = ("static", "routed", "masked")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--archs", default="high_low,cascade,high_low_224,cascade_224"
    )
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--fraction", type=float, default=0.3)
    parser.add_argument(
        "--worker",
        default=None,
        help="internal: 'arch,mode' to measure in-process",
    )
    parser.add_argument(
        "--output", default="benchmarks/results/serving_memory.json"
    )
    return parser.parse_args()


def peak_mib():
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def worker(arch, mode, args):
    """Measures one (arch, mode) in this process; prints one JSON line."""
    import bench_networks
    import numpy as np
    import tensorflow as tf

    from keras_d2nn.export import static_network

    model = bench_networks.BUILDERS[arch]()
    n = args.batch * args.batches
    x = bench_networks.images(arch, n)
    decisions = bench_networks.forced_decisions(
        model.plan, args.fraction, n, np.random.default_rng(0)
    )
    spec = tf.TensorSpec(
        [args.batch] + list(bench_networks.image_shape(arch)), tf.float32
    )
    if mode == "static":
        network = static_network.static_network(model)
        fn = tf.function(lambda images, forced: network(images))
    else:
        fn = tf.function(
            lambda images, forced: (
                model.trace(
                    images, decisions=forced, mode=mode, statistics=False
                ).outputs
            )
        )
    forced_spec = {
        q: tf.TensorSpec([args.batch], tf.int32) for q in model.plan.controllers
    }
    run = fn.get_concrete_function(spec, forced_spec)
    before = peak_mib()
    for i in range(0, n, args.batch):
        run(
            tf.constant(x[i : i + args.batch]),
            {
                q: tf.constant(d[i : i + args.batch])
                for q, d in decisions.items()
            },
        )
    after = peak_mib()
    print(
        json.dumps(
            {
                "arch": arch,
                "mode": mode,
                "batch": args.batch,
                "routed_fraction": args.fraction,
                "peak_before_mib": before,
                "peak_after_mib": after,
                "serving_mib": after - before,
            }
        )
    )


def main():
    args = parse_args()
    if args.worker:
        arch, mode = args.worker.split(",")
        worker(arch, mode, args)
        return
    rows = []
    for arch in args.archs.split(","):
        for mode in MODES:
            result = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    f"--worker={arch},{mode}",
                    f"--batch={args.batch}",
                    f"--batches={args.batches}",
                    f"--fraction={args.fraction}",
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            rows.append(json.loads(result.stdout.strip().splitlines()[-1]))
        static = next(
            r for r in rows if r["arch"] == arch and r["mode"] == "static"
        )
        for row in rows:
            if row["arch"] == arch:
                row["vs_static"] = row["serving_mib"] / max(
                    static["serving_mib"], 1e-9
                )
                row["total_vs_static"] = (
                    row["peak_after_mib"] / static["peak_after_mib"]
                )
                print(
                    f"{arch:12s} {row['mode']:7s} serving adds "
                    f"{row['serving_mib']:7.1f} MiB (x"
                    f"{row['vs_static']:.2f} of static); peak "
                    f"{row['peak_after_mib']:7.1f} MiB (x"
                    f"{row['total_vs_static']:.2f})"
                )
    output = pathlib.Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1))
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
