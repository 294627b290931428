"""The attention D2NN's baselines: where else to look, and networks that do
not look.

On the D2NN's own modules, with the region chosen by a rule instead of
the controller (costs without the controller, which a rule does not run):

- `centre`: the region nearest the canvas's centre;
- `random`: a region drawn uniformly;
- `saliency`: the region with the most ink, the rule of thumb the D2NN
  must beat;
- `oracle`: the region holding the item, nearest its centre (from the
  canvas's `position` metadata: a ceiling, never a model input);
- `any_region`: correct when any region's answer is (the ceiling of every
  controller on these modules).

Networks (each a `Point` of test accuracy and FLOPs per example):

- the full-resolution network: the glimpse network over the whole canvas
  (`attention.full_resolution_network`), the dearest;
- `static_lowres`: the same network on the canvas averaged 2x2, a static
  network near the D2NN's FLOPs, trained alone;
- `context_only`: the context pass with a linear head, trained alone,
  the cheapest.

Example:

```python
from keras_d2nn.experiments import glimpse_baselines

points = glimpse_baselines.rule_points(model, x_test, y_test, positions)
[(p.name, round(p.test_accuracy, 3)) for p in points]
```
"""

import keras
import numpy as np

from keras_d2nn import architectures
from keras_d2nn.architectures.attention import full_resolution_network
from keras_d2nn.experiments.baselines import Point
from keras_d2nn.graph import layer_flops

ITEM_SIZE = 28


def region_boxes(model):
    """`(top, left, size)` of each action of the controller `look`, read
    from the crop layers: an int array `(regions, 3)`.

    Example: `region_boxes(architectures.attention((112, 112, 1)))[0]`
    (`[0, 0, 48]`).
    """
    height = model.plan.specs["image"].shape[1]
    boxes = []
    for action in model.plan.nodes["look"].actions:
        (top, bottom), (left, _) = model.plan.nodes[
            f"crop_{action}"
        ].layer.cropping
        boxes.append((top, left, height - top - bottom))
    return np.array(boxes)


def looked_and_item_boxes(model, regions, positions=None):
    """Rectangles for `route_gallery(boxes=...)`: where the D2NN looked
    (`regions[i]`, the action of `look` for image `i`) and, with
    `positions`, where the item is: `{"looked at": (n, 4), "item": (n,
    4)}` of `(top, left, height, width)`.

    Example:

    ```python
    from keras_d2nn.experiments import glimpse_baselines

    model = keras_d2nn.architectures.attention(input_shape=(112, 112, 1))
    boxes = glimpse_baselines.looked_and_item_boxes(
        model, np.array([0, 24]), positions=np.array([[3, 5], [70, 80]]))
    boxes["looked at"][1]  # [64, 64, 48, 48]: the bottom-right region
    ```
    """
    top, left, size = region_boxes(model)[np.asarray(regions)].T
    boxes = {"looked at": np.stack([top, left, size, size], axis=1)}
    if positions is not None:
        rows, columns = np.asarray(positions).T
        item = np.full_like(rows, ITEM_SIZE)
        boxes["item"] = np.stack([rows, columns, item, item], axis=1)
    return boxes


def holds_item(boxes, positions, regions):
    """Whether region `regions[i]` holds the whole item at `positions[i]`.

    Example: `holds_item(boxes, positions, oracle_regions(...)).all()`.
    """
    top, left, size = boxes[regions].T
    rows, columns = np.asarray(positions).T
    return (
        (top <= rows)
        & (rows + ITEM_SIZE <= top + size)
        & (left <= columns)
        & (columns + ITEM_SIZE <= left + size)
    )


def oracle_regions(boxes, positions):
    """Per example, the region holding the item whose centre is nearest
    the item's centre (`positions`: the items' top-left corners).

    Example: `oracle_regions(boxes, [[0, 0]])  # [0]`.
    """
    positions = np.asarray(positions)
    top, left, size = boxes[:, 0], boxes[:, 1], boxes[:, 2]
    rows, columns = positions[:, :1], positions[:, 1:]
    holds = (
        (top <= rows)
        & (rows + ITEM_SIZE <= top + size)
        & (left <= columns)
        & (columns + ITEM_SIZE <= left + size)
    )
    distance = np.abs(top + size / 2 - rows - ITEM_SIZE / 2) + np.abs(
        left + size / 2 - columns - ITEM_SIZE / 2
    )
    return np.argmin(np.where(holds, distance, np.inf), axis=1)


def saliency_regions(boxes, images):
    """Per example, the region with the most ink (sum of pixel values over
    the region's exact box, from one integral image: a few additions per
    pixel, and no rounding of the boxes to a coarser grid).

    Example: `saliency_regions(boxes, x_test)[:3]  # e.g. [7, 7, 21]`.
    """
    images = np.asarray(images, np.float64)[..., 0]
    integral = np.pad(images.cumsum(1).cumsum(2), ((0, 0), (1, 0), (1, 0)))
    ink = [
        integral[:, top + size, left + size]
        - integral[:, top, left + size]
        - integral[:, top + size, left]
        + integral[:, top, left]
        for top, left, size in boxes
    ]
    return np.argmax(np.stack(ink, axis=1), axis=1)


def centre_region(boxes, canvas_size):
    """The region whose centre is nearest the canvas's.

    Example: `centre_region(region_boxes(attention((112, 112, 1))), 112)`
    (12, the middle of the 5x5 grid).
    """
    centres = boxes[:, :2] + boxes[:, 2:] / 2
    return int(np.argmin(np.abs(centres - canvas_size / 2).sum(axis=1)))


def rule_points(model, x, y, positions=None, seed=0):
    """`Point`s of the region rules on `model`'s own modules: `centre`,
    `random`, `saliency`, and with the items' `positions` `oracle` and
    `any_region`. Each point's details say which share of the regions
    chosen hold the whole item (with `positions`).

    Example: `rule_points(model, x_test, y_test, positions)`.
    """
    boxes = region_boxes(model)
    n = len(x)
    rules = {
        "centre": np.full(n, centre_region(boxes, x.shape[1])),
        "random": np.random.default_rng(seed).integers(0, len(boxes), n),
        "saliency": saliency_regions(boxes, x),
    }
    if positions is not None:
        rules["oracle"] = oracle_regions(boxes, positions)
    controller_flops = model.plan.flops["look"]
    points = []
    for name, regions in rules.items():
        routes = model.route(x, labels=y, decisions={"look": regions})
        details = {"rule": name}
        if positions is not None:
            details["holds_item"] = float(
                holds_item(boxes, positions, regions).mean()
            )
        points.append(
            Point(
                f"{name} glimpse",
                "rule",
                float(routes.accuracy),
                float(routes.mean_flops) - controller_flops,
                details,
            )
        )
    if positions is not None:
        correct = np.zeros(n, bool)
        for region in range(len(boxes)):
            routes = model.route(x, decisions={"look": np.full(n, region)})
            correct |= routes.predictions == np.asarray(y)
        points.append(
            Point(
                "any region (ceiling)",
                "rule",
                float(correct.mean()),
                points[-1].mean_flops,
                {"rule": "any_region"},
            )
        )
    return points


def network_point(name, network, x, y, kind="static"):
    """A `Point` of a plain Keras classifier: its test accuracy and FLOPs
    per example.

    Example: `network_point("full", full_resolution_network(m), x, y)`.
    """
    logits = network.predict(x, batch_size=500, verbose=0)
    return Point(
        name,
        kind,
        float(np.mean(np.argmax(logits, -1) == np.asarray(y))),
        layer_flops(network, network.inputs[0]),
    )


def context_network(input_shape, num_classes):
    """The context pass alone: a fresh attention model's `lowres`,
    `context_map` and `context`, with a linear head.

    Example: `context_network((112, 112, 1), 10).output.shape  # (None, 10)`.
    """
    nodes = architectures.attention(input_shape, num_classes).plan.nodes
    image = keras.Input(input_shape)
    features = nodes["context"].layer(
        nodes["context_map"].layer(nodes["lowres"].layer(image))
    )
    logits = keras.layers.Dense(num_classes)(features)
    return keras.Model(image, logits, name="context_only")


def lowres_network(input_shape, num_classes):
    """The full-resolution network of a fresh attention model on the canvas
    averaged 2x2: a static network near the D2NN's FLOPs.

    Example: `lowres_network((112, 112, 1), 10)`.
    """
    return full_resolution_network(
        architectures.attention(input_shape, num_classes), image_downsample=2
    )


def trained_network_points(
    input_shape, num_classes, fit, x_test, y_test, seed=0
):
    """`static_lowres` and `context_only`, each built from `seed` and
    trained by `fit(network)` (which compiles and fits it), as `Point`s.

    Example: `trained_network_points((112, 112, 1), 10, fit, x, y)`.
    """
    points = []
    for name, build in (
        ("static network at half resolution", lowres_network),
        ("context pass alone", context_network),
    ):
        keras.utils.set_random_seed(seed)
        network = build(input_shape, num_classes)
        fit(network)
        points.append(network_point(name, network, x_test, y_test))
    return points
