"""Throughput of one LiteRT `ExportedModel` shared by several threads:
an interpreter per thread (what `load_exported` does) against one
interpreter behind a lock (the other thread-safe design).

Both run the same `.tflite` (the high-low D2NN, any batch size, one
thread per interpreter) on the same batches, side by side in one
process; each thread makes `--calls` calls. Prints images per second
and the ratio, and writes `--output` JSON:

    python benchmarks/shared_runtime_threads.py
"""

import argparse
import concurrent.futures
import json
import pathlib
import platform
import tempfile
import threading
import time

import keras
import numpy as np

from keras_d2nn import architectures
from keras_d2nn import export
from keras_d2nn.export import litert
from keras_d2nn.testing import shape_images


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", default="1,2,4,8")
    parser.add_argument("--batches", default="1,32")
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument(
        "--output", default="benchmarks/results/shared_runtime_threads.json"
    )
    args = parser.parse_args(argv)
    args.threads = [int(t) for t in args.threads.split(",")]
    args.batches = [int(b) for b in args.batches.split(",")]
    return args


def locked_runner(path):
    """One interpreter for every thread, one call at a time."""
    content = pathlib.Path(path).read_bytes()
    runner = litert.interpreter(content, num_threads=1).get_signature_runner()
    ((name, _),) = runner.get_input_details().items()
    lock = threading.Lock()

    def call(images):
        with lock:
            outputs = runner(**{name: images})
            return {k: np.array(v, copy=True) for k, v in outputs.items()}

    return call


def images_per_second(call, batch, threads, calls):
    images = shape_images(batch, seed=1)
    call(images)  # each design's set-up out of the timing
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda _: call(images), range(threads)))  # warm-up
        start = time.perf_counter()
        list(pool.map(lambda _: call(images), range(threads * calls)))
        seconds = time.perf_counter() - start
    return threads * calls * batch / seconds


def main(argv=None):
    args = parse_args(argv)
    keras.utils.set_random_seed(0)
    model = architectures.high_low(gate_input="features")
    model(np.zeros((1, 28, 28, 1), "float32"))
    with tempfile.TemporaryDirectory() as directory:
        path = export.export_litert(
            model, pathlib.Path(directory) / "m.tflite", batch_size=None
        )
        designs = {
            # The runtime call itself: `ExportedModel.__call__` also checks
            # each request, which the locked runner does not.
            "interpreter_per_thread": export.load_exported(path)._call,
            "one_interpreter_locked": locked_runner(path),
        }
        rows = []
        for batch in args.batches:
            for threads in args.threads:
                row = {"batch": batch, "threads": threads}
                for name, call in designs.items():
                    row[name] = images_per_second(
                        call, batch, threads, args.calls
                    )
                row["ratio"] = (
                    row["interpreter_per_thread"]
                    / row["one_interpreter_locked"]
                )
                rows.append(row)
                print(
                    f"batch {batch:>3}, {threads} threads: per thread "
                    f"{row['interpreter_per_thread']:>9,.0f} images/s, "
                    f"locked {row['one_interpreter_locked']:>9,.0f}: "
                    f"x{row['ratio']:.2f}",
                    flush=True,
                )
    output = pathlib.Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(
        json.dumps(
            {
                "settings": {
                    k: v for k, v in vars(args).items() if k != "output"
                },
                "machine": platform.platform(),
                "rows": rows,
            },
            indent=1,
        )
    )
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
