"""Packaging for keras-d2nn. Versions are the verified ranges (see
docs/architecture.md, "Traps of the stack")."""

import pathlib

from setuptools import find_packages
from setuptools import setup

HERE = pathlib.Path(__file__).parent
VERSION = {}
exec((HERE / "keras_d2nn" / "version.py").read_text(), VERSION)

INSTALL_REQUIRES = [
    "tensorflow==2.21.*",
    "keras>=3.15",
    # The [tf] extra brings tf-keras, without which TFP refuses to import.
    "tensorflow-probability[tf]==0.25.*",
    "tensorflow-datasets==4.9.*",
    # TFDS 4.9 needs it at run time but does not declare it.
    "importlib_resources",
    "absl-py",
    # The LiteRT interpreter (tf.lite.Interpreter is deprecated): export,
    # verification and the on-device benchmarks run models with it.
    "ai-edge-litert",
    # ONNX export (tf2onnx) and running the exported model (onnxruntime).
    "tf2onnx==1.17.*",
    "onnxruntime>=1.20",
    # Cost-weight search; [bayesian] brings scikit-learn for
    # BayesianOptimization, and keras-tuner imports tensorboard in every
    # trial (docs/architecture.md, "Traps").
    "keras-tuner[bayesian]==1.4.*",
    "tensorboard",
    "numpy",
    "matplotlib",
    # plot_graph lays graphs out with Graphviz (its `dot` program is a
    # system package), as keras.utils.plot_model does.
    "pydot",
]

EXTRAS = {
    "test": ["pytest>=8", "pytest-xdist>=3", "hypothesis>=6"],
    "dev": ["pytest>=8", "pytest-xdist>=3", "hypothesis>=6", "ruff", "mypy",
            "tox"],
}

setup(
    name="keras-d2nn",
    version=VERSION["__version__"],
    description="Dynamic Deep Neural Networks (D2NN) for Keras 3, with real "
                "selective execution.",
    long_description=(HERE / "README.md").read_text(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["keras_d2nn", "keras_d2nn.*"]),
    python_requires=">=3.11",
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["keras-d2nn=keras_d2nn.cli:run"]},
    license="Apache-2.0",
)
