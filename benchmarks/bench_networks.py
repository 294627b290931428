"""The networks the speed benchmarks time: high-low and cascade D2NNs whose
cheap and expensive paths differ in cost by more than 10x, and the forced
routings that send a chosen fraction of examples down the expensive path.

Two sizes: `high_low` and `cascade` read 28x28 Fashion-MNIST images
(expensive paths of 33 and 30 MFLOPs), as do `chain` and `hierarchical`
(the library's builders); `high_low_224` and `cascade_224`
are of the size people deploy: 224x224x3 images, a MobileNetV2 (about 620
MFLOPs) or ResNet-style stages (about 640 MFLOPs) on the expensive path,
timed on synthetic pixels with random weights (`IMAGE_SHAPES`,
`REAL_SIZE`).

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
from keras_d2nn.architectures.high_low import default_high_network
from keras_d2nn.architectures.high_low import default_low_network
from keras_d2nn.export import static_network
from keras_d2nn.graph import Graph
from keras_d2nn.layers import ConfidenceFeatures
from keras_d2nn.layers import Controller
from keras_d2nn.models import D2NNModel


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
    return architectures.high_low(
        low_network=low, high_network=high, gate_input="features"
    )


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
    return architectures.cascade(stages=stages, gate_input="logits")


def bench_high_low_224():
    """224x224x3 images. Cheap path: three strided convolutions, about 17
    MFLOPs; expensive path: a MobileNetV2 (width 1.0, random weights),
    about 620 MFLOPs."""
    low = keras.Sequential(
        [
            keras.Input((224, 224, 3)),
            conv(16, strides=4),
            conv(32, strides=2),
            conv(64, strides=2),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(64, activation="relu"),
        ],
        name="low_network",
    )
    high = keras.applications.MobileNetV2(
        input_shape=(224, 224, 3),
        weights=None,
        classes=10,
        classifier_activation=None,
        name="mobilenet_v2",
    )
    return architectures.high_low(
        input_shape=(224, 224, 3),
        low_network=low,
        high_network=high,
        gate_input="features",
    )


def residual_stage(input_shape, filters, name):
    """Two 3x3 convolutions with a skip connection, then 2x2 pooling: a
    ResNet-style stage (a functional model, so the skip is an `Add`)."""
    inputs = keras.Input(input_shape)
    first = conv(filters)(inputs)
    second = conv(filters)(first)
    merged = keras.layers.Add()([first, second])
    outputs = keras.layers.MaxPooling2D(2)(merged)
    return keras.Model(inputs, outputs, name=name)


def bench_cascade_224():
    """224x224x3 images. Stage 1 (two strided convolutions) with its head
    about 11 MFLOPs; stages 2 and 3 (ResNet-style, 128 and 256 filters at
    28x28 and 14x14) about 290 and 350 MFLOPs."""
    stages = [
        keras.Sequential(
            [
                keras.Input((224, 224, 3)),
                conv(16, strides=4),
                conv(32, strides=2),
            ],
            name="stage1",
        ),
        residual_stage((28, 28, 32), 128, "stage2"),
        residual_stage((14, 14, 128), 256, "stage3"),
    ]
    return architectures.cascade(
        input_shape=(224, 224, 3), stages=stages, gate_input="logits"
    )


def deep_network(blocks=16, channels=8):
    """A MobileNet-style stack of residual depthwise-separable blocks of 8
    channels at full resolution: about 4.1 MFLOPs, under half those of
    high-low's default expensive network (`wide` in `wide_or_deep`), and
    as accurate on Fashion-MNIST, yet 1.5-1.7x slower on CPU (LiteRT batch
    1 and TF batch 64, measured): 50 thin kernels, each far from the
    hardware's FLOP rate. (Without the skips the stack does not train;
    with global pooling instead of `Flatten` it reaches 70%.)"""
    inputs = keras.Input((28, 28, 1))
    x = conv(channels)(inputs)
    for _ in range(blocks):
        y = keras.layers.DepthwiseConv2D(3, padding="same", activation="relu")(
            x
        )
        x = keras.layers.Add()([x, keras.layers.Conv2D(channels, 1)(y)])
    x = keras.layers.Flatten()(x)
    return keras.Model(inputs, keras.layers.Dense(10)(x), name="deep")


def wide_or_deep():
    """A D2NN whose FLOPs and time rank its branches differently: the
    cheap path of `high_low` (with its head), and a gate reading the head's
    confidence that stops there or runs one of two classifiers on the
    image, `wide` (high-low's default expensive network: two convolutions
    of 32 and 64 filters, 8.6 MFLOPs at a high FLOP rate) or `deep`
    (`deep_network`). In FLOPs `deep` is the cheaper; in time, `wide`.

    ```
    image --> low --> low_head --> confidence --> <gate>
      |                   '--> stop ----------.     | stop / wide / deep
      |--> wide --------------------------------+--> logits (merge)
      '--> deep -------------------------------'
    ```
    """
    graph = Graph()
    graph.input("image", shape=(28, 28, 1))
    graph.metadata["architecture"] = "wide_or_deep"
    low = default_low_network((28, 28, 1))
    graph.f_node("low", low, inputs="image")
    graph.f_node("low_head", keras.layers.Dense(10), inputs="low")
    graph.f_node("confidence", ConfidenceFeatures(), inputs="low_head")
    graph.q_node(
        "gate",
        Controller(3, hidden_units=(64, 64)),
        inputs="confidence",
        actions=("stop", "wide", "deep"),
    )
    graph.dummy("stop", inputs="low_head", when=("gate", "stop"))
    wide = default_high_network((28, 28, 1), 10)
    graph.f_node("wide", wide, inputs="image", when=("gate", "wide"))
    graph.f_node("deep", deep_network(), inputs="image", when=("gate", "deep"))
    graph.merge("logits", inputs=["stop", "wide", "deep"])
    graph.output("logits")
    graph.supervise("low_head")
    return D2NNModel(graph, name="wide_or_deep")


BUILDERS = {
    "high_low": bench_high_low,
    "cascade": bench_cascade,
    # The paper's chain and hierarchical D2NNs as the library builds them
    # (the chain's all-skip route against its all-full one; one expert
    # against all three).
    "chain": architectures.chain,
    "hierarchical": architectures.hierarchical,
    "high_low_224": bench_high_low_224,
    "cascade_224": bench_cascade_224,
}
# Networks timed on synthetic pixels (no dataset of their input size here).
REAL_SIZE = ("high_low_224", "cascade_224")


def image_shape(arch):
    """The shape of one input image of network `arch`."""
    return (224, 224, 3) if arch in REAL_SIZE else (28, 28, 1)


def images(arch, n, seed=0):
    """`n` images for `arch`: Fashion-MNIST test images for the small
    networks, uniform synthetic pixels for the real-size ones (timing does
    not depend on the pixels; the routing is forced)."""
    if arch in REAL_SIZE:
        rng = np.random.default_rng(seed)
        return rng.random((n,) + image_shape(arch), dtype=np.float32)
    from keras_d2nn import data

    return data.load_fashion_mnist("test")[0][:n]


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
