"""The paper's high-low capacity D2NN."""

from __future__ import annotations

from collections.abc import Sequence

import keras

from keras_d2nn.architectures import arguments
from keras_d2nn.graph import Graph
from keras_d2nn.layers import ConfidenceFeatures
from keras_d2nn.layers import Controller
from keras_d2nn.models import D2NNModel


def default_low_network(input_shape: Sequence[int]) -> keras.Sequential:
    """A cheap feature extractor: one small strided convolution."""
    return keras.Sequential(
        [
            keras.Input(input_shape),
            keras.layers.Conv2D(8, 3, strides=2, activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Flatten(),
            keras.layers.Dense(32, activation="relu"),
        ],
        name="low_network",
    )


def default_high_network(
    input_shape: Sequence[int], num_classes: int
) -> keras.Sequential:
    """An expensive classifier: two full-resolution convolutions."""
    return keras.Sequential(
        [
            keras.Input(input_shape),
            keras.layers.Conv2D(32, 3, activation="relu", padding="same"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Conv2D(64, 3, activation="relu", padding="same"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Flatten(),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dense(num_classes),
        ],
        name="high_network",
    )


GATE_INPUTS = ("features", "confidence")


def high_low(
    input_shape: Sequence[int] = (28, 28, 1),
    num_classes: int = 10,
    low_network: keras.Layer | None = None,
    high_network: keras.Layer | None = None,
    controller: Controller | None = None,
    name: str = "high_low",
    gate_input: str = "confidence",
    value_range: tuple[float, float] | None = (0.0, 1.0),
) -> D2NNModel:
    """Builds the high-low capacity D2NN: a cheap path, and an expensive one
    that a controller runs only for the examples that need it.

    ```
    image --> low --> low_head --> [stop] ------------.
     |          \\                     ^ gate=stop     |
     |           '--> <gate> ---------+                +--> logits (merge)
     |                                v gate=high      |
     '----------------------------> high -------------'
    ```

    The low network maps the image to features; `low_head` (a Dense layer)
    turns them into logits. The Q-node `gate` reads the low features and
    either stops (the dummy `stop` passes the low logits on) or runs the
    high network on the full image. The merge `logits` takes whichever ran.
    `low_head` is also trained on every example (`Graph.supervise`).

    By default (`gate_input="confidence"`) the gate reads the low head:
    an F-node `gate_features` (`ConfidenceFeatures`: the head's softmax
    probabilities, max probability, top-1 minus top-2 margin and entropy,
    no gradient into the head) between `low_head` and `gate`, so that it
    routes on the cheap classifier's confidence as a threshold exit does;
    with the two-phase recipe this gate beats the threshold exit. With
    `gate_input="features"` it reads the low network's features, the
    input REINFORCE was measured on (there the gate learned a class
    prior).

    Args:
        input_shape: shape of one image.
        value_range: the values the images hold, `(0.0, 1.0)` as
            `keras_d2nn.data`'s pipelines scale them; the model and its
            exports refuse (or flag) images beyond it (`Graph.input`).
            None: not checked.
        num_classes: number of classes (logits are output).
        low_network: a Keras model image -> feature vector (default: one
            strided convolution and a Dense layer of 32).
        high_network: a Keras model image -> `num_classes` logits
            (default: two convolutions and a Dense layer of 128).
        controller: a `keras_d2nn.Controller` with 2 actions (default:
            one hidden layer of 16 units; two of 64 with
            `gate_input="confidence"`).
        name: model name.
        gate_input: `"confidence"` (default: the low head's
            `ConfidenceFeatures`) or `"features"` (the low network's
            features).

    Returns:
        An uncompiled `keras_d2nn.D2NNModel` whose controller is `gate`
        with actions `("stop", "high")`.

    Example:

    ```python
    model = keras_d2nn.architectures.high_low()
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(
        from_logits=True), metrics=["accuracy"], cost_weight=0.5)
    ```
    """
    num_classes = arguments.class_count("high_low", num_classes)
    if gate_input not in GATE_INPUTS:
        raise ValueError(
            f"high_low: `gate_input` should be one of {GATE_INPUTS}. "
            f"Received: gate_input={gate_input!r}"
        )
    if low_network is None or high_network is None:
        input_shape = arguments.image_shape("high_low", input_shape)
    input_shape = tuple(input_shape)
    graph = Graph()
    graph.input("image", shape=input_shape, value_range=value_range)
    graph.metadata["architecture"] = "high_low"
    graph.f_node(
        "low", low_network or default_low_network(input_shape), inputs="image"
    )
    graph.f_node(
        "low_head",
        keras.layers.Dense(num_classes, name="low_head"),
        inputs="low",
    )
    gate_reads = "low"
    if gate_input == "confidence":
        graph.f_node(
            "gate_features",
            ConfidenceFeatures(name="confidence"),
            inputs="low_head",
        )
        gate_reads = "gate_features"
    if controller is None:
        # The confidence features are 13 numbers, not 32 features: a wider
        # gate ranks them better (two-phase recipe, Fashion-MNIST: +0.2 to
        # +0.3 points over (16,) at shares 0.1 to 0.4), for 10 kFLOPs, 0.1%
        # of the high branch.
        units = (64, 64) if gate_input == "confidence" else (16,)
        controller = Controller(2, hidden_units=units)
    graph.q_node(
        "gate",
        controller,
        inputs=gate_reads,
        actions=("stop", "high"),
    )
    graph.dummy("stop", inputs="low_head", when=("gate", "stop"))
    graph.f_node(
        "high",
        high_network or default_high_network(input_shape, num_classes),
        inputs="image",
        when=("gate", "high"),
    )
    graph.merge("logits", inputs=["stop", "high"])
    graph.early_exit("gate", head="low_head", stop="stop", proceed="high")
    graph.output("logits")
    # The low head's prediction is used only for the examples that stop;
    # supervising it on all examples keeps it trained whatever the gate does.
    graph.supervise("low_head")
    return D2NNModel(graph, name=name)
