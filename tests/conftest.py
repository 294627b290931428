import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from keras_d2nn import data  # noqa: E402


@pytest.fixture(scope="session")
def fashion_mnist():
    """Real Fashion-MNIST images: `(x_train, y_train, x_test, y_test)`.

    Skipped where the IDX files are missing, except on CI, where `.ci/run`
    installs them and a missing data set must fail loudly.
    """
    try:
        x_train, y_train = data.load_fashion_mnist("train")
        x_test, y_test = data.load_fashion_mnist("test")
    except FileNotFoundError as error:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(error))
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
