"""The paper's hierarchical D2NN: coarse classifier, then a fine expert."""

import keras

from keras_d2nn.architectures import arguments
from keras_d2nn.graph import Graph
from keras_d2nn.layers import Controller
from keras_d2nn.models import D2NNModel

# Fashion-MNIST classes by group: tops (T-shirt/top, Pullover, Coat, Shirt),
# shoes (Sandal, Sneaker, Ankle boot), others (Trouser, Dress, Bag).
FASHION_MNIST_GROUPS = {
    "tops": (0, 2, 4, 6),
    "shoes": (5, 7, 9),
    "others": (1, 3, 8),
}


def _label_map(groups, num_classes):
    label_map = [None] * num_classes
    for index, members in enumerate(groups.values()):
        for label in members:
            label_map[label] = index
    if None in label_map:
        missing = [c for c, g in enumerate(label_map) if g is None]
        raise ValueError(f"`groups` leave classes {missing} without a group.")
    return label_map


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
    input_shape=(28, 28, 1), num_classes=10, groups=None, name="hierarchical"
):
    """Builds a hierarchical D2NN: a coarse classifier routes each example
    to one fine-grained expert.

    ```
    image -> trunk -> coarse -> <route> --tops---> fine_tops ---.
               |                  |---shoes--> fine_shoes --+--> logits
               |                  '---others-> fine_others -'   (merge)
               '--------(features for every expert)--------'
    ```

    `trunk` (a strided convolution and pooling: 7x7x16 features) feeds
    `coarse`, a linear classifier of the class groups, trained on the
    group labels (`Graph.supervise` with a label map). The controller
    `route` reads the coarse logits and picks one expert, which classifies
    all classes from the trunk's features. The controller starts out
    following the coarse classifier (its kernel is a scaled identity), so
    each expert sees mostly its own group from the first step; REINFORCE
    then refines the routing.

    Args:
        input_shape: shape of one image.
        num_classes: number of classes.
        groups: `{group name: class indices}` covering every class
            (default: Fashion-MNIST's tops, shoes and others).
        name: model name.

    Returns:
        An uncompiled `D2NNModel` with controller `route`, one action per
        group.

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
    label_map = _label_map(groups, num_classes)
    graph = Graph()
    graph.input("image", shape=tuple(input_shape))
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
    controller = Controller(len(groups), hidden_units=())
    graph.q_node("route", controller, inputs="coarse", actions=tuple(groups))
    shape = tuple(trunk.compute_output_shape((None,) + tuple(input_shape))[1:])
    experts = []
    for group in groups:
        node = f"fine_{group}"
        graph.f_node(
            node,
            _fine_network(shape, num_classes, node),
            inputs="trunk",
            when=("route", group),
        )
        experts.append(node)
    graph.merge("logits", inputs=experts)
    graph.output("logits")
    model = D2NNModel(graph, name=name)
    dense = controller.network.layers[-1]
    dense.kernel.assign(5.0 * keras.ops.eye(len(groups)))
    dense.bias.assign(keras.ops.zeros(len(groups)))
    return model
