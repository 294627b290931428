"""Synthetic images for tests that need image-shaped inputs, not real
ones: they run on any machine, with or without the Fashion-MNIST files."""

from __future__ import annotations

import numpy as np


def shape_images(
    n: int, seed: int = 0, labels: bool | str = False
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """`n` 28x28x1 float32 images of one to three rectangles of random
    brightness on black, as garments lie on Fashion-MNIST's black
    background: untrained controllers send them down more routes than
    uniform noise (chain: three routes where 16 real images took one).

    Args:
        n: the number of images.
        seed: the seed of the draw (the same images for the same seed).
        labels: also return `n` int32 labels: True, random in 0..9, drawn
            after the images; `"count"`, the number of rectangles minus
            one (0..2): labels a network can learn, so that a job trained
            on them ends above chance.

    Example:

    ```python
    from keras_d2nn.testing import shape_images

    images, labels = shape_images(4, labels=True)
    images.shape, str(labels.dtype)  # (4, 28, 28, 1), "int32"
    ```
    """
    rng = np.random.default_rng(seed)
    images = np.zeros((n, 28, 28, 1), "float32")
    counts = np.zeros(n, "int32")
    for index, image in enumerate(images):
        counts[index] = rng.integers(1, 4)
        for _ in range(counts[index]):
            top, left = rng.integers(0, 24, 2)
            height, width = rng.integers(3, 20, 2)
            image[top : top + height, left : left + width] += rng.random()
    images = np.clip(images, 0.0, 1.0)
    if not labels:
        return images
    if labels == "count":
        return images, counts - 1
    if labels is not True:
        raise ValueError(
            f"`labels` should be False, True or 'count'. Received: "
            f"labels={labels!r}"
        )
    return images, rng.integers(0, 10, n).astype("int32")
