"""Command line: `python -m keras_d2nn COMMAND [--flags]`.

`python -m keras_d2nn --help` lists the commands, `python -m keras_d2nn
COMMAND --help` a command's flags, `--helpfull` every flag (absl's too).

Commands:
  get_data  prepares what the other commands and the README need: the
            Fashion-MNIST IDX files (Debian package `dataset-fashion-mnist`)
            and Graphviz (`dot`, Debian package `graphviz`), installed with
            one apt-get call when run as root where apt-get exists;
            otherwise says what to do.
  train     trains a D2NN on Fashion-MNIST (through TFDS), for a fixed
            --cost_weight or to a FLOP --budget, evaluates it and its
            baselines on the test split, and writes report.json,
            tradeoff.png and model.keras to --output_dir.
  export    writes a trained model (--model=PATH.keras) as a SavedModel
            for TF Serving, a LiteRT .tflite file (float32, or --quantize
            float16/int8) or an ONNX file (--format), with routed
            execution inside, to --output.
  tune      searches cost_weight with keras-tuner for an objective
            (--budget, --target_accuracy or --flop_penalty) and
            writes the Pareto front, its plot, the best model and a summary
            to --output_dir; resumes an interrupted search.
  verify    runs a model (--model) and its export (--exported) on --n real
            test images and reports how well they agree.
  profile   times an architecture, built as `train` builds it, on a
            --runtime (TF CPU or LiteRT) and writes its latency profile to
            --output, for `train --latency_profile` (milliseconds instead
            of FLOPs as the controllers' cost).

TensorFlow's C++ log lines are hidden (see `tf_logging`) unless
TF_CPP_MIN_LOG_LEVEL is set.
"""

import dataclasses
import os
import re
import shutil
import subprocess
import sys
import textwrap
import zipfile

from absl import app
from absl import flags
from absl import logging

from keras_d2nn import estimators
from keras_d2nn import storage
from keras_d2nn.architectures import ARCHITECTURES
from keras_d2nn.callbacks.epoch_backup import BackupUnusable
from keras_d2nn.data import pipelines
from keras_d2nn.experiments import profile_job
from keras_d2nn.experiments import train_job
from keras_d2nn.experiments import tune_job

FLAGS = flags.FLAGS
COMMANDS = ("get_data", "train", "export", "verify", "tune", "profile")
EXPORT_FORMATS = ("saved_model", "litert", "onnx")
_DEFAULTS = train_job.TrainConfig()
_TUNE = tune_job.TuneConfig()
_PROFILE = profile_job.ProfileConfig()

flags.DEFINE_string(
    "arch", _DEFAULTS.arch, f"Architecture: one of {list(ARCHITECTURES)}."
)
flags.DEFINE_string(
    "dataset",
    None,
    f"Dataset: one of {list(pipelines.DATASETS)} (default: "
    "fashion_mnist_canvas for --arch=attention, else fashion_mnist).",
)
flags.DEFINE_string(
    "data_dir",
    None,
    "Directory with the Fashion-MNIST IDX files (default: "
    f"${pipelines.ENV_VAR} or {pipelines.DEFAULT_DIR}).",
)
flags.DEFINE_string(
    "tfds_dir", None, "TFDS data directory (default: ~/tensorflow_datasets)."
)
flags.DEFINE_integer("epochs", _DEFAULTS.epochs, "Training epochs.")
flags.DEFINE_integer(
    "gate_epochs",
    _DEFAULTS.gate_epochs,
    "train: after --epochs, epochs in which the controllers alone learn, "
    "on the frozen modules (0: none; default: 2 with full_information, "
    "else 0).",
)
flags.DEFINE_float(
    "cost_weight",
    _DEFAULTS.cost_weight,
    "Weight of the normalised FLOP cost in the reward (>= 0).",
)
flags.DEFINE_float(
    "entropy_weight",
    _DEFAULTS.entropy_weight,
    "Entropy bonus of the controllers.",
)
flags.DEFINE_float(
    "learning_rate", _DEFAULTS.learning_rate, "Adam learning rate."
)
flags.DEFINE_integer("batch_size", _DEFAULTS.batch_size, "Batch size.")
flags.DEFINE_integer(
    "train_examples",
    _DEFAULTS.train_examples,
    "Use only the first N training images (0: all).",
)
flags.DEFINE_string(
    "estimator",
    _DEFAULTS.estimator,
    f"How controllers learn: one of {list(estimators.NAMED)} (default: "
    "full_information for high_low and cascade, else reinforce_value).",
)
flags.DEFINE_string(
    "gate_input",
    _DEFAULTS.gate_input,
    "high_low and cascade: what the controllers read: 'features' (the "
    "builder's default: the cheap network's features for high_low, the "
    "heads' logits for cascade) or 'confidence' (the head's "
    "probabilities and confidence statistics: the two-phase recipe's; "
    "default for high_low and cascade).",
)
flags.DEFINE_integer(
    "warmup_epochs",
    _DEFAULTS.warmup_epochs,
    "Epochs of random routing before controllers learn (default: 0 with "
    "full_information, which trains every module on every example, "
    "else 1).",
)
flags.DEFINE_integer(
    "cost_weight_ramp_epochs",
    _DEFAULTS.cost_weight_ramp_epochs,
    "Ramp cost_weight linearly from 0, in the first epoch "
    "after the warm-up, to --cost_weight, reached this "
    "many epochs later (0: constant).",
)
flags.DEFINE_bool(
    "baselines",
    _DEFAULTS.baselines,
    "Also train and measure the baselines (static networks, "
    "random routing, threshold exit).",
)
flags.DEFINE_integer(
    "baseline_epochs",
    _DEFAULTS.baseline_epochs,
    "Epochs for each baseline network (0: same as --epochs).",
)
flags.DEFINE_string(
    "output_dir",
    _DEFAULTS.output_dir,
    "Where report.json, tradeoff.png and model.keras go.",
)
flags.DEFINE_integer("seed", _DEFAULTS.seed, "Random seed.")
flags.DEFINE_integer(
    "verbose",
    _DEFAULTS.verbose,
    "Keras verbosity: 0 silent, 1 progress bar, 2 one line per epoch.",
)
flags.DEFINE_bool(
    "save_optimizer",
    _DEFAULTS.save_optimizer,
    "train: keep the optimizer state in model.keras (needed "
    "to resume training; --nosave_optimizer makes the file "
    "three times smaller, enough to predict and export).",
)
flags.DEFINE_bool(
    "tensorboard",
    _DEFAULTS.tensorboard,
    "train: write TensorBoard logs (loss, accuracy, cost, "
    "action rates, cost weight, controller confidence) to "
    "OUTPUT_DIR/logs.",
)
flags.DEFINE_float(
    "budget",
    _TUNE.budget,
    "A fraction of the full network's FLOPs (0: none). train: train "
    "to it (the cost weight becomes a Lagrange multiplier, starting at "
    "--cost_weight); tune: the most accurate model within it.",
)
flags.DEFINE_float(
    "max_accuracy_drop",
    _DEFAULTS.max_accuracy_drop,
    "train: land the trained model on the cheapest routing whose accuracy "
    "on the --val_examples held-out images is at most this much below its "
    "full network's (a fraction: 0.005 is half a point; 0: none); the "
    "report gives the test split's figure beside it.",
)
flags.DEFINE_float(
    "target_accuracy",
    _TUNE.target_accuracy,
    "tune: the cheapest model with at least this validation accuracy.",
)
flags.DEFINE_float(
    "flop_penalty",
    _TUNE.flop_penalty,
    "tune: maximise accuracy - this * FLOP fraction (the "
    "default objective, with 0.1).",
)
# The name of release 0.1 (`cost_weight` is each trial's training weight).
flags.DEFINE_alias("reward_cost_weight", "flop_penalty")
flags.DEFINE_string(
    "tuner", _TUNE.tuner, f"tune: one of {list(tune_job.TUNERS)}."
)
flags.DEFINE_integer("max_trials", _TUNE.max_trials, "tune: trials to run.")
flags.DEFINE_integer(
    "val_examples",
    _TUNE.val_examples,
    "tune: the last N training images, held out to score trials on.",
)
flags.DEFINE_float(
    "cost_weight_min",
    _TUNE.cost_weight_min,
    "tune: smallest cost_weight searched (log scale).",
)
flags.DEFINE_float(
    "cost_weight_max",
    _TUNE.cost_weight_max,
    "tune: largest cost_weight searched.",
)
flags.DEFINE_string(
    "estimators",
    _TUNE.estimators,
    "tune: comma-separated estimators to search over.",
)
flags.DEFINE_string("model", None, "export: the trained .keras file.")
flags.DEFINE_bool(
    "unsafe_load",
    False,
    "export, verify: load --model with Keras safe mode off, "
    "which runs code stored in the file (Lambda layers). Only "
    "for files you trust.",
)
flags.DEFINE_enum(
    "format", "saved_model", EXPORT_FORMATS, "export: what to write."
)
flags.DEFINE_string("output", None, "export, profile: the output path.")
flags.DEFINE_string(
    "latency_profile",
    None,
    "train: a latency profile JSON of this architecture (`profile` writes "
    "one): the controllers pay its milliseconds instead of FLOPs, and "
    "--budget is a fraction of the full latency.",
)
flags.DEFINE_enum(
    "runtime",
    _PROFILE.runtime,
    profile_job.RUNTIMES,
    "profile: where to time: tf_cpu (TensorFlow on the CPU, TF Serving's "
    "case) or litert (the LiteRT interpreter, one thread, a phone's case).",
)
flags.DEFINE_integer(
    "repeats",
    _PROFILE.repeats,
    "profile: timed rounds per node and per route (the median is kept).",
)
flags.DEFINE_integer(
    "export_batch_size",
    None,
    "export: fixed batch size (default: any for "
    "saved_model and onnx, 1 for litert; 0 for any).",
)
flags.DEFINE_enum(
    "quantize",
    "none",
    ("none", "float16", "int8"),
    "export --format=litert: post-training quantisation.",
)
flags.DEFINE_integer(
    "calibration_examples",
    500,
    "export --quantize=int8: training images of --dataset "
    "to calibrate activation ranges on.",
)
flags.DEFINE_string(
    "exported",
    None,
    "verify: the exported model (SavedModel directory, .tflite or .onnx).",
)
flags.DEFINE_integer(
    "n",
    10_000,
    "verify: number of test images (the first N of the test split).",
)
flags.DEFINE_string(
    "report", None, "verify: also write the report as JSON to this path."
)
flags.DEFINE_string(
    "data",
    None,
    "verify, export --quantize=int8: your own examples instead of "
    "--dataset's: a .npy file of inputs, or a .npz file holding `x` (and "
    "`y`, the labels: np.savez('data.npz', x=x, y=y)), scaled as in "
    "training.",
)


# What `python -m keras_d2nn --help` says of each command (one line each).
SUMMARIES = {
    "get_data": "installs or finds Fashion-MNIST and Graphviz (run it first)",
    "train": "trains a D2NN and its baselines; writes a report, plots, "
    "model.keras",
    "export": "exports a model as a SavedModel, LiteRT .tflite or ONNX file",
    "verify": "checks an export against its model on real test images",
    "tune": "searches cost_weight for a FLOP budget or accuracy target "
    "(keras-tuner)",
    "profile": "times an architecture on a runtime, for train "
    "--latency_profile",
}
# Flags every data-reading command shares.
DATA_FLAGS = ("dataset", "data_dir", "tfds_dir")
# Flags shared by `train` and `tune` whose defaults differ: the command's
# config has its own.
OWN_DEFAULTS = {
    "tune": ("train_examples", "output_dir", "dataset"),
    "train": ("val_examples", "budget"),
    "profile": ("batch_size", "output"),
}
# The flags each command reads (train and tune: their config's fields).
COMMAND_FLAGS = {
    "get_data": ("data_dir", "tfds_dir"),
    "train": tuple(f.name for f in dataclasses.fields(train_job.TrainConfig)),
    "export": (
        "model",
        "output",
        "format",
        "export_batch_size",
        "quantize",
        "calibration_examples",
        "unsafe_load",
        "data",
        *DATA_FLAGS,
    ),
    "verify": (
        "model",
        "exported",
        "n",
        "report",
        "unsafe_load",
        "data",
        *DATA_FLAGS,
    ),
    "tune": tuple(f.name for f in dataclasses.fields(tune_job.TuneConfig))
    + ("reward_cost_weight",),
    "profile": tuple(
        f.name for f in dataclasses.fields(profile_job.ProfileConfig)
    ),
}
# Help strings that read differently for one command.
_COMMAND_HELP = {
    ("get_data", "data_dir"): "Where to look for the four Fashion-MNIST "
    f"*-ubyte.gz files (default: ${pipelines.ENV_VAR} or "
    f"{pipelines.DEFAULT_DIR}, "
    f"where the Debian package {pipelines.DEBIAN_PACKAGE} puts them; it is "
    "installed only there).",
    ("tune", "train_examples"): "Train every trial on the first N training "
    "images (the last --val_examples are held out).",
    ("tune", "output_dir"): "Where the search state, the Pareto front, its "
    "plot, the best model and the summary go (a rerun resumes).",
    ("train", "budget"): "Train to this fraction of the full network's "
    "FLOPs (default: 0.3 for high_low and cascade, else 0; 0: no budget, "
    "--cost_weight stays): the cost weight becomes a "
    "Lagrange multiplier moved each step towards the budget, starting at "
    "--cost_weight, with no ramp; then the trained model is landed on the "
    "budget on the --val_examples held-out images.",
    ("train", "val_examples"): "With --budget: the last N training images, "
    "held out to land the trained model on the budget "
    "(D2NNModel.calibrate_budget); 0: no landing, the trained decisions "
    "stay.",
    ("tune", "budget"): "The most accurate model within this fraction of "
    "the full network's FLOPs.",
    ("profile", "batch_size"): "Examples per timed call: the batch size "
    "served (default: 64 on tf_cpu, 1 on litert).",
    ("profile", "output"): "The JSON file to write (its folder must exist).",
}
_LOGGING_HELP = (
    "TensorFlow's C++ log lines are hidden; set TF_CPP_MIN_LOG_LEVEL to see "
    "them (0: all, 1: no INFO, 2: no WARNING either, 3: no ERROR either), "
    "e.g. `TF_CPP_MIN_LOG_LEVEL=0 python -m keras_d2nn train`."
)
_HELP_ARGS = ("--help", "-help", "-h", "-?", "--helpshort", "-helpshort")
_WIDTH = 79


def _wrap(text, indent):
    return textwrap.fill(
        text,
        _WIDTH,
        initial_indent=indent,
        subsequent_indent=indent,
        break_long_words=False,
        break_on_hyphens=False,
    )


def tool_help():
    """What `python -m keras_d2nn --help` prints."""
    width = max(map(len, COMMANDS))
    lines = [
        f"usage: python -m keras_d2nn {{{','.join(COMMANDS)}}} [--flags]",
        "",
        "Dynamic Deep Neural Networks (D2NN) for Keras 3, on Fashion-MNIST.",
        "",
        "commands:",
        *(f"  {c:<{width}}  {SUMMARIES[c]}" for c in COMMANDS),
        "",
        _wrap(
            "`python -m keras_d2nn COMMAND --help` lists a command's "
            "flags; --helpfull lists every flag.",
            "",
        ),
        _wrap(_LOGGING_HELP, ""),
    ]
    return "\n".join(lines) + "\n"


def _own_help(command, name):
    """A flag's help without a prefix naming the commands it is for
    ("tune: ", "export, verify: "), which a command's help need not say."""
    if (command, name) in _COMMAND_HELP:
        return _COMMAND_HELP[command, name]
    text = FLAGS[name].help
    if text.startswith("<"):  # absl starts an enum's help with its values
        text = text.partition(">: ")[2]
    prefix, colon, rest = text.partition(": ")
    if colon and set(prefix.replace(",", " ").split()) <= set(COMMANDS):
        return rest[:1].upper() + rest[1:]
    return text


def _flag_help(command, name):
    flag = FLAGS[name]
    default = flag.default
    if name in OWN_DEFAULTS.get(command, ()):
        config = {
            "tune": tune_job.TuneConfig,
            "train": train_job.TrainConfig,
            "profile": profile_job.ProfileConfig,
        }
        default = getattr(config[command](), name)
    if flag.boolean:
        shown = f"--[no]{name}"
        default = "true" if default else "false"
    elif getattr(flag.parser, "enum_values", None):
        shown = f"--{name}={'|'.join(flag.parser.enum_values)}"
    else:
        shown = f"--{name}={flag.flag_type().upper()}"
    if default is not None:
        shown += f" (default: {default})"
    return f"  {shown}\n{_wrap(_own_help(command, name), '      ')}"


def command_help(command):
    """What `python -m keras_d2nn COMMAND --help` prints."""
    own = [n for n in COMMAND_FLAGS[command] if n not in DATA_FLAGS]
    shared = [n for n in DATA_FLAGS if n in COMMAND_FLAGS[command]]
    lines = [
        f"usage: python -m keras_d2nn {command} [--flags]",
        "",
        _wrap(f"{command}: {SUMMARIES[command]}.", ""),
        "",
    ]
    if own:
        lines += [
            f"{command} flags:",
            *(_flag_help(command, n) for n in own),
            "",
        ]
    lines += [
        "data flags (shared by the commands that read data):",
        *(_flag_help(command, n) for n in shared),
        "",
        "--helpfull lists every flag.",
        _wrap(_LOGGING_HELP, ""),
    ]
    return "\n".join(lines) + "\n"


def _help(args):
    """Prints the help `args` (the command line after the program) ask
    for, or returns False when they do not ask for help."""
    words = [a for a in args if not a.startswith("-")]
    asked = any(a in _HELP_ARGS for a in args) or words[:1] == ["help"]
    if not asked:
        return False
    words = [w for w in words if w != "help"]
    if not words:
        sys.stdout.write(tool_help())
    elif words[0] in COMMANDS:
        sys.stdout.write(command_help(words[0]))
    else:
        _fail(
            f"no command {words[0]!r}; expected one of {list(COMMANDS)}. "
            "`python -m keras_d2nn --help` lists them."
        )
    return True


def flag_wording(message):
    """The library's argument dialect (`` `name` should be ... Received:
    name=... ``) in command-line words: a name that is a flag becomes
    `--name`.

    Example: `flag_wording("`epochs` should be >= 1. Received: epochs=0")`
    gives "--epochs should be >= 1. Received: --epochs=0".
    """

    def as_flag(match):
        name = match.group(1)
        return f"--{name}" if name in FLAGS else match.group(0)

    message = re.sub(r"`(\w+)`", as_flag, message)
    head, received, values = message.partition("Received: ")
    # The `name=value` pairs after "Received:" name flags too.
    return head + received + re.sub(r"(?<![\w-])(\w+)(?==)", as_flag, values)


def _check_writable(path, flag, folder_ok=False):
    """A one-line failure unless `path` can be written (before the work)."""
    try:
        storage.check_file_writable(path, flag, folder_ok)
    except storage.OutputNotWritable as error:
        _fail(str(error))


def _os_error_line(error):
    """One line for a file-system error: what failed, and where."""
    where = f" on {error.filename}" if error.filename else ""
    return f"file-system error{where}: {error.strerror or error}"


def _fail(message):
    print(f"error: {flag_wording(message)}", file=sys.stderr)
    sys.exit(2)


GRAPHVIZ_PACKAGE = "graphviz"
APT_LISTS = "/var/lib/apt/lists"  # empty on a fresh machine
GRAPHVIZ_HINT = (
    "Graphviz's `dot` is not installed: keras_d2nn.plot_graph and the train "
    "command's graph.png need it (everything else works without). Install "
    "it: as root on Debian/Ubuntu `apt-get install -y graphviz` (or run "
    "`python -m keras_d2nn get_data` as root), on macOS `brew install "
    "graphviz`, elsewhere see https://graphviz.org/download/."
)


def _apt_get_install(packages):
    """Installs Debian `packages` with one apt-get call, updating the
    package lists first where there are none (a fresh machine) and again
    when the install fails on stale ones."""
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "-q", *packages]
    update = ["apt-get", "update", "-q"]
    if not any(
        "_Packages" in name
        for name in (os.listdir(APT_LISTS) if os.path.isdir(APT_LISTS) else ())
    ):
        print("No apt package lists yet: running apt-get update -q", flush=True)
        subprocess.run(update, env=env)
    print(f"Running: {' '.join(install)}", flush=True)
    if subprocess.run(install, env=env).returncode != 0:
        print(
            "apt-get install failed: running apt-get update -q and trying "
            "again",
            flush=True,
        )
        subprocess.run(update, env=env)
        subprocess.run(install, env=env)


def get_data():
    """Prepares what the commands need: Fashion-MNIST (essential) and
    Graphviz's `dot` (for graph drawings), installing their Debian packages
    with one apt-get call when run as root where apt-get exists."""
    directory = pipelines.fashion_mnist_dir(FLAGS.data_dir)

    def found():
        try:
            pipelines.load_fashion_mnist("test", FLAGS.data_dir)
            return True
        except FileNotFoundError:
            return False

    have_data = found()
    dot = shutil.which("dot")
    can_install = os.geteuid() == 0 and bool(shutil.which("apt-get"))
    if have_data:
        print(f"Fashion-MNIST found in {directory}")
    if dot:
        print(f"Graphviz found: {dot}")
    if not have_data and (
        os.path.abspath(directory) != os.path.abspath(pipelines.DEFAULT_DIR)
    ):
        # The Debian package would put the files elsewhere.
        if not dot:
            print(f"warning: {GRAPHVIZ_HINT}", file=sys.stderr)
        _fail(
            f"Fashion-MNIST is not in {directory}, and the Debian package "
            f"{pipelines.DEBIAN_PACKAGE} installs it only in "
            f"{pipelines.DEFAULT_DIR}. "
            "Put the four *-ubyte.gz files of Fashion-MNIST in "
            f"{directory}, or leave out --data_dir (and {pipelines.ENV_VAR}) "
            "to use the Debian package."
        )
    missing = ([] if have_data else [pipelines.DEBIAN_PACKAGE]) + (
        [] if dot else [GRAPHVIZ_PACKAGE]
    )
    if missing and can_install:
        print(
            f"Installing the Debian package{'s' * (len(missing) > 1)} "
            f"{' and '.join(missing)} with apt-get ...",
            flush=True,
        )
        _apt_get_install(missing)
        if not have_data:
            have_data = found()
            if have_data:
                print(f"Fashion-MNIST installed in {directory}")
        if not dot:
            dot = shutil.which("dot")
            if dot:
                print(f"Graphviz installed: {dot}")
    if not have_data:
        if can_install:
            _fail(
                f"apt-get could not install {pipelines.DEBIAN_PACKAGE} (see "
                "its output above). Either fix that and run get_data "
                "again, or put the four *-ubyte.gz files of Fashion-MNIST "
                "in a directory and pass --data_dir=DIR (or set "
                f"{pipelines.ENV_VAR}=DIR)."
            )
        if not dot:
            print(f"warning: {GRAPHVIZ_HINT}", file=sys.stderr)
        _fail(
            f"Fashion-MNIST is not in {directory} and could not be installed "
            "here (that needs root and apt-get). Either run, as root, "
            f"`apt-get install -y {pipelines.DEBIAN_PACKAGE}`, or put the four "
            "*-ubyte.gz files of Fashion-MNIST in a directory and pass "
            f"--data_dir=DIR (or set {pipelines.ENV_VAR}=DIR)."
        )
    if not dot:
        # Optional (graph drawings only): a warning, not a failure.
        if can_install:
            print(
                f"warning: apt-get could not install {GRAPHVIZ_PACKAGE} "
                "(see its output above), so graph drawings will be "
                "skipped: keras_d2nn.plot_graph and the train command's "
                "graph.png need Graphviz's `dot` (everything else works "
                "without). Install it later as root: `apt-get install -y "
                f"{GRAPHVIZ_PACKAGE}`.",
                file=sys.stderr,
            )
        else:
            print(f"warning: {GRAPHVIZ_HINT}", file=sys.stderr)
    # The attention D2NN's data set, built from the same files (about a
    # minute, once): `train --arch=attention` and
    # `tfds.load("fashion_mnist_canvas")` need it.
    print("Preparing fashion_mnist_canvas (112x112) from them ...", flush=True)
    try:
        pipelines.prepared_builder(
            "fashion_mnist_canvas", FLAGS.tfds_dir, FLAGS.data_dir
        )
    except (OSError, ValueError) as error:
        _fail(f"fashion_mnist_canvas could not be prepared: {error}")
    print("Ready: `python -m keras_d2nn train` (or --help) is next.")


def _config_from_flags(cls, own_defaults=None, data=True):
    """A config dataclass from the flags, checked, with its data prepared
    when `data` (or a one-line failure). Flags named in `own_defaults`
    keep the config's default unless given on the command line."""
    defaults = cls()
    config = cls(
        **{
            field.name: (
                getattr(defaults, field.name)
                if field.name in (own_defaults or ())
                and not FLAGS[field.name].present
                else getattr(FLAGS, field.name)
            )
            for field in dataclasses.fields(cls)
        }
    )
    try:
        config.check()
        if data:
            # train's dataset is by architecture when not given.
            settings = (
                config.resolved()
                if isinstance(config, train_job.TrainConfig)
                else config
            )
            pipelines.prepared_builder(
                settings.dataset, config.tfds_dir, config.data_dir
            )
    except (ValueError, FileNotFoundError) as error:
        _fail(str(error))
    return config


def train():
    """Trains, evaluates and measures baselines (see `train_job`)."""
    config = _config_from_flags(
        train_job.TrainConfig, own_defaults=OWN_DEFAULTS["train"]
    )
    if config.latency_profile is not None:
        # Another graph's profile, or not a profile: said before training.
        try:
            plan = train_job.builder(config)().plan
            train_job.load_latency_profile(config.latency_profile, plan)
        except ValueError as error:
            _fail(str(error))
    try:
        train_job.run(config)
    except (
        train_job.TrainingFailed,
        storage.OutputNotWritable,
        BackupUnusable,
    ) as error:
        _fail(str(error))
    except OSError as error:  # e.g. the disk filled while saving
        _fail(
            f"{_os_error_line(error)}; this run's outputs were not saved "
            f"and {config.output_dir} holds the previous run's, if any. "
            "Rerun the same command to resume from the last whole epoch."
        )


def tune():
    """Searches cost_weight (see `tune_job`)."""
    config = _config_from_flags(
        tune_job.TuneConfig, own_defaults=OWN_DEFAULTS["tune"]
    )
    try:
        tune_job.run(config)
    except tune_job.SearchStateDamaged as error:
        _fail(str(error))
    except OSError as error:
        _fail(
            f"{_os_error_line(error)}; rerun the same command to resume "
            "the search."
        )


def profile():
    """Times an architecture on a runtime (see `profile_job`)."""
    config = _config_from_flags(
        profile_job.ProfileConfig,
        own_defaults=OWN_DEFAULTS["profile"],
        data=False,
    )
    _check_writable(config.output, "--output")
    try:
        profile_job.run(config)
    except OSError as error:
        _fail(f"--output: {_os_error_line(error)}.")


def _load_d2nn():
    """--model, loaded in Keras safe mode, or a one-line failure."""
    import keras

    if os.path.isdir(FLAGS.model):
        _fail(
            f"--model: {FLAGS.model!r} is a folder; expected a .keras file "
            "written by `model.save` or by the train command."
        )
    if os.path.isfile(FLAGS.model) and os.path.getsize(FLAGS.model) == 0:
        _fail(
            f"--model: {FLAGS.model!r} is empty (0 bytes): a save that was "
            "cut off. Train or save the model again."
        )
    if not os.path.isfile(FLAGS.model):
        _fail(
            f"--model: no file {FLAGS.model!r}; expected a .keras file "
            "written by `model.save` or by the train command."
        )
    # Keras reports a file that is not a zip archive as "File not found".
    if not zipfile.is_zipfile(FLAGS.model):
        _fail(
            f"--model: {FLAGS.model!r} is not a .keras file (a zip "
            "archive): truncated, corrupt or another format."
        )
    try:
        model = keras.models.load_model(
            FLAGS.model, safe_mode=not FLAGS.unsafe_load
        )
    except Exception as error:  # Keras raises several types on bad files
        if "safe_mode" in str(error):
            _fail(
                f"--model: {FLAGS.model!r} carries code (a Lambda layer "
                "or another Python function), which Keras safe mode "
                "refuses to load because loading would run it. If you "
                "trust the file, add --unsafe_load."
            )
        _fail(
            f"--model: could not load {FLAGS.model!r} as a Keras model "
            f"({type(error).__name__}: {error})."
        )
    if not hasattr(model, "plan"):
        _fail(
            f"--model: {FLAGS.model!r} is a Keras model but not a D2NN "
            "(keras_d2nn.D2NNModel)."
        )
    return model


def _split_from_flags(model, split, take, why=""):
    """`(inputs, labels or None)`: --data's, else those of --dataset's
    `split` (--data_dir, --tfds_dir; without --dataset, the dataset of
    `model`'s image shape), or a one-line failure starting with `why`."""
    from keras_d2nn.data import user_arrays

    if FLAGS.data:
        if FLAGS.dataset:
            _fail("--data and --dataset: pass one of them, not both.")
        try:
            return user_arrays.load(FLAGS.data, take)
        except ValueError as error:
            _fail(f"{why}{error}")
    try:
        return pipelines.load_arrays(
            FLAGS.dataset
            or pipelines.dataset_for_shape(
                model.plan.specs[model.input_names[0]].shape[1:]
            ),
            split,
            data_dir=FLAGS.tfds_dir,
            manual_dir=FLAGS.data_dir,
            take=take,
        )
    except (ValueError, FileNotFoundError) as error:
        _fail(f"{why}{error}")


def _calibration_images(model):
    images, _ = _split_from_flags(
        model,
        "train",
        FLAGS.calibration_examples,
        "int8 calibration needs the training split of --dataset, or --data: ",
    )
    return images


def export():
    """Loads --model (Keras safe mode) and exports it (see `export`)."""
    from keras_d2nn.export import serving

    if not FLAGS.model or not FLAGS.output:
        _fail("export needs --model=PATH.keras and --output=PATH.")
    quantization = None if FLAGS.quantize == "none" else FLAGS.quantize
    if quantization and FLAGS.format != "litert":
        _fail(
            f"--quantize={FLAGS.quantize} applies to --format=litert "
            f"only; received --format={FLAGS.format}."
        )
    if FLAGS.calibration_examples < 1:
        _fail(
            "--calibration_examples should be >= 1. Received: "
            f"--calibration_examples={FLAGS.calibration_examples}"
        )
    # A SavedModel is a folder.
    _check_writable(FLAGS.output, "--output", folder_ok=True)
    model = _load_d2nn()
    batch = FLAGS.export_batch_size
    if batch is not None and batch < 0:
        _fail(f"--export_batch_size should be >= 0 (0: any); received {batch}.")
    batch = None if batch == 0 else batch
    try:
        if FLAGS.format == "saved_model":
            path = serving.export_saved_model(model, FLAGS.output, batch)
        elif FLAGS.format == "onnx":
            path = serving.export_onnx(model, FLAGS.output, batch)
        else:
            path = serving.export_litert(
                model,
                FLAGS.output,
                1 if FLAGS.export_batch_size is None else batch,
                quantization=quantization,
                representative_images=_calibration_images(model)
                if quantization == "int8"
                else None,
            )
    except ValueError as error:
        _fail(str(error))
    except OSError as error:
        _fail(f"{_os_error_line(error)}; {FLAGS.output} is unchanged.")
    print(f"wrote {path}")


def verify():
    """Compares --model with its export --exported on real test images."""
    import json

    from keras_d2nn.export import runtime
    from keras_d2nn.export import verify
    from keras_d2nn.models import value_range

    if not FLAGS.model or not FLAGS.exported:
        _fail("verify needs --model=PATH.keras and --exported=PATH.")
    if FLAGS.n < 1:
        _fail(f"--n should be >= 1. Received: --n={FLAGS.n}")
    if FLAGS.report:
        _check_writable(FLAGS.report, "--report")
    try:
        exported = runtime.load_exported(FLAGS.exported)
    except (ValueError, FileNotFoundError) as error:
        _fail(f"--exported: {error}")
    model = _load_d2nn()
    images, labels = _split_from_flags(model, "test", FLAGS.n)
    try:
        # Data outside the input's declared range would only be flagged
        # alike on both sides: a mistake in the data, said as such.
        node = model.plan.nodes[model.input_names[0]]
        value_range.check_in_range(
            node.name, images, node.value_range, "verify"
        )
        report = verify.verify(model, exported, images, labels)
    except ValueError as error:
        _fail(str(error))
    print(verify.format_report(report))
    if FLAGS.report:
        try:
            storage.write_text_atomically(
                FLAGS.report, json.dumps(report, indent=2)
            )
        except OSError as error:
            _fail(f"--report: {_os_error_line(error)}.")
        print(f"wrote {FLAGS.report}")
    if report["passed"] is False:
        sys.exit(1)


def parse_flags(argv):
    """absl's flag parsing, with a typo answered as every other bad
    invocation (one `error:` line, exit status 2) rather than absl's
    "FATAL Flags parsing error" and exit status 1."""
    try:
        return FLAGS(argv)
    except flags.Error as error:
        command = next((a for a in argv[1:] if not a.startswith("-")), "")
        where = " ".join(
            ["python -m keras_d2nn"]
            + ([command] if command in COMMANDS else [])
            + ["--help"]
        )
        text = str(error).rstrip()
        end = "" if text.endswith(("?", ".")) else "."
        _fail(f"{text}{end} `{where}` lists the flags.")


def main(argv):
    if len(argv) < 2 or argv[1] not in COMMANDS:
        given = argv[1] if len(argv) > 1 else "nothing"
        _fail(
            f"expected a command, one of {list(COMMANDS)}; received "
            f"{given}. Usage: python -m keras_d2nn "
            f"{'|'.join(COMMANDS)} [--flags]; "
            "--help lists the commands."
        )
    if len(argv) > 2:
        _fail(f"unexpected arguments {argv[2:]}; flags look like --epochs=3.")
    # absl would print every INFO line of TFDS; keep the output for people.
    logging.set_verbosity(logging.WARNING)
    {
        "get_data": get_data,
        "train": train,
        "export": export,
        "verify": verify,
        "tune": tune,
        "profile": profile,
    }[argv[1]]()


def run():
    """The `python -m keras_d2nn` and `keras-d2nn` entry point."""
    # TensorFlow is imported by now, and quiet: `tf_logging` (imported
    # first by the package) set TF_CPP_MIN_LOG_LEVEL when this process
    # started as the command line.
    # absl's own --help prints module flags and exits 1; ours lists the
    # commands, or a command's flags, and exits 0.
    if _help(sys.argv[1:]):
        sys.exit(0)
    app.run(main, flags_parser=parse_flags)
