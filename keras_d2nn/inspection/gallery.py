"""A PNG grid of images grouped by the route they took through a D2NN.

Example:

```python
keras_d2nn.gallery.route_gallery(model, test_images, test_labels,
                                 "routes.png", per_route=5)
```
"""

import matplotlib

matplotlib.use("Agg")  # files only; no display needed

import matplotlib.patches as patches  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from keras_d2nn.inspection import routing_report  # noqa: E402


def _as_image(array):
    """An image array for `imshow`: (H, W) grey or (H, W, 3) colour."""
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (
        array.ndim == 3 and array.shape[-1] not in (3, 4)
    ):
        raise ValueError(
            "route_gallery draws images of shape (height, width), "
            "(height, width, 1), (height, width, 3) or (height, width, 4); "
            f"received examples of shape {array.shape}."
        )
    return array


# Box colours, in the order of `boxes`' keys: colours that stand out on
# grey images.
BOX_COLOURS = ("tab:orange", "tab:cyan", "tab:pink", "tab:olive")


def _checked_boxes(boxes, count):
    """`boxes` as `{label: float array (count, 4)}`, or a clear error."""
    if boxes is None:
        return {}
    if not isinstance(boxes, dict) or len(boxes) > len(BOX_COLOURS):
        raise ValueError(
            "`boxes` should be a dict of at most "
            f"{len(BOX_COLOURS)} labels to arrays (n, 4) of (top, left, "
            f"height, width). Received: {type(boxes).__name__}"
        )
    checked = {}
    for label, array in boxes.items():
        array = np.asarray(array, dtype=float)
        if array.shape != (count, 4):
            raise ValueError(
                f"`boxes[{label!r}]` should have shape ({count}, 4), one "
                "(top, left, height, width) per image. Received: shape "
                f"{array.shape}"
            )
        checked[label] = array
    return checked


def _draw_boxes(ax, boxes, index):
    for (label, array), colour in zip(boxes.items(), BOX_COLOURS):
        top, left, height, width = array[index]
        ax.add_patch(
            patches.Rectangle(
                (left - 0.5, top - 0.5),
                width,
                height,
                fill=False,
                edgecolor=colour,
                linewidth=1.2,
                label=label,
            )
        )


def route_gallery(
    model,
    images,
    labels,
    path,
    class_names=None,
    per_route=10,
    max_routes=6,
    batch_size=256,
    routes=None,
    boxes=None,
):
    """Writes a PNG grid: one row per route, showing images that took it.

    Rows are the most common routes (e.g. `gate=stop`, the images that
    stopped after the cheap network, and `gate=high`, those that needed
    the full network), each titled with its share of the images, its
    accuracy and its mean FLOPs; each image is captioned with its
    predicted and true class, green when right and red when wrong.

    Args:
        model: a `keras_d2nn.D2NNModel` with one image input.
        images: array `(n, height, width, channels)`.
        labels: class indices `(n,)`.
        path: the PNG to write.
        class_names: names of the classes (indices are shown otherwise).
        per_route: images per row (the first ones that took the route).
        max_routes: rows at most (the most common routes).
        routes: the `Routes` of `images` from an earlier `model.route`
            call (with the labels), so they are not routed again.
        boxes: rectangles to draw on each image, e.g. where an attention
            D2NN looked and where the item really is: `{label: array (n,
            4)}` of `(top, left, height, width)` in pixels, one colour per
            label, named in the figure's legend.

    Returns:
        The routing report of `images` (see `routing_report`).

    Example:

    ```python
    from keras_d2nn.data import CLASS_NAMES

    report = keras_d2nn.inspection.route_gallery(
        model, test_images, test_labels, "routes.png",
        class_names=CLASS_NAMES)
    report["routes"][0]["share"]  # the share of the first row's route
    ```

    An attention D2NN's gallery, with the region it looked at and the
    item's true place (`glimpse_baselines.looked_and_item_boxes`):

    ```python
    from keras_d2nn.experiments import glimpse_baselines

    canvas_model = keras_d2nn.architectures.attention(input_shape=(56, 56, 1))
    canvases = np.random.default_rng(0).random((8, 56, 56, 1), "float32")
    routes = canvas_model.route(canvases)
    boxes = glimpse_baselines.looked_and_item_boxes(
        canvas_model, routes.decisions["look"],
        positions=np.full((8, 2), 10))  # the items' (row, column)
    keras_d2nn.inspection.route_gallery(
        canvas_model, canvases, np.zeros(8, "int32"), "canvases.png",
        boxes=boxes)
    ```
    """
    images = np.asarray(images)
    labels = np.asarray(labels).reshape(-1)
    if per_route < 1 or max_routes < 1:
        raise ValueError(
            "`per_route` and `max_routes` should be >= 1. Received: "
            f"per_route={per_route}, max_routes={max_routes}"
        )
    _as_image(images[0])
    boxes = _checked_boxes(boxes, len(images))
    if routes is None:
        routes = model.route(images, batch_size, labels=labels)
    report = routing_report.summarize(model.plan, routes, class_names)
    names, _ = routing_report.route_names(model.plan, routes["decisions"])
    rows = report["routes"][:max_routes]

    def name_of(c):
        return (
            class_names[c]
            if class_names is not None and 0 <= c < len(class_names)
            else str(c)
        )

    fig = plt.figure(
        figsize=(1.2 * per_route, 1.9 * len(rows) + 0.4), layout="constrained"
    )
    fig.suptitle("Images by route: predicted (true) class", fontsize=10)
    for sub, info in zip(
        fig.subfigures(len(rows), 1, squeeze=False)[:, 0], rows
    ):
        sub.suptitle(
            f"{info['route']}: {info['share']:.1%} of images, accuracy "
            f"{info['accuracy']:.3f}, {info['mean_flops'] / 1e6:.3g} "
            "MFLOPs per image",
            x=0.01,
            ha="left",
            fontsize=9,
        )
        chosen = np.flatnonzero(names == info["route"])[:per_route]
        row = sub.subplots(1, per_route, squeeze=False)[0]
        for ax, index in zip(row, chosen):
            predicted = int(routes["predictions"][index])
            truth = int(labels[index])
            ax.imshow(_as_image(images[index]), cmap="gray")
            _draw_boxes(ax, boxes, index)
            ax.set_xlabel(
                f"{name_of(predicted)}\n({name_of(truth)})",
                fontsize=6.5,
                color="tab:green" if predicted == truth else "tab:red",
            )
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
            if not ax.images:
                ax.axis("off")
    if boxes:
        fig.legend(
            handles=[
                patches.Patch(edgecolor=colour, fill=False, label=label)
                for label, colour in zip(boxes, BOX_COLOURS)
            ],
            loc="upper right",
            fontsize=7,
        )
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return report
