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
