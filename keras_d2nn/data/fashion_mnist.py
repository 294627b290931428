"""A TFDS builder preparing Fashion-MNIST from local IDX files, offline.

It produces the same splits (`train`: 60,000, `test`: 10,000) and features
(`image`: uint8 (28, 28, 1), `label`: ClassLabel with the 10 names) as
TFDS's own `fashion_mnist`, so pipelines do not care which one made the
data. The IDX files come from the manual directory: by default the Debian
package `dataset-fashion-mnist`'s `/usr/share/datasets/fashion-mnist/`.
TFDS needs the builder's code in an importable module (not `__main__`).
"""

import tensorflow_datasets as tfds

from keras_d2nn.data import idx

CLASS_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


MANUAL_DOWNLOAD_INSTRUCTIONS = (
    "Put the four Fashion-MNIST IDX files (train-images-idx3-ubyte.gz, "
    "train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, "
    "t10k-labels-idx1-ubyte.gz) in the manual directory, e.g. by "
    "`apt-get install dataset-fashion-mnist` (Debian/Ubuntu)."
)


def read_split(directory, split):
    """The `(images, labels)` uint8 arrays of Fashion-MNIST's `split`
    from the IDX files in `directory`, or a FileNotFoundError saying how
    to get them.

    Example: `images, labels = read_split(fashion_mnist_dir(), "test")`.
    """
    paths = [idx.find_idx(directory, stem) for stem in FILES[split]]
    if None in paths:
        raise FileNotFoundError(
            f"Fashion-MNIST IDX files for '{split}' not found in "
            f"{directory}. {MANUAL_DOWNLOAD_INSTRUCTIONS}"
        )
    images, labels = (idx.read_idx(p) for p in paths)
    return images, labels


class FashionMnistIdx(tfds.core.GeneratorBasedBuilder):
    """Fashion-MNIST prepared from the original IDX files in a manual dir.

    Example:

    ```python
    # slow
    # needs Fashion-MNIST
    import tensorflow_datasets as tfds
    from keras_d2nn.data import FashionMnistIdx, fashion_mnist_dir

    builder = FashionMnistIdx(data_dir="tfds")
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        manual_dir=fashion_mnist_dir()))  # the IDX files
    ds = builder.as_dataset(split="test", as_supervised=True)
    ```
    """

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Same content as fashion_mnist 3.0.1."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS

    def _info(self):
        return self.dataset_info_from_configs(
            description="Fashion-MNIST (Zalando), from local IDX files.",
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(28, 28, 1)),
                    "label": tfds.features.ClassLabel(names=list(CLASS_NAMES)),
                }
            ),
            supervised_keys=("image", "label"),
            homepage="https://github.com/zalandoresearch/fashion-mnist",
        )

    def _split_generators(self, dl_manager):
        return {
            split: self._generate_examples(dl_manager.manual_dir, split)
            for split in FILES
        }

    def _generate_examples(self, directory, split):
        images, labels = read_split(directory, split)
        for i, (image, label) in enumerate(zip(images, labels)):
            yield i, {"image": image[..., None], "label": int(label)}
