"""The paper's hierarchical D2NN: coarse classifier, then a fine expert."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from collections.abc import Sequence

import keras
import numpy as np

from keras_d2nn.architectures import arguments
from keras_d2nn.graph import Graph
from keras_d2nn.layers import ConfidenceFeatures
from keras_d2nn.layers import Controller
from keras_d2nn.models import D2NNModel

# Fashion-MNIST classes by group: tops (T-shirt/top, Pullover, Coat, Shirt),
# shoes (Sandal, Sneaker, Ankle boot), others (Trouser, Dress, Bag).
FASHION_MNIST_GROUPS = {
    "tops": (0, 2, 4, 6),
    "shoes": (5, 7, 9),
    "others": (1, 3, 8),
}


# The initial logit penalty of the sets of several experts: far below
# what five times a coarse logit reaches.
START_PENALTY = 10.0


def _label_map(groups, num_classes):
    label_map = [None] * num_classes
    for index, members in enumerate(groups.values()):
        for label in members:
            label_map[label] = index
    if None in label_map:
        missing = [c for c, g in enumerate(label_map) if g is None]
        raise ValueError(f"`groups` leave classes {missing} without a group.")
    return label_map


def expert_sets(groups: Sequence[str], max_experts: int) -> list[tuple]:
    """The controller's actions: every set of at most `max_experts` groups,
    smallest first, named `"a"`, `"a+b"`, ..., and `"all"` for every group.

    Example:

    ```python
    from keras_d2nn.architectures.hierarchical import expert_sets

    sets = expert_sets(["a", "b", "c"], 3)
    [name for name, _ in sets]  # ["a", "b", "c", "a+b", "a+c", "b+c", "all"]
    sets[3]  # ("a+b", ("a", "b")): the action and the experts it runs
    ```
    """
    sets = []
    for size in range(1, max_experts + 1):
        for members in itertools.combinations(groups, size):
            name = "all" if size == len(groups) else "+".join(members)
            sets.append((name, members))
    return sets


def _fine_network(shape, num_classes, name):
    return keras.Sequential(
        [
            keras.Input(shape),
            keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(num_classes),
        ],
        name=name,
    )


def hierarchical(
    input_shape: Sequence[int] = (28, 28, 1),
    num_classes: int = 10,
    groups: Mapping[str, Sequence[int]] | None = None,
    max_experts: int | None = None,
    specialists: bool = True,
    name: str = "hierarchical",
    value_range: tuple[float, float] | None = (0.0, 1.0),
) -> D2NNModel:
    """Builds a hierarchical D2NN: a coarse classifier routes each example
    to one, two or all of its fine-grained experts.

    ```
    image -> trunk -> coarse -> <route> --tops---> fine_tops ---.
               |                  |---shoes--> fine_shoes --+--> logits
               |                  '---others-> fine_others -'   (added)
               '--------(features for every expert)--------'
    ```

    `trunk` (a strided convolution and pooling: 7x7x16 features) feeds
    `coarse`, a linear classifier of the class groups, trained on the
    group labels (`Graph.supervise` with a label map). The controller
    `route` reads the coarse stage and picks a set of experts, each of
    which classifies all classes from the trunk's features; the logits of
    the experts that ran are added. By default the sets are every single
    expert, every pair and all of them (7 actions for 3 groups): where the
    coarse stage is unsure, a second expert can buy accuracy, at the cost
    of running it (`max_experts=1`: one expert per example, the paper's
    plain coarse-to-fine routing). Trained with `fit_two_phase`, every
    expert runs on every image in phase one (`graph.metadata[
    "training_routing"]`), each also trained alone on its own group
    (`specialists`): one expert is cheap and right within its group, and
    a second one pays where the coarse stage is unsure
    (docs/paper_experiments.md). The controller starts out following the
    coarse classifier's top group (its single-expert logits are 5 times
    the coarse logits or probabilities), and the larger sets start far
    below them.

    Args:
        input_shape: shape of one image.
        value_range: the values the images hold, `(0.0, 1.0)` as
            `keras_d2nn.data`'s pipelines scale them; the model and its
            exports refuse (or flag) images beyond it (`Graph.input`).
            None: not checked.
        num_classes: number of classes.
        groups: `{group name: class indices}` covering every class
            (default: Fashion-MNIST's tops, shoes and others).
        max_experts: the most experts one example may run (1 to the
            number of groups; default: all of them).
        specialists: when every set up to all experts is an action
            (`max_experts` = the number of groups), True (default) trains
            each expert alone on its own group's images only
            (`Graph.supervise(..., classes=...)`) and lets the controller
            read the coarse stage's `ConfidenceFeatures` through a hidden
            layer of 32; False trains each expert alone on every image,
            and the controller reads the coarse logits, linearly. Ignored
            with fewer experts per example.
        name: model name.

    Returns:
        An uncompiled `D2NNModel` with controller `route`, one action per
        set of experts (`expert_sets`).

    Example:

    ```python
    model = keras_d2nn.architectures.hierarchical()
    ```
    """
    input_shape = arguments.image_shape("hierarchical", input_shape)
    num_classes = arguments.class_count("hierarchical", num_classes)
    groups = dict(groups or FASHION_MNIST_GROUPS)
    if len(groups) < 2:
        raise ValueError(
            f"`groups` should name at least 2 groups. Received: {list(groups)}"
        )
    if max_experts is None:
        max_experts = len(groups)
    if (
        isinstance(max_experts, bool)
        or not isinstance(max_experts, int)
        or not 1 <= max_experts <= len(groups)
    ):
        raise ValueError(
            f"`max_experts` should be an int from 1 to the number of groups "
            f"({len(groups)}). Received: max_experts={max_experts!r}"
        )
    label_map = _label_map(groups, num_classes)
    sets = expert_sets(list(groups), max_experts)
    # Specialists need the sets that can make up for a wrong group.
    specialists = bool(specialists) and max_experts == len(groups)
    graph = Graph()
    graph.input("image", shape=tuple(input_shape), value_range=value_range)
    graph.metadata["architecture"] = "hierarchical"
    graph.metadata["groups"] = {k: list(v) for k, v in groups.items()}
    trunk = keras.Sequential(
        [
            keras.Input(tuple(input_shape)),
            keras.layers.Conv2D(
                16, 3, strides=2, padding="same", activation="relu"
            ),
            keras.layers.MaxPooling2D(2),
        ],
        name="trunk_network",
    )
    graph.f_node("trunk", trunk, inputs="image")
    graph.f_node(
        "coarse",
        keras.Sequential(
            [keras.layers.Flatten(), keras.layers.Dense(len(groups))],
            name="coarse_network",
        ),
        inputs="trunk",
    )
    graph.supervise("coarse", label_map=label_map)
    reads = "coarse"
    units: tuple[int, ...] = ()
    if specialists:
        # Whether a second specialist pays depends on how sure the coarse
        # stage is: its confidence, through a hidden layer.
        graph.f_node(
            "coarse_confidence",
            ConfidenceFeatures(name="coarse_confidence"),
            inputs="coarse",
        )
        reads, units = "coarse_confidence", (32,)
    controller = Controller(len(sets), hidden_units=units)
    graph.q_node(
        "route",
        controller,
        inputs=reads,
        actions=tuple(action for action, _ in sets),
    )
    shape = tuple(trunk.compute_output_shape((None,) + tuple(input_shape))[1:])
    experts = []
    for group in groups:
        node = f"fine_{group}"
        graph.f_node(
            node,
            _fine_network(shape, num_classes, node),
            inputs="trunk",
            when=[
                ("route", action)
                for action, members in sets
                if group in members
            ],
        )
        experts.append(node)
    # One expert per example: the merge passes on the one that ran. Else
    # the logits of those that ran are added (absent ones count as zeros).
    combine = None if max_experts == 1 else keras.layers.Add()
    graph.merge("logits", inputs=experts, combine=combine)
    if max_experts == len(groups):
        # The modules train as "all" experts on every example, each expert
        # also against the labels alone (so that it classifies well alone
        # as in the sets with the others): the two-phase recipe's first
        # phase (FullInformation's module_routing="auto").
        graph.metadata["training_routing"] = {"route": "all"}
        for group, node in zip(groups, experts, strict=True):
            graph.supervise(
                node, classes=groups[group] if specialists else None
            )
    graph.output("logits")
    model = D2NNModel(graph, name=name)
    _follow_the_coarse_stage(controller, len(groups), len(sets))
    return model


def _follow_the_coarse_stage(controller, num_groups, num_sets):
    """Starts `controller` on the coarse classifier's top group: the
    single-expert actions' logits are 5 times the coarse logits (or, with
    a hidden layer reading `ConfidenceFeatures`, whose first features are
    the group probabilities: 5 times those, passed through the first
    hidden units), and the sets of several experts start far below."""
    dense = controller.network.layers[-1]
    kernel = keras.ops.convert_to_numpy(dense.kernel).copy()
    if len(controller.network.layers) > 2:
        hidden = controller.network.layers[1]
        hidden_kernel = keras.ops.convert_to_numpy(hidden.kernel).copy()
        hidden_kernel[:, :num_groups] = 0.0
        hidden_kernel[:num_groups, :num_groups] = np.eye(num_groups)
        hidden.kernel.assign(hidden_kernel)
        hidden.bias.assign(np.zeros(hidden.bias.shape))
        kernel[:, :num_groups] = 0.0
    kernel[:num_groups, :num_groups] = 5.0 * np.eye(num_groups)
    if len(controller.network.layers) == 2:
        kernel[:num_groups, num_groups:] = 0.0
    dense.kernel.assign(kernel)
    # Sets of several experts start out never chosen.
    dense.bias.assign(
        [0.0] * num_groups + [-START_PENALTY] * (num_sets - num_groups)
    )
