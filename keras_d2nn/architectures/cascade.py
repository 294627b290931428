"""The paper's cascade D2NN: classifiers of increasing cost, early exits."""

from __future__ import annotations

from collections.abc import Sequence

import keras

from keras_d2nn.architectures import arguments
from keras_d2nn.graph import Graph
from keras_d2nn.layers import ConfidenceFeatures
from keras_d2nn.layers import Controller
from keras_d2nn.models import D2NNModel

# What the exit controllers can read (`gate_input`).
CASCADE_GATE_INPUTS = ("logits", "confidence")


def default_stages(input_shape: tuple[int, ...]) -> list[keras.Sequential]:
    """Three convolutional stages of growing cost (about 30 kFLOPs, 0.9
    MFLOPs and 5.4 MFLOPs per 28x28 image)."""
    return [
        keras.Sequential(
            [
                keras.Input(input_shape),
                keras.layers.Conv2D(
                    8, 3, strides=2, padding="same", activation="relu"
                ),
            ],
            name="stage1_network",
        ),
        keras.Sequential(
            [
                keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
                keras.layers.MaxPooling2D(2),
            ],
            name="stage2_network",
        ),
        keras.Sequential(
            [
                keras.layers.Conv2D(64, 3, padding="same", activation="relu"),
                keras.layers.Conv2D(64, 3, padding="same", activation="relu"),
            ],
            name="stage3_network",
        ),
    ]


def _head(num_classes, index):
    return keras.Sequential(
        [keras.layers.Flatten(), keras.layers.Dense(num_classes)],
        name=f"head{index}_network",
    )


def cascade(
    input_shape: Sequence[int] = (28, 28, 1),
    num_classes: int = 10,
    stages: Sequence[keras.Layer] | None = None,
    controller_hidden_units: Sequence[int] | None = None,
    name: str = "cascade",
    gate_input: str = "confidence",
    value_range: tuple[float, float] | None = (0.0, 1.0),
) -> D2NNModel:
    """Builds a cascade D2NN: after each stage, stop or continue.

    ```
    image -> stage1 -> head1 -> <exit1> -stop-> [stop1] -----.
               |                  : continue                  |
               '--------------> stage2 -> head2 -> <exit2>    |
                                  |        stop: [stop2] -----+-> logits
                                  |                 : cont.   |  (merge)
                                  '--------------> stage3 -> head3
    ```

    Stage `i + 1` reads stage `i`'s features and runs only for the examples
    whose controller `exit<i>` chose "continue"; `head<i>` (Flatten + Dense)
    classifies from stage `i`. Each controller reads its head's
    `ConfidenceFeatures` (an F-node `confidence<i>`: softmax
    probabilities, max, margin, entropy; no gradient into the head), as a
    confidence-threshold exit would, so learned and threshold exits are
    compared on the same information; the input of the two-phase recipe
    (docs/estimators_and_schedules.md). With `gate_input="logits"` each
    reads the head's logits instead, the input REINFORCE was measured on.
    Every head but the last is also trained on all examples that reach it
    (`Graph.supervise`).

    Args:
        input_shape: shape of one image.
        value_range: the values the images hold, `(0.0, 1.0)` as
            `keras_d2nn.data`'s pipelines scale them; the model and its
            exports refuse (or flag) images beyond it (`Graph.input`).
            None: not checked.
        num_classes: number of classes (logits are output).
        stages: list of Keras models, stage `i + 1` taking stage `i`'s
            output (default: three conv stages of growing cost).
        controller_hidden_units: hidden layers of each exit controller
            (default: two of 64 units reading confidence features, one of
            16 reading logits).
        name: model name.
        gate_input: what each exit controller reads: `"confidence"`
            (default) or `"logits"` (the head's logits).

    Returns:
        An uncompiled `D2NNModel` with controllers `exit1`, ...,
        `exit<N-1>`, each with actions `("stop", "continue")`.

    Example:

    ```python
    model = keras_d2nn.architectures.cascade()
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(
        from_logits=True), metrics=["accuracy"], cost_weight=0.2)
    ```
    """
    num_classes = arguments.class_count("cascade", num_classes)
    if not stages:
        input_shape = arguments.image_shape("cascade", input_shape)
    if gate_input not in CASCADE_GATE_INPUTS:
        raise ValueError(
            f"cascade: `gate_input` should be one of {CASCADE_GATE_INPUTS}. "
            f"Received: gate_input={gate_input!r}"
        )
    if controller_hidden_units is None:
        controller_hidden_units = (
            (64, 64) if gate_input == "confidence" else (16,)
        )
    stages = stages or default_stages(tuple(input_shape))
    if len(stages) < 2:
        raise ValueError(
            f"A cascade needs at least 2 stages. Received: {len(stages)}"
        )
    graph = Graph()
    graph.input("image", shape=tuple(input_shape), value_range=value_range)
    graph.metadata["architecture"] = "cascade"
    finals = []
    previous, when = "image", None
    for i, stage in enumerate(stages, start=1):
        graph.f_node(f"stage{i}", stage, inputs=previous, when=when)
        graph.f_node(f"head{i}", _head(num_classes, i), inputs=f"stage{i}")
        if i == len(stages):
            finals.append(f"head{i}")
            break
        controller = f"exit{i}"
        reads = f"head{i}"
        if gate_input == "confidence":
            reads = f"confidence{i}"
            graph.f_node(reads, ConfidenceFeatures(), inputs=f"head{i}")
        graph.q_node(
            controller,
            Controller(2, hidden_units=controller_hidden_units),
            inputs=reads,
            actions=("stop", "continue"),
        )
        graph.dummy(f"stop{i}", inputs=f"head{i}", when=(controller, "stop"))
        graph.supervise(f"head{i}")
        finals.append(f"stop{i}")
        graph.early_exit(
            controller, head=f"head{i}", stop="stop", proceed="continue"
        )
        previous, when = f"stage{i}", (controller, "continue")
    graph.merge("logits", inputs=finals)
    graph.output("logits")
    return D2NNModel(graph, name=name)
