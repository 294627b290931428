"""Datasets as `tf.data` pipelines built with tensorflow-datasets (TFDS),
the offline TFDS builder of Fashion-MNIST from its IDX files, and the
cluttered-canvas variant built from the same files (for the attention
D2NN).

Settings read at call time (`pipelines.DEFAULT_DIR`, ...) live in
`keras_d2nn.data.pipelines`: change them there.
"""

from keras_d2nn.data.fashion_mnist import CLASS_NAMES
from keras_d2nn.data.fashion_mnist import FashionMnistIdx
from keras_d2nn.data.fashion_mnist_canvas import FashionMnistCanvas
from keras_d2nn.data.pipelines import DATASETS
from keras_d2nn.data.pipelines import SPLITS
from keras_d2nn.data.pipelines import fashion_mnist_dir
from keras_d2nn.data.pipelines import load
from keras_d2nn.data.pipelines import load_arrays
from keras_d2nn.data.pipelines import load_fashion_mnist
from keras_d2nn.data.pipelines import load_positions

__all__ = [
    "CLASS_NAMES",
    "DATASETS",
    "SPLITS",
    "FashionMnistCanvas",
    "FashionMnistIdx",
    "fashion_mnist_dir",
    "load",
    "load_arrays",
    "load_fashion_mnist",
    "load_positions",
]
