"""Datasets as `tf.data` pipelines built with tensorflow-datasets (TFDS).

`load("fashion_mnist", split)` picks, in this order:
1. whichever builder is already prepared in `data_dir`: TFDS's own
   `fashion_mnist`, else the offline `FashionMnistIdx`;
2. TFDS's own `fashion_mnist`, downloaded, when its server is reachable;
3. the offline builder `FashionMnistIdx`, preparing the same splits and
   features from local IDX files (the Debian package
   `dataset-fashion-mnist`, or any directory given as `manual_dir` or in
   `$KERAS_D2NN_FASHION_MNIST_DIR`).
Otherwise one `FileNotFoundError` names both ways to get the data.
"""

from __future__ import annotations

import os
import socket
import urllib.parse
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from keras_d2nn.data import idx
from keras_d2nn.data.fashion_mnist import CLASS_NAMES
from keras_d2nn.data.fashion_mnist import FILES
from keras_d2nn.data.fashion_mnist import FashionMnistIdx
from keras_d2nn.data.fashion_mnist_canvas import FashionMnistCanvas

DEFAULT_DIR = "/usr/share/datasets/fashion-mnist"
ENV_VAR = "KERAS_D2NN_FASHION_MNIST_DIR"
DEBIAN_PACKAGE = "dataset-fashion-mnist"
# Image shape and class names of the datasets `load` knows. The canvases
# are built offline from the Fashion-MNIST files (`FashionMnistCanvas`),
# `fashion_mnist_canvas` being its default config, canvas112.
DATASETS: dict[str, dict[str, Any]] = {
    "fashion_mnist": {"shape": (28, 28, 1), "class_names": CLASS_NAMES},
    "fashion_mnist_canvas": {
        "shape": (112, 112, 1),
        "class_names": CLASS_NAMES,
        "config": "canvas112",
    },
    "fashion_mnist_canvas/canvas224": {
        "shape": (224, 224, 1),
        "class_names": CLASS_NAMES,
        "config": "canvas224",
    },
}
SPLITS = ("train", "test")


def fashion_mnist_dir(directory: str | os.PathLike[str] | None = None) -> str:
    """The directory holding the IDX files: argument, env var, or default.

    Example:

    ```python
    from keras_d2nn import data

    data.fashion_mnist_dir("my_data")  # "my_data"
    data.fashion_mnist_dir()  # $KERAS_D2NN_FASHION_MNIST_DIR, or else
                              # "/usr/share/datasets/fashion-mnist"
    ```
    """
    return str(directory or os.environ.get(ENV_VAR) or DEFAULT_DIR)


def _has_idx_files(directory):
    return all(
        idx.find_idx(directory, stem)
        for stems in FILES.values()
        for stem in stems
    )


def missing_data_message(
    directory: str | os.PathLike[str], tried_tfds: bool = True
) -> str:
    """The one message for missing data, naming both ways to get it."""
    tfds_part = (
        ", and TFDS's fashion_mnist is neither prepared nor "
        "downloadable from here"
        if tried_tfds
        else ""
    )
    return (
        f"Fashion-MNIST IDX files not found in {directory}{tfds_part}. "
        "Either install them (as root on Debian/Ubuntu: `apt-get install -y "
        f"{DEBIAN_PACKAGE}`, or `python -m keras_d2nn get_data`), or put the "
        "four *-ubyte.gz files in a directory and pass it as `manual_dir` / "
        f"--data_dir (or set {ENV_VAR}); with network access TFDS downloads "
        "fashion_mnist itself."
    )


def _server_reachable(builder_cls, timeout=3.0):
    """Whether the standard builder's download host answers, quickly.

    Offline, TFDS's own download retries for minutes; we ask first.
    """
    url = getattr(builder_cls, "URL", None)
    host = urllib.parse.urlparse(url).hostname if url else None
    if not host:
        return False
    try:
        socket.create_connection((host, 80), timeout=timeout).close()
        return True
    except OSError:
        return False


def _is_prepared(builder_cls, data_dir):
    # Looking before instantiating: a builder object creates its folder,
    # and TFDS then warns about a variant folder without dataset info.
    path = os.path.join(
        data_dir or tfds.core.constants.DATA_DIR,
        builder_cls.name,
        str(builder_cls.VERSION),
        "dataset_info.json",
    )
    return os.path.exists(path)


def check_dataset(name: str) -> dict[str, Any]:
    """The settings of dataset `name`, or a ValueError naming the known
    ones.

    Example: `check_dataset("fashion_mnist")["class_names"]`.
    """
    if name not in DATASETS:
        raise ValueError(
            f"`dataset` should be one of {sorted(DATASETS)}. "
            f"Received: dataset={name!r}"
        )
    return DATASETS[name]


def dataset_for_shape(shape: Any) -> str:
    """The first dataset of `DATASETS` whose images have `shape`, or a
    ValueError naming the shapes known.

    Example: `dataset_for_shape((112, 112, 1))  # "fashion_mnist_canvas"`.
    """
    shape = tuple(shape)
    for name, settings in DATASETS.items():
        if tuple(settings["shape"]) == shape:
            return name
    raise ValueError(
        f"No dataset has images of shape {shape}; the datasets' shapes: "
        f"{ {n: s['shape'] for n, s in DATASETS.items()} }. Pass --dataset, "
        "or compare on your own images from Python."
    )


def prepared_builder(
    name: str = "fashion_mnist",
    data_dir: str | os.PathLike[str] | None = None,
    manual_dir: str | os.PathLike[str] | None = None,
) -> tfds.core.DatasetBuilder:
    """A prepared TFDS builder for `name` (see the module docstring).

    Example: `builder = prepared_builder(); builder.info.splits["test"]`.
    """
    settings = check_dataset(name)
    directory = fashion_mnist_dir(manual_dir)
    if "config" in settings:
        return _prepared_canvas(settings["config"], data_dir, directory)
    standard_cls = tfds.builder_cls(name)
    if _is_prepared(standard_cls, data_dir):
        return tfds.builder(name, data_dir=data_dir)
    local_prepared = _is_prepared(FashionMnistIdx, data_dir)
    if not local_prepared and _server_reachable(standard_cls):
        standard = tfds.builder(name, data_dir=data_dir)
        standard.download_and_prepare()
        return standard
    if local_prepared or _has_idx_files(directory):
        local = FashionMnistIdx(data_dir=data_dir)
        local.download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=directory)
        )
        return local
    raise FileNotFoundError(missing_data_message(directory))


def _prepared_canvas(config, data_dir, directory):
    """The canvas builder of `config`, prepared from the IDX files in
    `directory` on first use (about a minute for canvas112)."""
    builder = FashionMnistCanvas(config=config, data_dir=data_dir)
    if not os.path.exists(os.path.join(builder.data_dir, "dataset_info.json")):
        if not _has_idx_files(directory):
            raise FileNotFoundError(missing_data_message(directory, False))
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=directory)
        )
    return builder


def load_positions(
    name: str = "fashion_mnist_canvas",
    split: str = "test",
    *,
    data_dir: str | os.PathLike[str] | None = None,
    manual_dir: str | os.PathLike[str] | None = None,
    take: int | None = None,
) -> np.ndarray:
    """The items' top-left corners `(row, column)` on a canvas split, as an
    int32 `(n, 2)` array in `load_arrays`'s order: metadata for baselines
    and plots, never a model input.

    Example:

    ```python
    # slow
    # needs Fashion-MNIST
    from keras_d2nn import data

    data.load_positions("fashion_mnist_canvas", "test", take=3)
    # e.g. [[17, 60], [3, 81], [44, 2]]
    ```
    """
    if "config" not in check_dataset(name):
        raise ValueError(
            f"{name} has no positions: its items are not placed on a "
            "canvas. Datasets with positions: "
            f"{sorted(n for n, s in DATASETS.items() if 'config' in s)}."
        )
    builder = prepared_builder(name, data_dir, manual_dir)
    ds = builder.as_dataset(split=split, shuffle_files=False)
    if take is not None:
        ds = ds.take(take)
    positions = [batch["position"].numpy() for batch in ds.batch(10_000)]
    return np.concatenate(positions).astype(np.int32)


def _normalise(image, label):
    return tf.cast(image, tf.float32) / 255.0, tf.cast(label, tf.int32)


def load(
    name: str = "fashion_mnist",
    split: str = "train",
    batch_size: int = 128,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    manual_dir: str | os.PathLike[str] | None = None,
    shuffle: bool | None = None,
    take: int | None = None,
    seed: int = 0,
    drop_remainder: bool = False,
) -> tf.data.Dataset:
    """A batched, prefetched `tf.data.Dataset` of `(image, label)` pairs.

    Images are float32 in [0, 1], shape `(batch, 28, 28, 1)` (the
    canvases: `(batch, 112, 112, 1)` or 224); labels int32.

    Args:
        name: dataset name (`"fashion_mnist"`, `"fashion_mnist_canvas"`,
            `"fashion_mnist_canvas/canvas224"`).
        split: a TFDS split: `"train"`, `"test"`, or a slice such as
            `"train[:5000]"`.
        batch_size: examples per batch.
        data_dir: TFDS data directory (default `~/tensorflow_datasets`).
        manual_dir: directory with the IDX files (see the module docstring).
        shuffle: shuffle the examples each epoch (default: for training
            splits only).
        take: keep only the first `take` examples (before shuffling).
        seed: shuffling seed.

    Example:

    ```python
    # slow
    # needs Fashion-MNIST
    from keras_d2nn import data

    train = data.load("fashion_mnist", "train[:512]", batch_size=128,
                      data_dir="tfds")  # prepared there on first use
    model.fit(train, epochs=1, verbose=0)
    ```
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(
            "`batch_size` should be an int >= 1. Received: "
            f"batch_size={batch_size!r}"
        )
    builder = prepared_builder(name, data_dir, manual_dir)
    base_split = split.split("[")[0]
    if base_split not in builder.info.splits:
        raise ValueError(
            f"Unknown split {split!r} for {name}; splits: "
            f"{sorted(builder.info.splits)}."
        )
    ds = builder.as_dataset(
        split=split, as_supervised=True, shuffle_files=False
    )
    if take is not None:
        ds = ds.take(take)
    if shuffle if shuffle is not None else base_split == "train":
        ds = ds.shuffle(10_000, seed=seed, reshuffle_each_iteration=True)
    ds = ds.map(_normalise, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch_size, drop_remainder=drop_remainder).prefetch(
        tf.data.AUTOTUNE
    )


def load_arrays(
    name: str = "fashion_mnist",
    split: str = "test",
    *,
    data_dir: str | os.PathLike[str] | None = None,
    manual_dir: str | os.PathLike[str] | None = None,
    take: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """A split as NumPy `(images, labels)`, normalised as in `load`.

    Example:

    ```python
    # slow
    # needs Fashion-MNIST
    from keras_d2nn import data

    x_test, y_test = data.load_arrays("fashion_mnist", "test", take=1000,
                                      data_dir="tfds")
    x_test.shape, y_test.shape  # (1000, 28, 28, 1), (1000,)
    ```
    """
    ds = load(
        name,
        split,
        batch_size=10_000,
        data_dir=data_dir,
        manual_dir=manual_dir,
        shuffle=False,
        take=take,
    )
    images, labels = zip(*[(x.numpy(), y.numpy()) for x, y in ds])
    return np.concatenate(images), np.concatenate(labels)


def load_fashion_mnist(
    split: str = "train",
    directory: str | os.PathLike[str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Reads a Fashion-MNIST split straight from the IDX files (no TFDS).

    Images are float32 in [0, 1] of shape `(n, 28, 28, 1)`; labels int32.

    Example:

    ```python
    # needs Fashion-MNIST
    from keras_d2nn import data

    images, labels = data.load_fashion_mnist("test")
    images.shape, labels[:3]  # (10000, 28, 28, 1), [9, 2, 1]
    ```
    """
    if split not in FILES:
        raise ValueError(
            f"`split` should be one of {tuple(FILES)}. Received: "
            f"split={split!r}"
        )
    directory = fashion_mnist_dir(directory)
    image_path, label_path = (
        idx.find_idx(directory, stem) for stem in FILES[split]
    )
    if image_path is None or label_path is None:
        raise FileNotFoundError(missing_data_message(directory, False))
    images = idx.read_idx(image_path).astype(np.float32)[..., None] / 255.0
    labels = idx.read_idx(label_path).astype(np.int32)
    if len(images) != len(labels):
        raise ValueError(
            f"{image_path} has {len(images)} images but {label_path} has "
            f"{len(labels)} labels."
        )
    return images, labels
