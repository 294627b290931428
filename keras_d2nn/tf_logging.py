"""TensorFlow's C++ log lines: fewer for a library, none for the CLI.

Imported first by the package, before TensorFlow. A level the user chose
with TF_CPP_MIN_LOG_LEVEL (0 all, 1 no INFO, 2 no WARNING either, 3 no ERROR
either) is always respected.

- `import keras_d2nn` in a script: INFO and WARNING lines are hidden (level
  2). They (CUDA probing; "Skipping loop optimization" for every tf.cond
  that routing adds) drown Keras's progress output. ERROR lines still show:
  a library does not hide errors from its users' scripts. (Nor does it
  touch the lines TensorFlow writes while loading, below.)
- The command line (`python -m keras_d2nn`, `keras-d2nn`): level 3. On top
  of that, TensorFlow 2.21 writes lines while it loads, before its logging
  reads the level (absl's "All log messages before absl::InitializeLog() is
  called are written to STDERR", the oneDNN notice and "Could not find cuda
  drivers", twice): the CLI imports TensorFlow with stderr captured and
  passes on only what the level lets through, everything else unchanged.

This only takes effect if TensorFlow is not imported yet.
"""

import os
import re
import sys
import tempfile

ENV_VAR = "TF_CPP_MIN_LOG_LEVEL"
LIBRARY_LEVEL = "2"
CLI_LEVEL = "3"
# `python -m MODULE` and the console script (setup.py) that run the CLI.
CLI_MODULES = ("keras_d2nn", "keras_d2nn.__main__")
CLI_SCRIPTS = ("keras-d2nn", "keras-d2nn-script")
# absl's C++ log line: severity, MMDD hh:mm:ss.us (before absl is
# initialised: 0000 00:00:<seconds since 1970>), thread, file:line].
_LOG_LINE = re.compile(r"([IWEF])\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [^ \]]+:\d+\] ")
_SEVERITY = {"I": 0, "W": 1, "E": 2, "F": 3}
_BEFORE_INIT = "WARNING: All log messages before absl::InitializeLog()"
# Python options that take the next argument as their value.
_OPTIONS_WITH_VALUE = ("-W", "-X", "--check-hash-based-pycs")


def is_cli(orig_argv=None):
    """Whether this interpreter was started to run the keras_d2nn CLI."""
    args = iter((sys.orig_argv if orig_argv is None else orig_argv)[1:])
    for arg in args:
        if arg in _OPTIONS_WITH_VALUE:
            next(args, None)
        elif arg == "-m":
            return next(args, None) in CLI_MODULES
        elif arg.startswith("-m"):
            return arg[2:] in CLI_MODULES
        elif arg == "-" or arg.startswith("-c"):
            return False
        elif not arg.startswith("-"):  # a script
            name = os.path.splitext(os.path.basename(arg))[0]
            return name in CLI_SCRIPTS
    return False


def min_level():
    """The C++ log level in effect (TensorFlow reads a bad value as 0)."""
    try:
        return int(os.environ.get(ENV_VAR, "0"))
    except ValueError:
        return 0


def filter_log_lines(text, level):
    """`text` without the absl C++ log lines below `level`."""
    kept = []
    for line in text.splitlines(keepends=True):
        match = _LOG_LINE.match(line)
        if match and _SEVERITY[match.group(1)] < level:
            continue
        if line.startswith(_BEFORE_INIT) and level >= 1:
            continue
        kept.append(line)
    return "".join(kept)


def _import_tensorflow_filtered(level):
    """Imports TensorFlow with the lines it writes to stderr (file
    descriptor 2) while loading filtered by `level`."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        import tensorflow  # noqa: F401  (no stderr to capture)
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            text = capture.read().decode("utf-8", errors="replace")
            sys.stderr.write(filter_log_lines(text, level))
            sys.stderr.flush()


def configure():
    cli = is_cli()
    os.environ.setdefault(ENV_VAR, CLI_LEVEL if cli else LIBRARY_LEVEL)
    if cli and "tensorflow" not in sys.modules:
        _import_tensorflow_filtered(min_level())

configure()
