"""Fashion-MNIST on a cluttered canvas: each item at a random place on a
large black canvas, among patches cut from other items.

This is the cluttered-translated setup of the recurrent-attention
literature (an MNIST digit on a 60x60 or 100x100 canvas with 8x8
clutter patches), here with Fashion-MNIST items on a 112x112 canvas by
default (224x224 as `canvas224`), 8 clutter patches of 10x10 pixels.
Clutter is cut from other items of the same split, so that "where is the
ink" does not answer "where is the item", and blended with `max`, so
that it never erases the item. The item's top-left corner is kept as
`position` (metadata for baselines and plots, never a model input).

It is built offline and deterministically from the IDX files that
`FashionMnistIdx` reads: example `i` of a split is drawn from its own
random stream, seeded by the split and `i`, so that the same files give
the same canvases on every machine. Splits: `train` (60,000) and `test`
(10,000), Fashion-MNIST's own.
"""

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from keras_d2nn.data.fashion_mnist import CLASS_NAMES
from keras_d2nn.data.fashion_mnist import FashionMnistIdx
from keras_d2nn.data.fashion_mnist import read_split

ITEM_SIZE = 28
SEED = 20261204
SPLIT_IDS = {"train": 0, "test": 1}


def check_canvas_size(canvas_size):
    """`canvas_size` as an int, or a ValueError saying what is expected.

    Example: `check_canvas_size(112)  # 112`.
    """
    if isinstance(canvas_size, bool) or not isinstance(
        canvas_size, (int, np.integer)
    ):
        raise ValueError(
            f"`canvas_size` should be an int >= {ITEM_SIZE} (pixels per "
            f"side). Received: canvas_size={canvas_size!r}"
        )
    if canvas_size < ITEM_SIZE:
        raise ValueError(
            f"`canvas_size` should be >= {ITEM_SIZE}, the size of a "
            f"Fashion-MNIST item. Received: canvas_size={canvas_size}"
        )
    return int(canvas_size)


def compose_canvas(item, clutter_items, rng, canvas_size, patch_size=10):
    """One canvas: `item` (28x28 uint8) at a random place, and one patch
    of `patch_size` pixels cut at random from each of `clutter_items`, at
    random places, blended with `max`.

    Returns `(canvas, position)`: a `(canvas_size, canvas_size, 1)` uint8
    array and the item's top-left corner `(row, column)`.

    Example:

    ```python
    import numpy as np
    from keras_d2nn.data.fashion_mnist_canvas import compose_canvas

    item = np.full((28, 28), 255, np.uint8)
    canvas, (row, col) = compose_canvas(
        item, [], np.random.default_rng(0), 112)
    canvas[row:row + 28, col:col + 28].min()  # 255
    ```
    """
    canvas_size = check_canvas_size(canvas_size)
    if not 1 <= patch_size <= ITEM_SIZE:
        raise ValueError(
            f"`patch_size` should be in [1, {ITEM_SIZE}]. Received: "
            f"patch_size={patch_size!r}"
        )
    canvas = np.zeros((canvas_size, canvas_size), np.uint8)
    free = canvas_size - ITEM_SIZE + 1
    for source in clutter_items:
        top, left = rng.integers(0, ITEM_SIZE - patch_size + 1, size=2)
        patch = source[top : top + patch_size, left : left + patch_size]
        row, col = rng.integers(0, canvas_size - patch_size + 1, size=2)
        window = canvas[row : row + patch_size, col : col + patch_size]
        np.maximum(window, patch, out=window)
    row, col = (int(v) for v in rng.integers(0, free, size=2))
    window = canvas[row : row + ITEM_SIZE, col : col + ITEM_SIZE]
    np.maximum(window, item, out=window)
    return canvas[..., None], (row, col)


def clutter_sources(rng, count, item, clutter):
    """`clutter` indices in `[0, count)` of the items to cut clutter from,
    drawn from `rng`, never `item` itself (its own patches would show the
    item twice).

    Example:

    ```python
    import numpy as np
    from keras_d2nn.data.fashion_mnist_canvas import clutter_sources

    clutter_sources(np.random.default_rng(0), 2, 0, 3)  # [1, 1, 1]
    ```
    """
    others = rng.integers(0, count - 1, size=clutter)
    return others + (others >= item)


@dataclasses.dataclass
class CanvasConfig(tfds.core.BuilderConfig):
    """A canvas size and its clutter.

    Example: `CanvasConfig(name="canvas160", canvas_size=160)`.
    """

    canvas_size: int = 112
    clutter: int = 8
    patch_size: int = 10

    def __post_init__(self):
        check_canvas_size(self.canvas_size)
        if isinstance(self.clutter, bool) or not (
            isinstance(self.clutter, int) and self.clutter >= 0
        ):
            raise ValueError(
                "`clutter` should be an int >= 0 (patches per canvas). "
                f"Received: clutter={self.clutter!r}"
            )


class FashionMnistCanvas(FashionMnistIdx):
    """Fashion-MNIST items on a cluttered canvas, built offline from the
    IDX files (see the module docstring): `FashionMnistIdx`'s splits and
    files, other examples.

    Example:

    ```python
    # slow
    # needs Fashion-MNIST
    import tensorflow_datasets as tfds
    from keras_d2nn.data import FashionMnistCanvas, fashion_mnist_dir

    builder = FashionMnistCanvas(data_dir="tfds", config="canvas112")
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        manual_dir=fashion_mnist_dir()))  # the IDX files
    ds = builder.as_dataset(split="test")  # image, label, position
    ```
    """

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "112x112 and 224x224, 8 patches of 10x10."}
    BUILDER_CONFIGS = [
        CanvasConfig(name="canvas112", canvas_size=112),
        CanvasConfig(name="canvas224", canvas_size=224),
    ]

    def _info(self):
        size = self.builder_config.canvas_size
        return self.dataset_info_from_configs(
            description=(
                f"Fashion-MNIST items at random places on a {size}x{size} "
                f"canvas with {self.builder_config.clutter} clutter patches "
                "cut from other items."
            ),
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(size, size, 1)),
                    "label": tfds.features.ClassLabel(names=list(CLASS_NAMES)),
                    # The item's top-left corner (row, column).
                    "position": tfds.features.Tensor(
                        shape=(2,), dtype=np.int32
                    ),
                }
            ),
            supervised_keys=("image", "label"),
            homepage="https://github.com/zalandoresearch/fashion-mnist",
        )

    def _generate_examples(self, directory, split):
        images, labels = read_split(directory, split)
        config = self.builder_config
        for i, (image, label) in enumerate(zip(images, labels)):
            rng = np.random.default_rng([SEED, SPLIT_IDS[split], i])
            canvas, position = compose_canvas(
                image,
                [
                    images[j]
                    for j in clutter_sources(
                        rng, len(images), i, config.clutter
                    )
                ],
                rng,
                config.canvas_size,
                config.patch_size,
            )
            yield (
                i,
                {
                    "image": canvas,
                    "label": int(label),
                    "position": np.array(position, np.int32),
                },
            )
