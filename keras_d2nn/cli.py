"""Command line: `python -m keras_d2nn COMMAND [--flags]`.

Commands:
  get_data  makes sure the Fashion-MNIST IDX files are there: installs the
            Debian package `dataset-fashion-mnist` when run as root where
            apt-get exists, and otherwise says what to do.
  train     trains a D2NN on Fashion-MNIST (through TFDS), evaluates it and
            its baselines on the test split, and writes report.json,
            tradeoff.png and model.keras to --output_dir.
  export    writes a trained model (--model=PATH.keras) as a SavedModel
            for TF Serving, a LiteRT .tflite file (float32, or --quantize
            float16/int8) or an ONNX file (--format), with routed
            execution inside, to --output.
  tune      searches cost_weight with keras-tuner for an objective
            (--budget, --target_accuracy or --reward_cost_weight) and
            writes the Pareto front, its plot, the best model and a summary
            to --output_dir; resumes an interrupted search.
  verify    runs a model (--model) and its export (--exported) on --n real
            test images and reports how well they agree.
"""

import dataclasses
import os
import shutil
import subprocess
import sys
import zipfile

from absl import app
from absl import flags
from absl import logging

from keras_d2nn import data
from keras_d2nn import estimators
from keras_d2nn import main_job
from keras_d2nn import tune_job
from keras_d2nn.architectures import ARCHITECTURES

FLAGS = flags.FLAGS
COMMANDS = ("get_data", "train", "export", "verify", "tune")
EXPORT_FORMATS = ("saved_model", "litert", "onnx")
_DEFAULTS = main_job.TrainConfig()
_TUNE = tune_job.TuneConfig()

flags.DEFINE_string("arch", _DEFAULTS.arch,
                    f"Architecture: one of {list(ARCHITECTURES)}.")
flags.DEFINE_string("dataset", _DEFAULTS.dataset,
                    f"Dataset: one of {list(data.DATASETS)}.")
flags.DEFINE_string("data_dir", None,
                    "Directory with the Fashion-MNIST IDX files (default: "
                    f"${data.ENV_VAR} or {data.DEFAULT_DIR}).")
flags.DEFINE_string("tfds_dir", None, "TFDS data directory (default: "
                    "~/tensorflow_datasets).")
flags.DEFINE_integer("epochs", _DEFAULTS.epochs, "Training epochs.")
flags.DEFINE_float("cost_weight", _DEFAULTS.cost_weight,
                   "Weight of the normalised FLOP cost in the reward (>= 0).")
flags.DEFINE_float("entropy_weight", _DEFAULTS.entropy_weight,
                   "Entropy bonus of the controllers.")
flags.DEFINE_float("learning_rate", _DEFAULTS.learning_rate,
                   "Adam learning rate.")
flags.DEFINE_integer("batch_size", _DEFAULTS.batch_size, "Batch size.")
flags.DEFINE_integer("train_examples", _DEFAULTS.train_examples,
                     "Use only the first N training images (0: all).")
flags.DEFINE_string("estimator", _DEFAULTS.estimator,
                    f"How controllers learn: one of {list(estimators.NAMED)}.")
flags.DEFINE_integer("warmup_epochs", _DEFAULTS.warmup_epochs,
                     "Epochs of random routing before controllers learn.")
flags.DEFINE_integer("cost_weight_ramp_epochs",
                     _DEFAULTS.cost_weight_ramp_epochs,
                     "Ramp cost_weight linearly from 0, in the first epoch "
                     "after the warm-up, to --cost_weight, reached this "
                     "many epochs later (0: constant).")
flags.DEFINE_bool("baselines", _DEFAULTS.baselines,
                  "Also train and measure the baselines (static networks, "
                  "random routing, threshold exit).")
flags.DEFINE_integer("baseline_epochs", _DEFAULTS.baseline_epochs,
                     "Epochs for each baseline network (0: same as --epochs).")
flags.DEFINE_string("output_dir", _DEFAULTS.output_dir,
                    "Where report.json, tradeoff.png and model.keras go.")
flags.DEFINE_integer("seed", _DEFAULTS.seed, "Random seed.")
flags.DEFINE_integer("verbose", _DEFAULTS.verbose,
                     "Keras verbosity: 0 silent, 1 progress bar, 2 one line "
                     "per epoch.")
flags.DEFINE_bool("save_optimizer", _DEFAULTS.save_optimizer,
                  "train: keep the optimizer state in model.keras (needed "
                  "to resume training; --nosave_optimizer makes the file "
                  "three times smaller, enough to predict and export).")
flags.DEFINE_bool("tensorboard", _DEFAULTS.tensorboard,
                  "train: write TensorBoard logs (loss, accuracy, cost, "
                  "action rates, cost weight, controller confidence) to "
                  "OUTPUT_DIR/logs.")
flags.DEFINE_float("budget", _TUNE.budget, "tune: the most accurate model "
                   "within this fraction of the full network's FLOPs.")
flags.DEFINE_float("target_accuracy", _TUNE.target_accuracy,
                   "tune: the cheapest model with at least this validation "
                   "accuracy.")
flags.DEFINE_float("reward_cost_weight", _TUNE.reward_cost_weight,
                   "tune: maximise accuracy - this * FLOP fraction (the "
                   "default objective, with 0.1).")
flags.DEFINE_string("tuner", _TUNE.tuner,
                    f"tune: one of {list(tune_job.TUNERS)}.")
flags.DEFINE_integer("max_trials", _TUNE.max_trials, "tune: trials to run.")
flags.DEFINE_integer("val_examples", _TUNE.val_examples,
                     "tune: the last N training images, held out to score "
                     "trials on.")
flags.DEFINE_float("cost_weight_min", _TUNE.cost_weight_min,
                   "tune: smallest cost_weight searched (log scale).")
flags.DEFINE_float("cost_weight_max", _TUNE.cost_weight_max,
                   "tune: largest cost_weight searched.")
flags.DEFINE_string("estimators", _TUNE.estimators,
                    "tune: comma-separated estimators to search over.")
flags.DEFINE_string("model", None, "export: the trained .keras file.")
flags.DEFINE_bool("unsafe_load", False,
                  "export, verify: load --model with Keras safe mode off, "
                  "which runs code stored in the file (Lambda layers). Only "
                  "for files you trust.")
flags.DEFINE_enum("format", "saved_model", EXPORT_FORMATS,
                  "export: what to write.")
flags.DEFINE_string("output", None, "export: the output path.")
flags.DEFINE_integer("export_batch_size", None,
                     "export: fixed batch size (default: any for "
                     "saved_model and onnx, 1 for litert; 0 for any).")
flags.DEFINE_enum("quantize", "none", ("none", "float16", "int8"),
                  "export --format=litert: post-training quantisation.")
flags.DEFINE_integer("calibration_examples", 500,
                     "export --quantize=int8: training images of --dataset "
                     "to calibrate activation ranges on.")
flags.DEFINE_string("exported", None,
                    "verify: the exported model (SavedModel directory, "
                    ".tflite or .onnx).")
flags.DEFINE_integer("n", 10_000, "verify: number of test images (the "
                     "first N of the test split).")
flags.DEFINE_string("report", None, "verify: also write the report as JSON "
                    "to this path.")


def _fail(message):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


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
        print(f"Installing the Debian package {data.DEBIAN_PACKAGE} ...")
        install = ["apt-get", "install", "-y", "-q", data.DEBIAN_PACKAGE]
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
        f"install -y {data.DEBIAN_PACKAGE}`, or put the four *-ubyte.gz "
        "files of Fashion-MNIST in a directory and pass --data_dir=DIR (or set "
        f"{data.ENV_VAR}=DIR).")


def _config_from_flags(cls, own_defaults=None):
    """A config dataclass from the flags, checked, with its data prepared
    (or a one-line failure). Flags named in `own_defaults` keep the
    config's default unless given on the command line."""
    defaults = cls()
    config = cls(**{
        field.name: (getattr(defaults, field.name)
                     if field.name in (own_defaults or ())
                     and not FLAGS[field.name].present
                     else getattr(FLAGS, field.name))
        for field in dataclasses.fields(cls)})
    try:
        config.check()
        data.prepared_builder(config.dataset, config.tfds_dir,
                              config.data_dir)
    except (ValueError, FileNotFoundError) as error:
        _fail(str(error))
    return config


def train():
    """Trains, evaluates and measures baselines (see `main_job`)."""
    main_job.run(_config_from_flags(main_job.TrainConfig))


def tune():
    """Searches cost_weight (see `tune_job`)."""
    # Flags shared with `train` whose defaults differ for a search.
    tune_job.run(_config_from_flags(
        tune_job.TuneConfig, own_defaults=("train_examples", "output_dir")))


def _load_d2nn():
    """--model, loaded in Keras safe mode, or a one-line failure."""
    import keras

    if not os.path.isfile(FLAGS.model):
        _fail(f"--model: no file {FLAGS.model!r}; expected a .keras file "
              "written by `model.save` or by the train command.")
    # Keras reports a file that is not a zip archive as "File not found".
    if not zipfile.is_zipfile(FLAGS.model):
        _fail(f"--model: {FLAGS.model!r} is not a .keras file (a zip "
              "archive): truncated, corrupt or another format.")
    try:
        model = keras.models.load_model(FLAGS.model,
                                        safe_mode=not FLAGS.unsafe_load)
    except Exception as error:  # Keras raises several types on bad files
        if "safe_mode" in str(error):
            _fail(f"--model: {FLAGS.model!r} carries code (a Lambda layer "
                  "or another Python function), which Keras safe mode "
                  "refuses to load because loading would run it. If you "
                  "trust the file, add --unsafe_load.")
        _fail(f"--model: could not load {FLAGS.model!r} as a Keras model "
              f"({type(error).__name__}: {error}).")
    if not hasattr(model, "plan"):
        _fail(f"--model: {FLAGS.model!r} is a Keras model but not a D2NN "
              "(keras_d2nn.D2NNModel).")
    return model


def _calibration_images():
    try:
        images, _ = data.load_arrays(FLAGS.dataset, "train",
                                     data_dir=FLAGS.tfds_dir,
                                     manual_dir=FLAGS.data_dir,
                                     take=FLAGS.calibration_examples)
    except (ValueError, FileNotFoundError) as error:
        _fail(f"int8 calibration needs the {FLAGS.dataset} training split: "
              f"{error}")
    return images


def export():
    """Loads --model (Keras safe mode) and exports it (see `export`)."""
    from keras_d2nn import export as export_lib

    if not FLAGS.model or not FLAGS.output:
        _fail("export needs --model=PATH.keras and --output=PATH.")
    quantization = None if FLAGS.quantize == "none" else FLAGS.quantize
    if quantization and FLAGS.format != "litert":
        _fail(f"--quantize={FLAGS.quantize} applies to --format=litert "
              f"only; received --format={FLAGS.format}.")
    if FLAGS.calibration_examples < 1:
        _fail("--calibration_examples should be >= 1; received "
              f"{FLAGS.calibration_examples}.")
    model = _load_d2nn()
    batch = FLAGS.export_batch_size
    if batch is not None and batch < 0:
        _fail(f"--export_batch_size should be >= 0 (0: any); received "
              f"{batch}.")
    batch = None if batch == 0 else batch
    try:
        if FLAGS.format == "saved_model":
            path = export_lib.export_saved_model(model, FLAGS.output, batch)
        elif FLAGS.format == "onnx":
            path = export_lib.export_onnx(model, FLAGS.output, batch)
        else:
            path = export_lib.export_litert(
                model, FLAGS.output,
                1 if FLAGS.export_batch_size is None else batch,
                quantization=quantization,
                representative_images=_calibration_images()
                if quantization == "int8" else None)
    except ValueError as error:
        _fail(str(error))
    print(f"wrote {path}")


def verify():
    """Compares --model with its export --exported on real test images."""
    import json

    from keras_d2nn import exported as exported_lib
    from keras_d2nn import verify as verify_lib

    if not FLAGS.model or not FLAGS.exported:
        _fail("verify needs --model=PATH.keras and --exported=PATH.")
    if FLAGS.n < 1:
        _fail(f"--n should be >= 1; received {FLAGS.n}.")
    try:
        exported = exported_lib.load_exported(FLAGS.exported)
    except (ValueError, FileNotFoundError) as error:
        _fail(f"--exported: {error}")
    model = _load_d2nn()
    try:
        images, labels = data.load_arrays(FLAGS.dataset, "test",
                                          data_dir=FLAGS.tfds_dir,
                                          manual_dir=FLAGS.data_dir,
                                          take=FLAGS.n)
    except (ValueError, FileNotFoundError) as error:
        _fail(str(error))
    try:
        report = verify_lib.verify(model, exported, images, labels)
    except ValueError as error:
        _fail(str(error))
    print(verify_lib.format_report(report))
    if FLAGS.report:
        with open(FLAGS.report, "w") as f:
            json.dump(report, f, indent=2)
        print(f"wrote {FLAGS.report}")
    if report["passed"] is False:
        sys.exit(1)


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
    # absl would print every INFO line of TFDS; keep the output for people.
    logging.set_verbosity(logging.WARNING)
    {"get_data": get_data, "train": train, "export": export,
     "verify": verify, "tune": tune}[argv[1]]()


def run():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    app.run(main)
