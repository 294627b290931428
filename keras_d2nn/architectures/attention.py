"""The paper's attention (glimpse) D2NN: look at one region closely."""

from __future__ import annotations

from collections.abc import Sequence

import keras

from keras_d2nn.architectures import arguments
from keras_d2nn.graph import Graph
from keras_d2nn.layers import Controller
from keras_d2nn.models import D2NNModel

# (top, left) corners of the default 20x20 glimpses on a 28x28 image: the
# four corners and the centre.
DEFAULT_REGIONS = ((0, 0), (0, 8), (8, 0), (8, 8), (4, 4))
REGION_NAMES = (
    "top_left",
    "top_right",
    "bottom_left",
    "bottom_right",
    "centre",
)


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
    if not item_size < glimpse_size <= canvas_size:
        raise ValueError(
            "`glimpse_size` should be larger than the item and at most the "
            f"canvas: {item_size} < glimpse_size <= {canvas_size}. "
            f"Received: glimpse_size={glimpse_size}"
        )
    stride = glimpse_size - item_size + 1
    last = canvas_size - glimpse_size
    starts = list(range(0, last, stride)) + [last]
    return tuple((top, left) for top in starts for left in starts)


def _glimpse_network(size, channels):
    return keras.Sequential(
        [
            keras.Input((size, size, channels)),
            keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Flatten(),
            keras.layers.Dense(64, activation="relu"),
        ],
        name="glimpse_network",
    )


def _head(context_units, glimpse_units, num_classes):
    context = keras.Input((context_units,))
    glimpse = keras.Input((glimpse_units,))
    joined = keras.layers.Concatenate()([glimpse, context])
    return keras.Model(
        [glimpse, context],
        keras.layers.Dense(num_classes)(joined),
        name="head_network",
    )


def attention(
    input_shape: Sequence[int] = (28, 28, 1),
    num_classes: int = 10,
    regions: Sequence[Sequence[int]] | None = None,
    region_names: Sequence[str] | None = None,
    glimpse_size: int = 20,
    downsample: int = 4,
    name: str = "attention",
) -> D2NNModel:
    """Builds an attention (glimpse) D2NN: from a low-resolution view, a
    controller picks one region to process at full resolution.

    ```
    image -> lowres -> context -> <look>
      |                  |          | one region per example
      |                  |          v
      +--> crop_top_left -----> glimpse_top_left ---.
      +--> ...                  ...                 +-> glimpse (merge)
      '--> crop_centre -------> glimpse_centre -----'       |
                         |                                  v
                         '-------------------------> head([glimpse, context])
    ```

    `lowres` averages `downsample`x`downsample` blocks (28x28 -> 7x7);
    `context` (a small convolution and Dense(32)) summarises it and feeds
    the controller `look`. The chosen region is cropped from the image at
    full resolution (`glimpse_size` square) and processed by one glimpse
    network, shared by all regions. The head classifies from the glimpse
    and the context.

    Args:
        input_shape: shape of one image.
        num_classes: number of classes.
        regions: `(top, left)` corners of the regions (default: four
            corners and the centre of a 28x28 image).
        region_names: action names (default: `top_left`, ...).
        glimpse_size: side of the square regions.
        downsample: pooling factor of the low-resolution view.
        name: model name.

    Returns:
        An uncompiled `D2NNModel` with controller `look`, one action per
        region.

    Example:

    ```python
    model = keras_d2nn.architectures.attention()
    ```
    """
    input_shape = arguments.image_shape("attention", input_shape)
    num_classes = arguments.class_count("attention", num_classes)
    height, width, channels = tuple(input_shape)
    regions = tuple(tuple(r) for r in (regions or DEFAULT_REGIONS))
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
    graph.input("image", shape=(height, width, channels))
    graph.metadata["architecture"] = "attention"
    graph.f_node(
        "lowres",
        keras.layers.AveragePooling2D(downsample, name="lowres"),
        inputs="image",
    )
    graph.f_node(
        "context",
        keras.Sequential(
            [
                keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
                keras.layers.Flatten(),
                keras.layers.Dense(32, activation="relu"),
            ],
            name="context_network",
        ),
        inputs="lowres",
    )
    graph.q_node(
        "look",
        Controller(len(regions), hidden_units=(16,)),
        inputs="context",
        actions=tuple(region_names),
    )
    glimpse = _glimpse_network(glimpse_size, channels)
    branches = []
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
        graph.f_node(f"glimpse_{region}", glimpse, inputs=f"crop_{region}")
        branches.append(f"glimpse_{region}")
    graph.merge("glimpse", inputs=branches)
    graph.f_node(
        "head", _head(32, 64, num_classes), inputs=["glimpse", "context"]
    )
    graph.output("head")
    return D2NNModel(graph, name=name)
