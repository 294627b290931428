"""Batch-1 latency of exported D2NNs on the cheap and the expensive route.

For each exported model (LiteRT .tflite, ONNX, SavedModel), runs real test
images one at a time, groups them by the route the exported model itself
took (its `decision_*` outputs), and reports the median time per image of
each route next to its executed FLOPs. If routing really skips work, the
time ratio of two routes follows their FLOP ratio.

    python benchmarks/export_latency.py \
        --exported=saved_models/fashion_mnist_high_low/model.tflite \
        --exported=saved_models/fashion_mnist_high_low/model_int8.tflite \
        --exported=saved_models/fashion_mnist_high_low/model.onnx

Writes `benchmarks/results/export_latency.json` (see --output).
"""

import json
import os
import pathlib
import platform
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from keras_d2nn import data  # noqa: E402
from keras_d2nn.export import runtime  # noqa: E402

flags.DEFINE_multi_string("exported", None, "Exported model paths.")
flags.DEFINE_integer("images", 1000, "Test images to route.")
flags.DEFINE_integer("per_route", 100, "Images timed per route (at most).")
flags.DEFINE_integer("repeats", 5, "Timed passes over those images.")
flags.DEFINE_string(
    "output", "benchmarks/results/export_latency.json", "Where the JSON goes."
)
FLAGS = flags.FLAGS


def route_names(outputs):
    """One label per image: its decisions, e.g. 'gate=0'."""
    keys = sorted(k for k in outputs if k.startswith("decision_"))
    return np.array(
        [
            ",".join(
                f"{k[len('decision_') :]}={int(outputs[k][i])}" for k in keys
            )
            for i in range(len(outputs["executed_flops"]))
        ]
    )


def time_per_image(model, images, repeats):
    """Median seconds of one batch-1 call over `repeats` passes."""
    model(images[:1])  # warm-up: first calls allocate
    samples = []
    for _ in range(repeats):
        for image in images:
            start = time.perf_counter()
            model(image[None])
            samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def measure(path, images):
    model = runtime.load_exported(path)
    if model.batch_size not in (None, 1):
        raise ValueError(
            f"{path}: exported for batches of "
            f"{model.batch_size}; this measures batch 1."
        )
    outputs = model.run(images)
    routes = route_names(outputs)
    rows = []
    for route in sorted(set(routes)):
        chosen = images[routes == route][: FLAGS.per_route]
        flops = float(np.median(outputs["executed_flops"][routes == route]))
        rows.append(
            {
                "route": route,
                "images": int(len(chosen)),
                "flops": flops,
                "ms": 1e3 * time_per_image(model, chosen, FLAGS.repeats),
            }
        )
    cheapest = min(rows, key=lambda r: r["flops"])
    for row in rows:
        row["flop_ratio"] = row["flops"] / cheapest["flops"]
        row["time_ratio"] = row["ms"] / cheapest["ms"]
    return {
        "path": str(path),
        "format": model.format,
        "quantized": model.quantized,
        "routes": rows,
    }


def main(argv):
    del argv
    if not FLAGS.exported:
        sys.exit("error: give at least one --exported=PATH.")
    images, _ = data.load_arrays("fashion_mnist", "test", take=FLAGS.images)
    results = [measure(path, images) for path in FLAGS.exported]
    print(
        f"{'model':<44} {'route':<10} {'MFLOPs':>8} {'ms/image':>9} "
        f"{'FLOP ratio':>10} {'time ratio':>10}"
    )
    for result in results:
        for row in result["routes"]:
            name = "/".join(pathlib.Path(result["path"]).parts[-2:])
            print(
                f"{name:<44} "
                f"{row['route']:<10} {row['flops'] / 1e6:>8.2f} "
                f"{row['ms']:>9.3f} {row['flop_ratio']:>10.1f} "
                f"{row['time_ratio']:>10.1f}"
            )
    output = pathlib.Path(FLAGS.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(
        json.dumps(
            {
                "machine": f"{platform.processor() or platform.machine()}, "
                f"{os.cpu_count()} cores",
                "threads": 1,
                "results": results,
            },
            indent=2,
        )
    )
    print(f"wrote {output}")


if __name__ == "__main__":
    app.run(main)
