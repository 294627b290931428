import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from keras_d2nn import data  # noqa: E402

# Starts the reason of every skip for want of the Fashion-MNIST files, so
# that the run's summary can count them (pytest_terminal_summary).
MISSING_DATA = "Fashion-MNIST files missing"


@pytest.fixture(autouse=True)
def seeded():
    """Every test starts from the same seeds (Python, NumPy, TensorFlow,
    Keras), whatever ran before it in its worker: an unseeded draw in a
    test is the same draw on every run."""
    keras.utils.set_random_seed(0)


@pytest.fixture(scope="session")
def fashion_mnist():
    """Real Fashion-MNIST images: `(x_train, y_train, x_test, y_test)`.

    Only tests about accuracy on real images use it. Skipped where the IDX
    files are missing, except on CI, where the README's first command
    installs them and a missing data set must fail loudly.
    """
    try:
        x_train, y_train = data.load_fashion_mnist("train")
        x_test, y_test = data.load_fashion_mnist("test")
    except FileNotFoundError as error:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"{MISSING_DATA}: {error}")
    return x_train, y_train, x_test, y_test


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def tfds_dir(tmp_path_factory, fashion_mnist):
    """A TFDS data directory with Fashion-MNIST prepared from the IDX files
    (the offline builder, even where TFDS could download)."""
    import tensorflow_datasets as tfds

    from keras_d2nn.data import FashionMnistIdx

    directory = str(tmp_path_factory.mktemp("tfds"))
    FashionMnistIdx(data_dir=directory).download_and_prepare(
        download_config=tfds.download.DownloadConfig(
            manual_dir=data.fashion_mnist_dir()
        )
    )
    return directory


# Examples of each split of `fake_idx_dir`: enough for the jobs' default
# held-out 5,000 training images.
FAKE_SPLITS = {"train": 6000, "test": 1000}


def _write_idx(path, array):
    """Writes `array` (uint8) as a gzipped IDX file, as Fashion-MNIST's."""
    import gzip

    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture(scope="session")
def fake_idx_dir(tmp_path_factory):
    """A directory of the four Fashion-MNIST IDX files, synthetic
    (`keras_d2nn.testing.shape_images`, labelled by their count of
    rectangles): for tests of the jobs and the command line that need the
    files, not real images."""
    from keras_d2nn.data.fashion_mnist import FILES
    from keras_d2nn.testing import shape_images

    directory = tmp_path_factory.mktemp("fake_idx")
    for seed, (split, (image_stem, label_stem)) in enumerate(FILES.items()):
        # Learnable labels: a job trained on them ends above chance.
        images, labels = shape_images(FAKE_SPLITS[split], seed, labels="count")
        _write_idx(
            directory / f"{image_stem}.gz", np.round(255 * images[..., 0])
        )
        _write_idx(directory / f"{label_stem}.gz", labels)
    return str(directory)


@pytest.fixture(scope="session")
def fake_tfds_dir(tmp_path_factory, fake_idx_dir):
    """A TFDS data directory with the offline builder prepared from
    `fake_idx_dir` (what `tfds_dir` is for the real files)."""
    import tensorflow_datasets as tfds

    from keras_d2nn.data import FashionMnistIdx

    directory = str(tmp_path_factory.mktemp("fake_tfds"))
    FashionMnistIdx(data_dir=directory).download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=fake_idx_dir)
    )
    return directory


def _skip_reason(report):
    longrepr = report.longrepr
    return longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)


def pytest_terminal_summary(terminalreporter):
    """Says how many tests skipped for want of the data, and how to get
    it, so that a run without it cannot pass for a full one."""
    skipped = [
        report
        for report in terminalreporter.stats.get("skipped", [])
        if MISSING_DATA in _skip_reason(report)
    ]
    if skipped:
        terminalreporter.write_sep(
            "=",
            f"{len(skipped)} tests skipped: {MISSING_DATA} (they test "
            "accuracy on real images). Get them with `python -m keras_d2nn "
            "get_data` (as root) or set KERAS_D2NN_FASHION_MNIST_DIR",
            yellow=True,
        )


def _runs_slow():
    """Slow tests join the default run on CI (CI set, as CI sets it) or
    where KERAS_D2NN_RUN_SLOW is set; elsewhere `pytest -m slow` runs
    them alone."""
    return bool(os.environ.get("CI") or os.environ.get("KERAS_D2NN_RUN_SLOW"))


def pytest_collection_modifyitems(config, items):
    """Leaves the `slow` tests out of a plain `pytest` (a marker expression
    given with -m decides instead), except where `_runs_slow`."""
    if config.option.markexpr or _runs_slow():
        return
    slow = [item for item in items if item.get_closest_marker("slow")]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [
            item for item in items if not item.get_closest_marker("slow")
        ]
