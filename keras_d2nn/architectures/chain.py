"""The paper's chain D2NN: per stage, pick a version (width) or skip."""

from __future__ import annotations

from collections.abc import Sequence

import keras

from keras_d2nn.architectures import arguments
from keras_d2nn.graph import Graph
from keras_d2nn.layers import Controller
from keras_d2nn.models import D2NNModel


def residual_block(
    shape: tuple[int, ...], width: int, name: str
) -> keras.Model:
    """`relu(x + conv(conv_width(x)))`: keeps the shape, so versions of a
    stage (and skipping it) are interchangeable."""
    inputs = keras.Input(shape)
    hidden = keras.layers.Conv2D(width, 3, padding="same", activation="relu")(
        inputs
    )
    residual = keras.layers.Conv2D(shape[-1], 3, padding="same")(hidden)
    outputs = keras.layers.ReLU()(keras.layers.Add()([inputs, residual]))
    return keras.Model(inputs, outputs, name=name)


def chain(
    input_shape: Sequence[int] = (28, 28, 1),
    num_classes: int = 10,
    num_stages: int = 3,
    channels: int = 16,
    widths: Sequence[int] = (32, 16, 8),
    version_names: Sequence[str] = ("full", "half", "quarter"),
    name: str = "chain",
    value_range: tuple[float, float] | None = (0.0, 1.0),
) -> D2NNModel:
    """Builds a chain D2NN: before each stage a controller picks one of
    several versions of the stage (widths) or skips it.

    ```
    image -> stem -> summary1 -> <choose1>: full | half | quarter | skip
              |
              +--> block1_full ----.
              +--> block1_half ----+--> stage1 (merge) -> ... -> stageN
              +--> block1_quarter -+                              |
              '--> [skip1] --------'                     head -> logits
    ```

    The stem is a strided convolution (28x28 -> 14x14, `channels` maps).
    Each version is a residual block whose inner convolution has the given
    width; skipping passes the features on unchanged. `summary<i>` (global
    average pooling) is what controller `choose<i>` reads, so deciding is
    cheap.

    Args:
        input_shape: shape of one image.
        value_range: the values the images hold, `(0.0, 1.0)` as
            `keras_d2nn.data`'s pipelines scale them; the model and its
            exports refuse (or flag) images beyond it (`Graph.input`).
            None: not checked.
        num_classes: number of classes.
        num_stages: number of stages (and controllers).
        channels: feature maps carried along the chain.
        widths: inner width of each version, most expensive first.
        version_names: action names of the versions.
        name: model name.

    Returns:
        An uncompiled `D2NNModel`; controllers `choose1..N` with actions
        `version_names + ("skip",)`.

    Example:

    ```python
    model = keras_d2nn.architectures.chain(num_stages=2)
    ```
    """
    input_shape = arguments.image_shape("chain", input_shape)
    num_classes = arguments.class_count("chain", num_classes)
    if len(widths) != len(version_names):
        raise ValueError(
            f"`widths` {widths} and `version_names` {version_names} should "
            "have the same length."
        )
    if num_stages < 1:
        raise ValueError(
            f"`num_stages` should be >= 1. Received: num_stages={num_stages}"
        )
    graph = Graph()
    graph.input("image", shape=tuple(input_shape), value_range=value_range)
    graph.metadata["architecture"] = "chain"
    # No early exit: its modules train on uniformly random routes (said,
    # so that `fit_two_phase` knows it is meant).
    graph.metadata["training_routing"] = "uniform"
    graph.f_node(
        "stem",
        keras.layers.Conv2D(
            channels,
            3,
            strides=2,
            padding="same",
            activation="relu",
            name="stem",
        ),
        inputs="image",
    )
    height = -(-input_shape[0] // 2)
    width = -(-input_shape[1] // 2)
    shape = (height, width, channels)
    previous = "stem"
    actions = tuple(version_names) + ("skip",)
    for i in range(1, num_stages + 1):
        controller = f"choose{i}"
        graph.f_node(
            f"summary{i}",
            keras.layers.GlobalAveragePooling2D(),
            inputs=previous,
        )
        graph.q_node(
            controller,
            Controller(len(actions), hidden_units=(16,)),
            inputs=f"summary{i}",
            actions=actions,
        )
        branches = []
        for version, inner in zip(version_names, widths):
            node = f"block{i}_{version}"
            graph.f_node(
                node,
                residual_block(shape, inner, node),
                inputs=previous,
                when=(controller, version),
            )
            branches.append(node)
        graph.dummy(f"skip{i}", inputs=previous, when=(controller, "skip"))
        graph.merge(f"stage{i}", inputs=branches + [f"skip{i}"])
        previous = f"stage{i}"
    graph.f_node(
        "head",
        keras.Sequential(
            [keras.layers.Flatten(), keras.layers.Dense(num_classes)],
            name="head_network",
        ),
        inputs=previous,
    )
    graph.output("head")
    return D2NNModel(graph, name=name)
