"""Fashion-MNIST from the original IDX files, offline.

The Debian package `dataset-fashion-mnist` installs the IDX files under
`/usr/share/datasets/fashion-mnist/`; any directory holding the same four
files works. (A TFDS-based loader builds on this reader.)
"""

import gzip
import os
import pathlib

import numpy as np

DEFAULT_DIR = "/usr/share/datasets/fashion-mnist"
ENV_VAR = "KERAS_D2NN_FASHION_MNIST_DIR"
CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
# IDX type codes (the third byte of the magic number) we read.
_IDX_DTYPES = {0x08: np.uint8}


def read_idx(path):
    """Reads an IDX file (optionally gzip-compressed) into a NumPy array.

    Example: `labels = read_idx("t10k-labels-idx1-ubyte.gz")`.
    """
    path = pathlib.Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{path} is not an IDX file (bad magic number).")
    dtype = _IDX_DTYPES.get(data[2])
    if dtype is None:
        raise ValueError(f"{path}: unsupported IDX element type {data[2]:#x}.")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big")
                  for i in range(ndim))
    offset = 4 + 4 * ndim
    expected = int(np.prod(shape)) * np.dtype(dtype).itemsize
    if len(data) - offset != expected:
        raise ValueError(
            f"{path} is truncated or corrupt: header says shape {shape} "
            f"({expected} bytes), file holds {len(data) - offset} bytes.")
    return np.frombuffer(data, dtype=dtype, offset=offset).reshape(shape)


def _find(directory, stem):
    for name in (stem + ".gz", stem):
        path = pathlib.Path(directory) / name
        if path.exists():
            return path
    return None


def fashion_mnist_dir(directory=None):
    """The directory holding the IDX files: argument, env var, or default."""
    return directory or os.environ.get(ENV_VAR) or DEFAULT_DIR


def load_fashion_mnist(split="train", directory=None):
    """Loads a Fashion-MNIST split as `(images, labels)` NumPy arrays.

    Images are float32 in [0, 1] of shape `(n, 28, 28, 1)`; labels int32.

    Args:
        split: `"train"` (60,000) or `"test"` (10,000).
        directory: where the IDX files are (default: the env var
            `KERAS_D2NN_FASHION_MNIST_DIR`, else the Debian package's path).

    Example: `images, labels = load_fashion_mnist("test")`.
    """
    if split not in _FILES:
        raise ValueError(
            f"`split` should be one of {tuple(_FILES)}. Received: {split!r}")
    directory = fashion_mnist_dir(directory)
    image_stem, label_stem = _FILES[split]
    image_path, label_path = _find(directory, image_stem), _find(
        directory, label_stem)
    if image_path is None or label_path is None:
        raise FileNotFoundError(
            f"Fashion-MNIST IDX files not found in {directory}. Either "
            "install them (as root on Debian/Ubuntu: `apt-get install -y "
            "dataset-fashion-mnist`) or download the four *-ubyte.gz files "
            f"into a directory and set {ENV_VAR} to it.")
    images = read_idx(image_path).astype(np.float32)[..., None] / 255.0
    labels = read_idx(label_path).astype(np.int32)
    if len(images) != len(labels):
        raise ValueError(
            f"{image_path} has {len(images)} images but {label_path} has "
            f"{len(labels)} labels.")
    return images, labels
