"""The IDX reader and the Fashion-MNIST loader."""

import gzip

import numpy as np
import pytest

from keras_d2nn import data
from keras_d2nn.data import idx
from keras_d2nn.data import pipelines
from keras_d2nn.data.fashion_mnist import FILES


def write_idx(path, array, compress=True):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    payload = header + array.astype(np.uint8).tobytes()
    opener = gzip.open if compress else open
    with opener(path, "wb") as f:
        f.write(payload)


def test_read_idx_round_trip(tmp_path):
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a.gz", array)
    write_idx(tmp_path / "b", array, compress=False)
    np.testing.assert_array_equal(idx.read_idx(tmp_path / "a.gz"), array)
    np.testing.assert_array_equal(idx.read_idx(tmp_path / "b"), array)


def test_read_idx_rejects_truncated_and_foreign_files(tmp_path):
    array = np.zeros((4, 5), dtype=np.uint8)
    write_idx(tmp_path / "t", array, compress=False)
    content = (tmp_path / "t").read_bytes()
    (tmp_path / "t").write_bytes(content[:-3])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        idx.read_idx(tmp_path / "t")
    (tmp_path / "png").write_bytes(b"\x89PNG\r\n\x1a\n")
    with pytest.raises(ValueError, match="not an IDX file"):
        idx.read_idx(tmp_path / "png")


def test_loader_from_a_user_directory(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (5, 28, 28))
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.arange(5))
    x, y = data.load_fashion_mnist("test", directory=tmp_path)
    assert x.shape == (5, 28, 28, 1) and x.dtype == np.float32
    np.testing.assert_allclose(x[..., 0] * 255, images, atol=1e-3)
    np.testing.assert_array_equal(y, np.arange(5))


def test_missing_data_names_both_ways_to_get_it(tmp_path):
    with pytest.raises(
        FileNotFoundError,
        match="apt-get install -y "
        "dataset-fashion-mnist.*"
        "KERAS_D2NN_FASHION_MNIST_DIR",
    ):
        data.load_fashion_mnist("train", directory=tmp_path)
    with pytest.raises(ValueError, match="`split` should be one of"):
        data.load_fashion_mnist("validation")


def test_real_fashion_mnist(fashion_mnist):
    x_train, y_train, x_test, y_test = fashion_mnist
    assert x_train.shape == (60000, 28, 28, 1)
    assert x_test.shape == (10000, 28, 28, 1)
    assert np.bincount(y_test).tolist() == [1000] * 10
    assert 0.0 <= x_train.min() and x_train.max() <= 1.0


# A small Fashion-MNIST look-alike: the IDX files of `SPLIT_SIZES`
# examples each, labels 0 to 9 in turn.
SPLIT_SIZES = {"train": 300, "test": 200}


@pytest.fixture(scope="module")
def idx_dir(tmp_path_factory):
    """A directory of the four Fashion-MNIST IDX files, synthetic."""
    directory = tmp_path_factory.mktemp("idx")
    rng = np.random.default_rng(0)
    for split, (images, labels) in FILES.items():
        n = SPLIT_SIZES[split]
        write_idx(directory / f"{images}.gz", rng.integers(0, 256, (n, 28, 28)))
        write_idx(directory / f"{labels}.gz", np.arange(n) % 10)
    return directory


@pytest.fixture(scope="module")
def synthetic_tfds_dir(tmp_path_factory, idx_dir):
    """A TFDS data directory with the offline builder prepared from
    `idx_dir` (what `tfds_dir` is for the real files)."""
    import tensorflow_datasets as tfds

    directory = str(tmp_path_factory.mktemp("tfds"))
    data.FashionMnistIdx(data_dir=directory).download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(idx_dir))
    )
    return directory


def test_tfds_builder_matches_tfds_fashion_mnist(synthetic_tfds_dir):
    import tensorflow_datasets as tfds

    builder = pipelines.prepared_builder(
        "fashion_mnist", data_dir=synthetic_tfds_dir
    )
    assert builder.name == "fashion_mnist_idx"
    # Every example of the IDX files (60,000 and 10,000 of the real ones).
    for split, n in SPLIT_SIZES.items():
        assert builder.info.splits[split].num_examples == n
    reference = tfds.builder("fashion_mnist", data_dir=synthetic_tfds_dir).info
    ours = builder.info.features
    assert ours["image"].shape == reference.features["image"].shape
    assert ours["image"].dtype == reference.features["image"].dtype
    assert ours["label"].names == reference.features["label"].names
    assert builder.info.supervised_keys == reference.supervised_keys


def test_load_gives_batched_normalised_images(synthetic_tfds_dir, idx_dir):
    ds = data.load(
        "fashion_mnist", "test", batch_size=64, data_dir=synthetic_tfds_dir
    )
    images, labels = next(iter(ds))
    assert images.shape == (64, 28, 28, 1) and images.dtype == "float32"
    assert labels.dtype == "int32"
    x, y = data.load_arrays(
        "fashion_mnist", "test", data_dir=synthetic_tfds_dir
    )
    x_idx, y_idx = data.load_fashion_mnist("test", directory=idx_dir)
    assert 0.0 <= x.min() and x.max() <= 1.0
    # Same examples as the IDX files (TFDS orders them its own way).
    np.testing.assert_array_equal(np.bincount(y), np.bincount(y_idx))
    for label in range(10):
        np.testing.assert_allclose(
            x[y == label].sum(), x_idx[y_idx == label].sum(), rtol=1e-5
        )
    sliced = data.load(
        "fashion_mnist",
        "test[:100]",
        batch_size=64,
        data_dir=synthetic_tfds_dir,
    )
    assert sum(int(b[0].shape[0]) for b in sliced) == 100


def test_load_rejects_bad_names(synthetic_tfds_dir):
    with pytest.raises(
        ValueError,
        match="`dataset` should be one of .* Received: dataset='cifar'",
    ):
        data.load("cifar", "train")
    with pytest.raises(ValueError, match="Unknown split 'validation'"):
        data.load("fashion_mnist", "validation", data_dir=synthetic_tfds_dir)
    with pytest.raises(ValueError, match="`batch_size` should be an int"):
        data.load(
            "fashion_mnist", "test", batch_size=0, data_dir=synthetic_tfds_dir
        )


def test_missing_dataset_names_both_ways(tmp_path, monkeypatch):
    # As offline, wherever it runs: TFDS's server not reachable (else TFDS
    # would download its own fashion_mnist).
    monkeypatch.setattr(pipelines, "_server_reachable", lambda *_, **__: False)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(
        FileNotFoundError,
        match="apt-get install -y dataset-fashion-mnist.*"
        "with network access TFDS downloads",
    ):
        data.load(
            "fashion_mnist",
            "train",
            data_dir=str(tmp_path / "tfds"),
            manual_dir=str(empty),
        )
