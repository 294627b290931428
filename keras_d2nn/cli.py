"""Command line: `python -m keras_d2nn COMMAND [--flags]`.

Commands:
  get_data  makes sure the Fashion-MNIST IDX files are there: installs the
            Debian package `dataset-fashion-mnist` when run as root where
            apt-get exists, and otherwise says what to do.
  train     trains a D2NN on Fashion-MNIST, evaluates it on the test split
            and writes report.json and model.keras to --output_dir.
"""

import json
import os
import pathlib
import shutil
import subprocess
import sys
import time

import keras
import numpy as np
from absl import app
from absl import flags

from keras_d2nn import architectures
from keras_d2nn import data

FLAGS = flags.FLAGS
COMMANDS = ("get_data", "train")
DEBIAN_PACKAGE = "dataset-fashion-mnist"
ARCHITECTURE_NAMES = ("high_low",)
# Image shape and number of classes of each dataset.
DATASETS = {"fashion_mnist": ((28, 28, 1), 10)}

flags.DEFINE_string("arch", "high_low",
                    f"Architecture to build: one of {ARCHITECTURE_NAMES}.")
flags.DEFINE_string("dataset", "fashion_mnist",
                    f"Dataset: one of {tuple(DATASETS)}.")
flags.DEFINE_string("data_dir", None,
                    "Directory with the Fashion-MNIST IDX files (default: "
                    "$KERAS_D2NN_FASHION_MNIST_DIR or the Debian package's).")
flags.DEFINE_integer("epochs", 3, "Training epochs.", lower_bound=1)
flags.DEFINE_float("cost_weight", 0.1,
                   "Weight of the normalised FLOP cost in the reward (>= 0).")
flags.DEFINE_float("entropy_weight", 0.01, "Entropy bonus of controllers.")
flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate.")
flags.DEFINE_integer("batch_size", 128, "Batch size.", lower_bound=1)
flags.DEFINE_integer("train_examples", 0,
                     "Use only the first N training images (0: all 60,000).",
                     lower_bound=0)
flags.DEFINE_string("output_dir", "runs/default",
                    "Where report.json and model.keras are written.")
flags.DEFINE_integer("seed", 0, "Random seed.")
flags.DEFINE_integer("verbose", 1, "Keras verbosity: 0 silent, 1 progress "
                     "bar, 2 one line per epoch.")


def _fail(message):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def _check_choice(value, choices, what):
    if value not in choices:
        _fail(f"unknown {what} {value!r}; expected one of {list(choices)}.")


def get_data():
    """Finds Fashion-MNIST, installing the Debian package where it can."""
    directory = data.fashion_mnist_dir(FLAGS.data_dir)

    def found():
        try:
            data.load_fashion_mnist("test", FLAGS.data_dir)
            return True
        except FileNotFoundError:
            return False

    if found():
        print(f"Fashion-MNIST found in {directory}")
        return
    if FLAGS.data_dir is None and os.geteuid() == 0 and shutil.which(
            "apt-get"):
        print(f"Installing the Debian package {DEBIAN_PACKAGE} ...")
        install = ["apt-get", "install", "-y", "-q", DEBIAN_PACKAGE]
        if subprocess.run(install).returncode != 0:
            # A fresh machine may have no package lists yet.
            subprocess.run(["apt-get", "update", "-q"])
            subprocess.run(install)
        if found():
            print(f"Fashion-MNIST installed in {data.DEFAULT_DIR}")
            return
    _fail(
        f"Fashion-MNIST is not in {directory} and could not be installed "
        "here (that needs root and apt-get). Either run, as root, `apt-get "
        f"install -y {DEBIAN_PACKAGE}`, or put the four *-ubyte.gz files of "
        "Fashion-MNIST in a directory and pass --data_dir=DIR (or set "
        f"{data.ENV_VAR}=DIR).")


def train():
    """Trains, evaluates on the test split, and writes the report."""
    _check_choice(FLAGS.arch, ARCHITECTURE_NAMES, "--arch")
    _check_choice(FLAGS.dataset, DATASETS, "--dataset")
    keras.utils.set_random_seed(FLAGS.seed)
    input_shape, num_classes = DATASETS[FLAGS.dataset]
    model = architectures.ARCHITECTURES[FLAGS.arch](
        input_shape=input_shape, num_classes=num_classes)
    try:
        model.compile(
            optimizer=keras.optimizers.Adam(FLAGS.learning_rate),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
            cost_weight=FLAGS.cost_weight,
            entropy_weight=FLAGS.entropy_weight,
        )
    except ValueError as error:
        _fail(str(error))
    try:
        x_train, y_train = data.load_fashion_mnist("train", FLAGS.data_dir)
        x_test, y_test = data.load_fashion_mnist("test", FLAGS.data_dir)
    except (FileNotFoundError, ValueError) as error:
        _fail(str(error))
    if FLAGS.train_examples:
        x_train = x_train[:FLAGS.train_examples]
        y_train = y_train[:FLAGS.train_examples]

    print(f"Training {FLAGS.arch} on {len(x_train)} {FLAGS.dataset} images "
          f"for {FLAGS.epochs} epochs, cost_weight={FLAGS.cost_weight}.")
    start = time.time()
    model.fit(x_train, y_train, epochs=FLAGS.epochs,
              batch_size=FLAGS.batch_size, verbose=FLAGS.verbose)
    train_seconds = time.time() - start

    results = model.evaluate(x_test, y_test, batch_size=256, verbose=0,
                             return_dict=True)
    routes = model.route(x_test)
    rows = model.cost_report(x_test)
    action_rates = {
        q: {action: float(np.mean(routes["decisions"][q] == i))
            for i, action in enumerate(model.plan.nodes[q].actions)}
        for q in model.plan.controllers
    }
    mean_flops = float(routes["executed_flops"].astype(np.float64).mean())
    report = {
        "arch": FLAGS.arch,
        "dataset": FLAGS.dataset,
        "test_accuracy": float(results["accuracy"]),
        "mean_cost_fraction": mean_flops / model.full_flops,
        "mean_flops": mean_flops,
        "full_flops": model.full_flops,
        "action_rates": action_rates,
        "cost_weight": FLAGS.cost_weight,
        "epochs": FLAGS.epochs,
        "train_examples": len(x_train),
        "seed": FLAGS.seed,
        "train_seconds": train_seconds,
        "nodes": rows,
    }
    output_dir = pathlib.Path(FLAGS.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "report.json").write_text(json.dumps(report, indent=2))
    model.save(output_dir / "model.keras")

    print(f"\ntest accuracy:      {report['test_accuracy']:.4f}")
    print(f"mean cost:          {report['mean_cost_fraction']:.4f} of the "
          f"full network ({mean_flops:,.0f} of {model.full_flops:,.0f} "
          "FLOPs per example)")
    for q, rates in action_rates.items():
        shares = ", ".join(f"{a} {r:.1%}" for a, r in rates.items())
        print(f"controller {q}: {shares}")
    print(f"wrote {output_dir / 'report.json'} and "
          f"{output_dir / 'model.keras'}")


def main(argv):
    if len(argv) < 2 or argv[1] not in COMMANDS:
        given = argv[1] if len(argv) > 1 else "nothing"
        _fail(f"expected a command, one of {list(COMMANDS)}; received "
              f"{given}. Usage: python -m keras_d2nn "
              f"{'|'.join(COMMANDS)} [--flags]; "
              "--helpfull lists the flags.")
    if len(argv) > 2:
        _fail(f"unexpected arguments {argv[2:]}; flags look like "
              "--epochs=3.")
    {"get_data": get_data, "train": train}[argv[1]]()


def run():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    app.run(main)
