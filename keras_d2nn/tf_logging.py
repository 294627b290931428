"""TensorFlow's C++ log lines: fewer for a library, none for the CLI.

Imported first by the package, before TensorFlow. A level the user chose
with TF_CPP_MIN_LOG_LEVEL (0 all, 1 no INFO, 2 no WARNING either, 3 no ERROR
either) is always respected (the CLI shows ERROR and FATAL lines written while
TensorFlow loads whatever the level: they say why loading failed).

- `import keras_d2nn` in a script: INFO and WARNING lines are hidden (level
  2). They (CUDA probing; "Skipping loop optimization" for every tf.cond
  that routing adds) drown Keras's progress output. ERROR lines still show:
  a library does not hide errors from its users' scripts. (Nor does it
  touch the lines TensorFlow writes while loading, below.)
- The command line (`python -m keras_d2nn`, `keras-d2nn`): level 3. On top
  of that, TensorFlow 2.21 writes lines while it loads, before its logging
  reads the level (absl's "All log messages before absl::InitializeLog() is
  called are written to STDERR", the oneDNN notice and "Could not find cuda
  drivers", twice): the CLI imports TensorFlow with stderr (file
  descriptor 2) going through a small forwarding process
  (`filtered_stderr`), which passes each line on as it arrives unless it is
  one of those lines below the level: ERROR and FATAL lines, and everything
  that is not a C++ log line, always pass. A separate process, because a
  failure while TensorFlow loads (a C++ "Check failed", then abort()) kills
  this process at once, from code that holds the GIL: a thread here would
  lose the line that says why.

This only takes effect if TensorFlow is not imported yet.
"""

import contextlib
import os
import re
import signal
import subprocess
import sys

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


# What `filtered_stderr` always lets through: ERROR and FATAL lines.
_ALWAYS_SHOWN = _SEVERITY["E"]
# How long to wait for the forwarder to pass on the last lines (it ends as
# soon as fd 2 no longer leads to it, unless a process started meanwhile
# holds it).
_FORWARDER_WAIT = 5


def _forward(level, source=0, sink=1):
    """The forwarding process: copies `source` to `sink` line by line as
    lines arrive, without the C++ log lines below `level`."""
    # Ctrl-C reaches the whole process group: this keeps forwarding until
    # the importer, interrupted too, no longer writes to it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    pending = b""
    while True:
        chunk = os.read(source, 65536)
        lines, newline, pending = (pending + chunk).rpartition(b"\n")
        if not chunk:  # the end: the last line, if it has no newline
            lines, newline, pending = lines + newline + pending, b"", b""
        text = filter_log_lines(
            (lines + newline).decode("utf-8", errors="surrogateescape"), level
        ).encode("utf-8", errors="surrogateescape")
        while text and sink is not None:
            try:
                text = text[os.write(sink, text) :]
            except OSError:  # stderr is gone: keep draining the pipe
                sink = None
        if not chunk:
            return


def _start_forwarder(level):
    """Points fd 2 at a new forwarding process; returns (the previous fd 2,
    duplicated; the process). Raises OSError where that is not possible."""
    if not (sys.executable and os.path.isfile(__file__)):
        raise OSError("no interpreter or module file for the forwarder")
    saved = os.dup(2)
    try:
        read_end, write_end = os.pipe()
        try:
            # -I -S: only the standard library, whatever the environment.
            forwarder = subprocess.Popen(
                [
                    sys.executable,
                    "-I",
                    "-S",
                    __file__,
                    str(min(level, _ALWAYS_SHOWN)),
                ],
                stdin=read_end,
                stdout=saved,
                stderr=saved,
            )
        except BaseException:
            os.close(write_end)
            raise
        finally:
            os.close(read_end)
        try:
            os.dup2(write_end, 2)
        except BaseException:
            os.close(write_end)  # the forwarder sees the end and stops
            forwarder.wait()
            raise
        os.close(write_end)
    except BaseException:
        os.close(saved)
        raise
    return saved, forwarder


def _flush_stderr():
    try:
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):  # closed, or None
        pass


@contextlib.contextmanager
def filtered_stderr(level):
    """Within the block, lines written to stderr (file descriptor 2, so
    C++ code's too) reach the real stderr as they are written, except C++
    log lines below `level` (ERROR and FATAL lines always pass); they do
    even if the process dies in the block. Where fd 2 cannot be redirected
    (no fd 2, no pipes or processes), the block runs unfiltered."""
    _flush_stderr()
    try:
        saved, forwarder = _start_forwarder(level)
    except (OSError, ValueError, subprocess.SubprocessError):
        saved = forwarder = None
    if forwarder is None:
        yield
        return
    try:
        yield
    finally:
        _flush_stderr()
        os.dup2(saved, 2)  # the pipe's last write end: the forwarder ends
        os.close(saved)
        try:
            forwarder.wait(timeout=_FORWARDER_WAIT)
        except subprocess.TimeoutExpired:
            pass  # it ends when that other process does


def _import_tensorflow_filtered(level):
    """Imports TensorFlow with the lines it writes to stderr while loading
    filtered by `level` (see `filtered_stderr`)."""
    with filtered_stderr(level):
        import tensorflow  # noqa: F401


def configure():
    cli = is_cli()
    os.environ.setdefault(ENV_VAR, CLI_LEVEL if cli else LIBRARY_LEVEL)
    if cli and "tensorflow" not in sys.modules:
        _import_tensorflow_filtered(min_level())


if __name__ == "__main__":  # the forwarding process of `filtered_stderr`
    _forward(int(sys.argv[1]))
else:
    configure()
