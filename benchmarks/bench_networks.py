"""The networks the speed benchmarks time: high-low and cascade D2NNs whose
cheap and expensive paths differ in cost by more than 10x, and the forced
routings that send a chosen fraction of examples down the expensive path.

Imported by `speed.py`, `train_speed.py` and `serving_memory.py` (run
them as scripts: their folder is then on the import path), with the
writer of their JSON results.
"""

import json
import os
import pathlib
import platform

import keras
import numpy as np
import tensorflow as tf

from keras_d2nn import architectures
from keras_d2nn.export import static_network


def conv(filters, **kwargs):
    return keras.layers.Conv2D(
        filters, 3, padding="same", activation="relu", **kwargs
    )


def bench_high_low():
    """Cheap path about 2 MFLOPs, expensive path about 33 MFLOPs."""
    low = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            conv(16, strides=2),
            conv(32),
            keras.layers.MaxPooling2D(2),
            keras.layers.Flatten(),
            keras.layers.Dense(64, activation="relu"),
        ],
        name="low_network",
    )
    high = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            conv(64),
            keras.layers.MaxPooling2D(2),
            conv(128),
            keras.layers.MaxPooling2D(2),
            keras.layers.Flatten(),
            keras.layers.Dense(256, activation="relu"),
            keras.layers.Dense(10),
        ],
        name="high_network",
    )
    return architectures.high_low(low_network=low, high_network=high)


def bench_cascade():
    """Stage 1 (with its head) about 0.6 MFLOPs; stages 2 and 3 about 7
    and 22 MFLOPs."""
    stages = [
        keras.Sequential(
            [keras.Input((28, 28, 1)), conv(32), keras.layers.MaxPooling2D(2)],
            name="stage1",
        ),
        keras.Sequential(
            [conv(64), keras.layers.MaxPooling2D(2)], name="stage2"
        ),
        keras.Sequential([conv(128), conv(128)], name="stage3"),
    ]
    return architectures.cascade(stages=stages)


BUILDERS = {"high_low": bench_high_low, "cascade": bench_cascade}


def cheap_and_expensive_routes(plan):
    routes = static_network.static_routes(plan, max_routes=1 << 30)
    return routes[0][1], routes[-1][1]


def forced_decisions(plan, fraction, n, rng):
    """`{controller: int32 (n,)}`: exactly round(fraction * n) examples
    take the most expensive route, the others the cheapest."""
    cheap, expensive = cheap_and_expensive_routes(plan)
    take = np.zeros(n, dtype=bool)
    take[rng.choice(n, int(round(fraction * n)), replace=False)] = True
    return {
        q: np.where(take, expensive[q], cheap[q]).astype(np.int32)
        for q in plan.controllers
    }


def write_results(path, args, rows):
    """Writes `{"machine", "args", "rows"}` as JSON to `path`.

    Example: `write_results("benchmarks/results/speed.json", args, rows)`.
    """
    output = pathlib.Path(path)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(
        json.dumps(
            {
                "machine": {
                    "processor": platform.processor() or platform.machine(),
                    "cpus": os.cpu_count(),
                    "tensorflow": tf.__version__,
                },
                "args": vars(args),
                "rows": rows,
            },
            indent=1,
        )
    )
    print(f"wrote {output}")
