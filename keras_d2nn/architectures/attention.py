"""The paper's attention (glimpse) D2NN: look at one region closely."""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np

from keras_d2nn.architectures import arguments
from keras_d2nn.graph import Graph
from keras_d2nn.layers import BlockAverage
from keras_d2nn.layers import Controller
from keras_d2nn.models import D2NNModel

# (top, left) corners of the default 20x20 glimpses on a 28x28 image: the
# four corners and the centre.
DEFAULT_REGIONS = ((0, 0), (0, 8), (8, 0), (8, 8), (4, 4))
# The canvas's glimpse: 48x48 holds a 28x28 item at 21 positions per
# axis, so 5x5 regions cover a 112x112 canvas.
DEFAULT_GLIMPSE = 48
CONTEXT_UNITS = 64
REGION_NAMES = (
    "top_left",
    "top_right",
    "bottom_left",
    "bottom_right",
    "centre",
)


def _covering_starts(side, glimpse_size, what, item_size=28):
    if not item_size < glimpse_size <= side:
        raise ValueError(
            "`glimpse_size` should be larger than the item and at most the "
            f"canvas's {what}: {item_size} < glimpse_size <= {side}. "
            f"Received: glimpse_size={glimpse_size}"
        )
    stride = glimpse_size - item_size + 1
    last = side - glimpse_size
    return list(range(0, last, stride)) + [last]


def covering_regions(
    canvas_size: int, glimpse_size: int, item_size: int = 28
) -> tuple[tuple[int, int], ...]:
    """The fewest `(top, left)` corners of a square grid of
    `glimpse_size` regions on a `canvas_size` canvas such that an item of
    `item_size` pixels, wherever it lies, is inside one region: corners
    `glimpse_size - item_size + 1` apart along each axis (a region holds
    an item at that many consecutive positions), the last flush with the
    far edge.

    Example:

    ```python
    from keras_d2nn.architectures.attention import covering_regions

    len(covering_regions(112, 48))  # 25: corners 0, 21, 42, 63, 64
    ```
    """
    starts = _covering_starts(canvas_size, glimpse_size, "side", item_size)
    return tuple((top, left) for top in starts for left in starts)


def _glimpse_network(channels):
    # Fully convolutional, ending in a global max pool: the same weights
    # read a crop or the whole canvas (the full-resolution network), and
    # an item gives the same features wherever it lies in either.
    return keras.Sequential(
        [
            keras.Input((None, None, channels)),
            keras.layers.Conv2D(
                16, 5, strides=2, padding="same", activation="relu"
            ),
            keras.layers.MaxPooling2D(2),
            keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Conv2D(64, 3, padding="same", activation="relu"),
            keras.layers.GlobalMaxPooling2D(),
        ],
        name="glimpse_network",
    )


def _context_map(channels):
    # Where things are on the low-resolution view, kept spatial (the
    # controller reads it to choose a region).
    return keras.Sequential(
        [
            keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Flatten(),
        ],
        name="context_map_network",
    )


@keras.saving.register_keras_serializable(package="keras_d2nn")
class RegionScores(keras.layers.Layer):
    """One logit per region from a score map: the mean of the map over the
    region's centre zone, the positions where an item's centre lies when
    the region holds the whole item.

    The map `(batch, rows, columns, 1)` covers the image in cells of
    `cell` pixels; each logit is a fixed weighted sum of the map (weights:
    the share of the region's zone in each cell), so one small
    convolutional network scores every region with the same weights, and
    what it learns at one place holds at every other.

    Args:
        regions: `(top, left)` corners of the regions, in pixels.
        glimpse_size: side of the square regions, in pixels.
        cell: pixels per side of one map cell.
        map_shape: `(rows, columns)` of the score map.
        item_size: side of the items the regions must hold (the zone is
            the whole region when it is no larger than an item).

    Example:

    ```python
    from keras_d2nn.architectures.attention import RegionScores

    scores = RegionScores([(0, 0), (64, 64)], 48, cell=8, map_shape=(14, 14))
    scores(np.ones((2, 14, 14, 1), "float32")).shape  # (2, 2)
    ```
    """

    def __init__(
        self,
        regions,
        glimpse_size,
        cell,
        map_shape,
        item_size=28,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.regions = [tuple(int(v) for v in r) for r in regions]
        self.glimpse_size = int(glimpse_size)
        self.cell = int(cell)
        self.map_shape = tuple(int(v) for v in map_shape)
        self.item_size = int(item_size)
        self.weights_per_cell = self._zone_weights()

    def _zone_weights(self):
        rows, columns = self.map_shape
        height, width = rows * self.cell, columns * self.cell
        margin = (
            self.item_size // 2 if self.glimpse_size > self.item_size else 0
        )
        side = self.glimpse_size - 2 * margin + (1 if margin else 0)
        matrix = np.zeros((rows * columns, len(self.regions)), np.float32)
        for index, (top, left) in enumerate(self.regions):
            zone = np.zeros((height, width), np.float32)
            zone[
                top + margin : top + margin + side,
                left + margin : left + margin + side,
            ] = 1.0
            cells = zone.reshape(rows, self.cell, columns, self.cell)
            share = cells.sum(axis=(1, 3)).reshape(-1)
            if not share.sum():
                raise ValueError(
                    f"Region ({top}, {left}) lies outside the score map of "
                    f"{rows}x{columns} cells of {self.cell} pixels."
                )
            matrix[:, index] = share / share.sum()
        return matrix

    def call(self, scores):
        flat = keras.ops.reshape(scores, (-1, self.weights_per_cell.shape[0]))
        return keras.ops.matmul(
            flat, keras.ops.convert_to_tensor(self.weights_per_cell)
        )

    def compute_output_shape(self, input_shape):
        return (input_shape[0], len(self.regions))

    def compute_flops(self, inputs):
        """FLOPs per example: one multiply-add per cell and region.

        Example: `RegionScores(regions, 48, 8, (14, 14)).compute_flops(x)`.
        """
        return 2.0 * self.weights_per_cell.size

    def get_config(self):
        return {
            **super().get_config(),
            "regions": [list(r) for r in self.regions],
            "glimpse_size": self.glimpse_size,
            "cell": self.cell,
            "map_shape": list(self.map_shape),
            "item_size": self.item_size,
        }


def _region_controller(lowres_shape, regions, glimpse_size, downsample):
    """The controller network of the canvas: two small convolutions on the
    low-resolution view, a score per position (8x8-pixel cells on a
    112x112 canvas), averaged over each region's centre zone."""
    rows, columns, channels = lowres_shape
    view = keras.Input((rows, columns, channels))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(view)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Conv2D(12, 3, padding="same", activation="relu")(x)
    x = keras.layers.Conv2D(1, 1)(x)
    logits = RegionScores(
        regions,
        glimpse_size,
        cell=2 * downsample,
        map_shape=(rows // 2, columns // 2),
    )(x)
    return keras.Model(view, logits, name="region_scores")


def _head(context_units, glimpse_units, num_classes):
    context = keras.Input((context_units,))
    glimpse = keras.Input((glimpse_units,))
    joined = keras.layers.Concatenate()([glimpse, context])
    hidden = keras.layers.Dense(64, activation="relu")(joined)
    return keras.Model(
        [glimpse, context],
        keras.layers.Dense(num_classes)(hidden),
        name="head_network",
    )


def _default_layout(height, width, glimpse_size):
    """The default glimpse size and regions of an image: the five 20x20
    regions of a 28x28 item, else regions of 48 pixels covering every
    position of a 28x28 item on the canvas."""
    if (height, width) == (28, 28):
        return glimpse_size or 20, DEFAULT_REGIONS
    glimpse_size = glimpse_size or min(DEFAULT_GLIMPSE, height, width)
    rows = _covering_starts(height, glimpse_size, "height")
    columns = _covering_starts(width, glimpse_size, "width")
    return glimpse_size, tuple((top, left) for top in rows for left in columns)


def attention(
    input_shape: Sequence[int] = (28, 28, 1),
    num_classes: int = 10,
    regions: Sequence[Sequence[int]] | None = None,
    region_names: Sequence[str] | None = None,
    glimpse_size: int | None = None,
    downsample: int = 4,
    glimpse_network: keras.Layer | None = None,
    name: str = "attention",
    value_range: tuple[float, float] | None = (0.0, 1.0),
) -> D2NNModel:
    """Builds an attention (glimpse) D2NN: from a low-resolution view of
    the canvas, a controller picks one region to process at full
    resolution.

    ```
    image -> lowres -> context_map -> context -----------------.
      |        |                                               |
      |      <look>  one region per example                    |
      +--> crop_region0 ---.                                   |
      +--> ...             +-> crop -> glimpse ------------> head
      '--> crop_region24 --'
    ```

    `lowres` averages `downsample`x`downsample` blocks (112x112 -> 28x28);
    `context_map` (two small convolutions) and `context` (Dense(64))
    summarise it for the head. The controller `look` scores the regions
    from `lowres` with its own two small convolutions, a score per
    position averaged over each region's centre zone (`RegionScores`; on
    a 28x28 toy image, a dense controller on `context_map`). The chosen
    region is cropped from the canvas at full
    resolution (each region's crop is a conditional node; `crop` merges
    them, one per example; the engine runs them as one gather of each
    example's chosen crop) and read by one glimpse network (fully
    convolutional, global max pool), once, on the batch of chosen crops.
    The head classifies from the glimpse and the context. Other regions
    are not read: routed execution and the exports crop only the chosen
    region, and the glimpse network runs once per example.

    Made for `fashion_mnist_canvas` (a 28x28 item somewhere on a 112x112
    canvas, with clutter; `input_shape=(112, 112, 1)`): 48x48 regions, 25
    of them, so that the item, wherever it lies, is inside one
    (`covering_regions`). On a 28x28 image (the default shape, as every
    builder's) there is nothing to save and the defaults are a toy: five
    20x20 regions (four corners and the centre). Train it with
    `recipes.fit_static_first(model, full_resolution_network(model), ...,
    route_epochs=2)` (the glimpse network first on whole canvases, then
    the controller on the frozen modules, then the modules on the
    controller's crops); `full_resolution_network` is also the dearest
    baseline.

    Args:
        input_shape: shape of one image.
        value_range: the values the images hold, `(0.0, 1.0)` as
            `keras_d2nn.data`'s pipelines scale them; the model and its
            exports refuse (or flag) images beyond it (`Graph.input`).
            None: not checked.
        num_classes: number of classes.
        regions: `(top, left)` corners of the regions (default above).
        region_names: action names (default: `top_left`, ... for the five
            toy regions, else `region0`, ...).
        glimpse_size: side of the square regions (default: 48, or 20 on a
            28x28 image).
        downsample: pooling factor of the low-resolution view.
        glimpse_network: the layer reading a crop `(glimpse_size,
            glimpse_size, channels)` into a vector, shared by all regions
            (default: the fully convolutional network above, which also
            reads the whole image for `full_resolution_network`).
        name: model name.

    Returns:
        An uncompiled `D2NNModel` with controller `look`, one action per
        region.

    Example:

    ```python
    model = keras_d2nn.architectures.attention(input_shape=(112, 112, 1))
    len(model.plan.nodes["look"].actions)  # 25 regions
    ```
    """
    input_shape = arguments.image_shape("attention", input_shape)
    num_classes = arguments.class_count("attention", num_classes)
    height, width, channels = tuple(input_shape)
    if glimpse_size is not None and (
        isinstance(glimpse_size, bool)
        or not isinstance(glimpse_size, int)
        or not 0 < glimpse_size <= min(height, width)
    ):
        raise ValueError(
            "`glimpse_size` should be an int in [1, "
            f"{min(height, width)}] (pixels, at most the image). Received: "
            f"glimpse_size={glimpse_size!r}"
        )
    if regions is None:
        glimpse_size, regions = _default_layout(height, width, glimpse_size)
    glimpse_size = glimpse_size or 20
    regions = tuple(tuple(r) for r in regions)
    if region_names is None:
        region_names = (
            REGION_NAMES
            if regions == DEFAULT_REGIONS
            else tuple(f"region{i}" for i in range(len(regions)))
        )
    if len(region_names) != len(regions) or len(regions) < 2:
        raise ValueError(
            "`regions` and `region_names` should have the same length, at "
            f"least 2. Received: regions={regions} and {region_names}"
        )
    for top, left in regions:
        if not (
            0 <= top <= height - glimpse_size
            and 0 <= left <= width - glimpse_size
        ):
            raise ValueError(
                f"Region ({top}, {left}) of size {glimpse_size} does not fit "
                f"in a {height}x{width} image."
            )
    graph = Graph()
    graph.input(
        "image", shape=(height, width, channels), value_range=value_range
    )
    graph.metadata["architecture"] = "attention"
    graph.f_node(
        "lowres",
        # AveragePooling2D's results, several times faster in TF on a
        # one-channel canvas (see BlockAverage).
        BlockAverage(downsample, name="lowres"),
        inputs="image",
    )
    graph.f_node("context_map", _context_map(channels), inputs="lowres")
    graph.f_node(
        "context",
        keras.layers.Dense(CONTEXT_UNITS, activation="relu", name="context"),
        inputs="context_map",
    )
    if (height, width) == (28, 28):
        # The toy: a dense controller on the context map.
        look, source = (
            Controller(len(regions), hidden_units=(128,)),
            "context_map",
        )
    else:
        look = Controller(
            len(regions),
            network=_region_controller(
                (height // downsample, width // downsample, channels),
                regions,
                glimpse_size,
                downsample,
            ),
        )
        source = "lowres"
    graph.q_node("look", look, inputs=source, actions=tuple(region_names))
    glimpse = glimpse_network or _glimpse_network(channels)
    glimpse_units = glimpse.compute_output_shape(
        (None, glimpse_size, glimpse_size, channels)
    )[-1]
    for (top, left), region in zip(regions, region_names):
        crop = keras.layers.Cropping2D(
            (
                (top, height - glimpse_size - top),
                (left, width - glimpse_size - left),
            ),
            name=f"crop_{region}",
        )
        graph.f_node(
            f"crop_{region}", crop, inputs="image", when=("look", region)
        )
    # Each example's one crop, then one glimpse network over the batch of
    # crops: a crop is a copy, so choosing among 25 costs little, and the
    # expensive network runs once, on a full batch (not once per region
    # on a few examples each).
    graph.merge("crop", inputs=[f"crop_{r}" for r in region_names])
    graph.f_node("glimpse", glimpse, inputs="crop")
    graph.f_node(
        "head",
        _head(CONTEXT_UNITS, glimpse_units, num_classes),
        inputs=["glimpse", "context"],
    )
    graph.output("head")
    return D2NNModel(graph, name=name)


def full_resolution_network(
    model: D2NNModel, image_downsample: int = 1
) -> keras.Model:
    """The static network over the whole canvas, sharing `model`'s layers:
    its glimpse network reads the whole image (downsampled by
    `image_downsample`, average pooling) instead of one region, its
    context and head as in the D2NN. With `image_downsample=1` this is the
    dearest baseline, and `fit_static_first`'s first phase trains the D2NN's
    modules through it; on a fresh `attention()` model with
    `image_downsample=2` it is a static network near the D2NN's FLOPs.

    Example:

    ```python
    from keras_d2nn.architectures.attention import full_resolution_network
    from keras_d2nn.graph import layer_flops

    model = keras_d2nn.architectures.attention(input_shape=(112, 112, 1))
    network = full_resolution_network(model)
    network(np.zeros((2, 112, 112, 1), "float32")).shape  # (2, 10)
    layer_flops(network, network.inputs[0]) / model.plan.full_flops
    # about 4.4: the D2NN's dearest route is 0.23 of it
    ```
    """
    if not (
        isinstance(model, D2NNModel)
        and model.graph.metadata.get("architecture") == "attention"
    ):
        raise ValueError(
            "full_resolution_network reads the modules of an attention() "
            "D2NN. Received: "
            f"{getattr(model, 'name', type(model).__name__)!r}"
        )
    if isinstance(image_downsample, bool) or not (
        isinstance(image_downsample, int) and image_downsample >= 1
    ):
        raise ValueError(
            "`image_downsample` should be an int >= 1. Received: "
            f"image_downsample={image_downsample!r}"
        )
    layers = {
        node.name: node.layer
        for node in model.plan.order
        if node.layer is not None
    }
    glimpse = layers["glimpse"]
    spec = model.plan.specs["image"]
    assert spec is not None  # an input node always has its spec
    image = keras.Input(spec.shape[1:], name="image")
    whole = image
    if image_downsample > 1:
        whole = keras.layers.AveragePooling2D(image_downsample)(image)
    context = layers["context"](layers["context_map"](layers["lowres"](image)))
    logits = layers["head"]([glimpse(whole), context])
    return keras.Model(image, logits, name=f"{model.name}_full_resolution")
