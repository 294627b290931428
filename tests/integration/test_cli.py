"""The command line, run as users run it (in a subprocess)."""

import json
import os
import pathlib
import re
import signal
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_d2nn.data import pipelines
from keras_d2nn.testing import LOSS


def run_cli(*args, env=None):
    """Runs the command line as a person types it: with the environment
    of this process (or `env`) minus the TF_CPP_MIN_LOG_LEVEL that
    conftest.py sets, which a person has not."""
    env = dict(os.environ if env is None else env)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    return subprocess.run(
        [sys.executable, "-m", "keras_d2nn", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )


# What TensorFlow's C++ logging prints, which the CLI hides.
TF_NOISE = re.compile(
    r"cuInit|oneDNN|cuda|absl::InitializeLog|"
    r"^[IWE]\d{4} \d\d:\d\d:\d+\.\d+ ",
    re.M,
)


# Over a minute of training: slow (runs on CI, not in a plain pytest).
@pytest.mark.slow
def test_train_writes_report_plot_and_model(tfds_dir, tmp_path):
    result = run_cli(
        "train",
        "--epochs=1",
        "--warmup_epochs=0",
        "--cost_weight_ramp_epochs=0",
        "--train_examples=512",
        "--baseline_epochs=1",
        f"--tfds_dir={tfds_dir}",
        f"--output_dir={tmp_path}",
        "--verbose=0",
    )
    assert result.returncode == 0, result.stderr
    # Quiet: none of TensorFlow's C++ log lines (cuInit comes with the
    # first device use, after the import).
    assert not TF_NOISE.search(result.stderr), result.stderr
    assert "test accuracy:" in result.stdout
    assert "controller gate: stop" in result.stdout
    report = json.loads((tmp_path / "report.json").read_text())
    for key in (
        "arch",
        "test_accuracy",
        "mean_cost_fraction",
        "mean_flops",
        "full_flops",
        "action_rates",
        "baselines",
    ):
        assert key in report
    assert 0.0 < report["mean_cost_fraction"] <= 1.0
    rates = report["action_rates"]["gate"]
    assert rates["stop"] + rates["high"] == pytest.approx(1.0)
    kinds = {b["kind"] for b in report["baselines"]}
    assert kinds == {"static", "random", "threshold"}
    # The D2NN against the threshold exit at its own FLOPs, on the full
    # static network and on its own modules: both measured.
    versus_threshold = report["versus_threshold"]
    assert set(versus_threshold) == {"own_modules", "static_network"}
    for versus in versus_threshold.values():
        assert 0.0 <= versus["threshold_accuracy"] <= 1.0
        assert 0.0 < versus["threshold"] <= 1.0
        assert versus["difference_points"] == pytest.approx(
            100 * (report["test_accuracy"] - versus["threshold_accuracy"])
        )
        assert abs(versus["threshold_mean_flops"] - report["mean_flops"]) < (
            0.01 * report["full_flops"]
        )
    assert "threshold exit at the same FLOPs on the full static" in (
        result.stdout
    )
    assert "on the D2NN's own modules (the routing alone)" in result.stdout
    for baseline in report["baselines"]:
        assert 0.0 <= baseline["test_accuracy"] <= 1.0
        assert 0.0 < baseline["mean_flops"] <= report["full_flops"]
    for picture in ("tradeoff.png", "routes.png", "graph.png"):
        assert (tmp_path / picture).read_bytes().startswith(b"\x89PNG")
    # The routing report: per route, what it costs and how it does.
    routing = report["routing"]
    assert routing["accuracy"] == pytest.approx(report["test_accuracy"])
    assert {r["route"] for r in routing["routes"]} <= {"gate=stop", "gate=high"}
    assert sum(r["share"] for r in routing["routes"]) == pytest.approx(1.0)
    assert set(routing["controllers"]["gate"]["by_class"]) == set(
        pipelines.DATASETS["fashion_mnist"]["class_names"]
    )
    assert "true class" in result.stdout
    assert list((tmp_path / "logs" / "train").iterdir())
    model = keras.models.load_model(tmp_path / "model.keras")
    assert model.full_flops == report["full_flops"]
    # The trained model exports from the command line, and each export
    # agrees with it on real test images.
    for fmt, output, extra in (
        ("saved_model", tmp_path / "served", ()),
        ("onnx", tmp_path / "model.onnx", ()),
        (
            "litert",
            tmp_path / "int8.tflite",
            ("--quantize=int8", "--calibration_examples=64"),
        ),
    ):
        result = run_cli(
            "export",
            f"--model={tmp_path / 'model.keras'}",
            f"--format={fmt}",
            f"--output={output}",
            f"--tfds_dir={tfds_dir}",
            *extra,
        )
        assert result.returncode == 0, result.stderr
        assert output.exists()
        if fmt != "onnx" and not extra:
            continue  # verified in export/test_verify.py; the CLI once each
        verified = tmp_path / f"verify_{output.name}.json"
        result = run_cli(
            "verify",
            f"--model={tmp_path / 'model.keras'}",
            f"--exported={output}",
            "--n=300",
            f"--tfds_dir={tfds_dir}",
            f"--report={verified}",
        )
        assert result.returncode == 0, result.stderr
        check = json.loads(verified.read_text())
        assert check["n"] == 300
        assert check["passed"] is (None if extra else True), result.stdout
        assert check["decision_agreement"]["gate"] >= (0.9 if extra else 1)
        assert extra or "PASSED: agrees on every example" in result.stdout


# Over a minute of training: slow (runs on CI, not in a plain pytest).
@pytest.mark.slow
def test_train_without_optimizer_state_keeps_the_trained_weights(
    tfds_dir, tmp_path
):
    result = run_cli(
        "train",
        "--epochs=1",
        "--warmup_epochs=0",
        "--cost_weight_ramp_epochs=0",
        "--train_examples=512",
        "--nobaselines",
        "--nosave_optimizer",
        f"--tfds_dir={tfds_dir}",
        f"--output_dir={tmp_path}",
        "--verbose=0",
    )
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    model = keras.models.load_model(tmp_path / "model.keras")
    assert getattr(model, "optimizer", None) is None
    x, y = pipelines.load_arrays("fashion_mnist", "test", data_dir=tfds_dir)
    accuracy = float(np.mean(np.argmax(model.predict(x, verbose=0), -1) == y))
    assert accuracy == pytest.approx(report["test_accuracy"], abs=1e-6)


# Over half a minute of training: slow (runs on CI, not in a plain
# pytest).
@pytest.mark.slow
def test_train_budget_flag_reaches_the_job(
    cli_main, monkeypatch, fake_tfds_dir
):
    from keras_d2nn import cli
    from keras_d2nn.experiments import train_job

    tfds_dir = fake_tfds_dir

    configs = []
    monkeypatch.setattr(train_job, "run", configs.append)
    cli_main("train", "--budget=0.2", f"--tfds_dir={tfds_dir}")
    cli_main("train", "--budget=0", f"--tfds_dir={tfds_dir}")
    cli_main("train", f"--tfds_dir={tfds_dir}")
    cli_main("train", "--arch=chain", f"--tfds_dir={tfds_dir}")
    cli_main("train", "--arch=attention", f"--tfds_dir={tfds_dir}")
    budget, none, default, chain, attention = configs
    assert budget.budget == 0.2 and budget.target_cost == 0.2
    assert none.budget == 0.0 and none.target_cost is None
    # Not given: the architecture's (0.3 for high-low, 0.5 for the chain,
    # none for attention), not tune's default of the shared flag.
    assert default.budget is None and default.target_cost == 0.3
    assert chain.target_cost == 0.5
    assert attention.target_cost is None
    # One flag, read by train and tune, each with its own help.
    assert "Lagrange multiplier" in cli._own_help("train", "budget")
    assert "most accurate model" in cli._own_help("tune", "budget")


def test_a_typo_gets_one_line_not_a_traceback():
    result = run_cli("trian")
    assert result.returncode == 2
    assert "received trian" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.fixture
def cli_main():
    """Runs `cli.main` in this process with the given argv."""
    from absl import flags

    from keras_d2nn import cli

    def run(*args):
        try:
            cli.main(cli.parse_flags(["keras_d2nn", *args]))
        finally:
            flags.FLAGS.unparse_flags()

    return run


@pytest.mark.parametrize(
    "args, message",
    [
        ((), "expected a command, one of"),
        (("train", "extra"), "unexpected arguments ['extra']"),
        (
            ("train", "--epoch=2"),
            "Unknown command line flag 'epoch'. Did you mean: epochs ? "
            "`python -m keras_d2nn train --help` lists the flags.",
        ),
        (
            ("train", "--arch=resnet"),
            "--arch should be one of ['high_low', "
            "'cascade', 'chain', 'hierarchical', 'attention']. "
            "Received: --arch='resnet'",
        ),
        (
            ("train", "--dataset=cifar"),
            "--dataset should be one of ['fashion_mnist', "
            "'fashion_mnist_canvas', 'fashion_mnist_canvas/canvas224']. "
            "Received: --dataset='cifar'",
        ),
        (
            ("train", "--cost_weight=-1"),
            "--cost_weight should be a finite number >= 0",
        ),
        (
            ("train", "--epochs=0"),
            "--epochs should be >= 1. Received: --epochs=0",
        ),
        (("train", "--estimator=ppo"), "--estimator should be one of"),
        (
            ("train", "--warmup_epochs=-1"),
            "--warmup_epochs should be >= 0. Received: --warmup_epochs=-1",
        ),
        (
            ("train", "--data_dir=/nonexistent", "--tfds_dir=/tmp/empty-tfds"),
            "IDX files not found in /nonexistent",
        ),
        (("export",), "export needs --model=PATH.keras and --output=PATH"),
        (
            ("export", "--model=/tmp", "--output=/tmp/x"),
            "--model: '/tmp' is a folder; expected a .keras file",
        ),
        (
            ("export", "--model=/nonexistent.keras", "--output=/tmp/x"),
            "--model: no file '/nonexistent.keras'",
        ),
        (
            ("export", f"--model={__file__}", "--output=/tmp/x"),
            "is not a .keras file (a zip archive): truncated, corrupt or "
            "another format",
        ),
        (
            ("train", "--cost_weight=nan"),
            "--cost_weight should be a finite number >= 0. Received: "
            "--cost_weight=nan",
        ),
        (
            ("train", "--gate_input=confidence", "--arch=chain"),
            "--gate_input other than 'features' is an option of the high_low "
            "and cascade architectures. Received: --gate_input='confidence' "
            "with --arch='chain'",
        ),
        (
            (
                "verify",
                "--model=m.keras",
                "--exported=m.onnx",
                "--report=/tmp",
            ),
            "--report: /tmp is a folder; expected the path of a file.",
        ),
        (
            ("export", "--model=m.keras", f"--output={__file__}/m.onnx"),
            "cannot write --output",
        ),
        (
            ("train", "--learning_rate=nan"),
            "--learning_rate should be a finite number. Received: "
            "--learning_rate=nan",
        ),
        (
            ("train", "--learning_rate=0"),
            "--learning_rate should be > 0. Received: --learning_rate=0.0",
        ),
        (
            ("train", "--entropy_weight=nan"),
            "--entropy_weight should be a finite number. Received: "
            "--entropy_weight=nan",
        ),
        (
            ("train", "--output_dir=" + __file__),
            "is a file; expected a folder (or nothing) there",
        ),
        (
            ("tune", "--budget=0.3", "--cost_weight_max=inf"),
            "--cost_weight_max should be a finite number. Received: "
            "--cost_weight_max=inf",
        ),
        (
            ("train", "--batch_size=0"),
            "--batch_size should be >= 1. Received: --batch_size=0",
        ),
        (
            ("verify", "--model=m.keras", "--exported=m.onnx", "--n=0"),
            "--n should be >= 1",
        ),
        (
            (
                "export",
                "--model=m.keras",
                "--output=m.onnx",
                "--format=onnx",
                "--quantize=int8",
            ),
            "--quantize=int8 applies to --format=litert only",
        ),
        (
            ("tune", "--budget=0.3", "--target_accuracy=0.9"),
            "One objective should be set: --budget, --target_accuracy or "
            "--flop_penalty. Received: --budget=0.3, --target_accuracy=0.9",
        ),
        (("tune", "--budget=2"), "--budget is a fraction of the full network"),
        (
            ("train", "--budget=1.5"),
            "--budget should be a fraction of the full network's cost "
            "(FLOPs, or milliseconds with --latency_profile), in (0, 1], or 0 "
            "for none. Received: --budget=1.5",
        ),
        (
            ("tune", "--tuner=grid"),
            "--tuner should be one of ['random', "
            "'bayesian', 'hyperband']. Received: --tuner='grid'",
        ),
        (
            ("tune", "--train_examples=55000"),
            "--train_examples + --val_examples should be at most",
        ),
        (
            ("verify", "--model=m.keras"),
            "verify needs --model=PATH.keras and --exported=PATH",
        ),
        (
            ("verify", "--model=m.keras", "--exported=/nonexistent.onnx"),
            "--exported: No exported model at '/nonexistent.onnx'",
        ),
        (
            ("get_data", "--data_dir=/nonexistent"),
            "Fashion-MNIST is not in /nonexistent",
        ),
        (
            ("train", "--latency_profile=/nonexistent.json"),
            "--latency_profile should be a latency profile's JSON file "
            "(`python -m keras_d2nn profile` writes one). Received: "
            "--latency_profile='/nonexistent.json', no such file",
        ),
        (
            ("profile",),
            "--output should be the path of the JSON file to write. "
            "Received: --output=None",
        ),
        (
            ("profile", "--output=p.json", "--repeats=0"),
            "--repeats should be >= 1. Received: --repeats=0",
        ),
    ],
)
def test_bad_invocations_get_one_clear_line(cli_main, capsys, args, message):
    with pytest.raises(SystemExit) as exit_info:
        cli_main(*args)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    # docs/bad_inputs.md quotes what each bad invocation gets.
    assert message in DOC.read_text()


def test_another_graphs_latency_profile_is_refused_before_training(
    cli_main, capsys, fake_tfds_dir, tmp_path
):
    tfds_dir = fake_tfds_dir
    from keras_d2nn.profiling import LatencyProfile

    path = tmp_path / "cascade.json"
    LatencyProfile({"stage1": 0.01, "head1": 0.001}).save(path)
    with pytest.raises(SystemExit) as exit_info:
        cli_main("train", f"--latency_profile={path}", f"--tfds_dir={tfds_dir}")
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"--latency_profile '{path}' is not a latency profile of " in err
    assert "has no time for the nodes ['low'" in err
    assert "Traceback" not in err


SAVED = (
    pathlib.Path(__file__).parents[2]
    / "saved_models"
    / "fashion_mnist_high_low"
)
DOC = pathlib.Path(__file__).parents[2] / "docs" / "bad_inputs.md"


@pytest.mark.parametrize(
    "name, flag, message",
    [
        ("model.keras", "--model", "is not a .keras file (a zip archive)"),
        (
            "model.tflite",
            "--exported",
            "is not a readable LiteRT export (truncated, corrupt or not an "
            "export of keras_d2nn)",
        ),
        ("model.onnx", "--exported", "is not a readable ONNX export"),
    ],
)
def test_truncated_files_get_one_clear_line(
    cli_main, capsys, tmp_path, name, flag, message
):
    truncated = tmp_path / name
    truncated.write_bytes((SAVED / name).read_bytes()[:5000])
    files = {
        "--model": SAVED / "model.keras",
        "--exported": SAVED / "model.tflite",
        flag: truncated,
    }
    with pytest.raises(SystemExit) as exit_info:
        cli_main("verify", *(f"{k}={v}" for k, v in files.items()), "--n=10")
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"{flag}: " in err and message in err
    assert message in DOC.read_text()


# --- The command line as a person types it: help, quiet, get_data. ---


@pytest.fixture
def cli_run(monkeypatch, tmp_path_factory):
    """Runs `cli.run` (the entry point) in this process with the given
    arguments; returns its exit status (None: returned normally).
    get_data prepares its canvases in a temporary TFDS folder, never in
    the user's."""
    from absl import flags

    from keras_d2nn import cli

    def run(*args):
        if args[:1] == ("get_data",):
            args += (f"--tfds_dir={tmp_path_factory.mktemp('tfds')}",)
        monkeypatch.setattr(sys, "argv", ["keras_d2nn", *args])
        try:
            cli.run()
        except SystemExit as stop:
            return stop.code
        finally:
            flags.FLAGS.unparse_flags()
        return None

    return run


def test_help_lists_the_commands_quietly_and_exits_0():
    from keras_d2nn import cli

    result = run_cli("--help")
    assert result.returncode == 0, result.stderr
    for command in cli.COMMANDS:
        assert f"  {command:<8}  {cli.SUMMARIES[command]}\n" in result.stdout
    assert "TF_CPP_MIN_LOG_LEVEL" in result.stdout
    assert not TF_NOISE.search(result.stderr), result.stderr


@pytest.mark.parametrize("args", [("-h",), ("help",), ("--helpshort",)])
def test_every_way_of_asking_for_help_lists_the_commands(cli_run, capsys, args):
    assert cli_run(*args) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: python -m keras_d2nn {get_data,train,")
    assert "`python -m keras_d2nn COMMAND --help`" in out


@pytest.mark.parametrize(
    "command", ["get_data", "train", "export", "verify", "tune", "profile"]
)
def test_command_help_lists_its_flags_with_defaults(cli_run, capsys, command):
    from absl import flags

    from keras_d2nn import cli

    for args in (
        (command, "--help"),
        ("help", command),
        (command, "-h", "--epochs=2"),
    ):
        assert cli_run(*args) == 0
        out = capsys.readouterr().out
        assert out.startswith(f"usage: python -m keras_d2nn {command} ")
        assert "TF_CPP_MIN_LOG_LEVEL" in out
    listed = set(re.findall(r"^  --(?:\[no\])?(\w+)", out, re.M))
    assert listed == set(cli.COMMAND_FLAGS[command])
    for name in listed:
        flag = flags.FLAGS[name]
        if (
            flag.default is not None
            and not flag.boolean
            and name not in cli.OWN_DEFAULTS.get(command, ())
        ):
            assert (
                f"--{name}=" in out and f"(default: {flag.default})" in out
            ), name


def test_command_help_shows_the_defaults_the_command_uses(cli_run, capsys):
    from keras_d2nn.experiments import tune_job

    assert cli_run("tune", "--help") == 0
    out = capsys.readouterr().out
    tune = tune_job.TuneConfig()
    assert f"--train_examples=INT (default: {tune.train_examples})" in out
    assert f"--output_dir=STRING (default: {tune.output_dir})" in out
    assert "--[no]baselines (default: true)" in out
    assert cli_run("export", "--help") == 0
    out = capsys.readouterr().out
    # Choices are listed; prefixes naming the command are not repeated.
    assert (
        "--format=saved_model|litert|onnx (default: saved_model)\n"
        "      What to write." in out
    )


def test_every_flag_belongs_to_a_command():
    from absl import flags

    from keras_d2nn import cli

    defined = {f.name for f in flags.FLAGS.get_flags_for_module(cli)}
    mapped = set().union(*cli.COMMAND_FLAGS.values())
    assert mapped == defined
    assert set(cli.COMMAND_FLAGS) == set(cli.COMMANDS) == set(cli.SUMMARIES)


def test_help_for_a_command_that_does_not_exist_says_so(cli_run, capsys):
    assert cli_run("trian", "--help") == 2
    message = "error: no command 'trian'; expected one of"
    assert message in capsys.readouterr().err
    assert message in DOC.read_text()


@pytest.mark.parametrize(
    "orig_argv, cli",
    [
        (["python", "-m", "keras_d2nn", "train"], True),
        (["python", "-m", "keras_d2nn.__main__", "--help"], True),
        (["python", "-W", "ignore", "-X", "dev", "-m", "keras_d2nn"], True),
        (["python", "-mkeras_d2nn"], True),
        (["/venv/bin/python", "/venv/bin/keras-d2nn", "train"], True),
        (["python", "-m", "pytest", "-m", "keras_d2nn"], False),
        (["python", "-c", "import keras_d2nn", "-m", "keras_d2nn"], False),
        (["python", "my_script.py", "-m", "keras_d2nn"], False),
        (["python"], False),
    ],
)
def test_the_cli_is_recognised_from_the_interpreters_command_line(
    orig_argv, cli
):
    from keras_d2nn import tf_logging

    assert tf_logging.is_cli(orig_argv) is cli


def test_log_lines_are_filtered_by_their_severity():
    from keras_d2nn import tf_logging

    text = (
        "WARNING: All log messages before absl::InitializeLog() is called "
        "are written to STDERR\n"
        "I0000 00:00:1795920322.530256    3461 port.cc:153] oneDNN on.\n"
        "W0000 00:00:1795920322.530743    3461 a.cc:31] careful\n"
        "E0511 10:01:02.123456    3461 cuda_platform.cc:52] failed cuInit\n"
        "F0000 00:00:1795920322.5    3461 b.cc:1] fatal\n"
        "/x.py:3: UserWarning: Python's own\n"
    )
    assert tf_logging.filter_log_lines(text, 0) == text
    assert tf_logging.filter_log_lines(text, 2).splitlines() == [
        "E0511 10:01:02.123456    3461 cuda_platform.cc:52] failed cuInit",
        "F0000 00:00:1795920322.5    3461 b.cc:1] fatal",
        "/x.py:3: UserWarning: Python's own",
    ]
    assert tf_logging.filter_log_lines(text, 3).splitlines() == [
        "F0000 00:00:1795920322.5    3461 b.cc:1] fatal",
        "/x.py:3: UserWarning: Python's own",
    ]


# Runs `filtered_stderr` in a child process with tf_logging loaded from its
# file (the package would import TensorFlow first). The block writes like
# C++ code in TensorFlow's shared libraries: through ctypes.PyDLL, which
# holds the GIL, as loading a shared library does.
FILTERED_STDERR_CHILD = """
import ctypes, importlib.util, os, sys
spec = importlib.util.spec_from_file_location("tf_logging", sys.argv[1])
tf_logging = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tf_logging)
libc = ctypes.PyDLL(None)
libc.write.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t]
def c_write(line):
    libc.write(2, line, len(line))
os.write(2, b"before\\n")
with tf_logging.filtered_stderr(3):
    c_write(b"WARNING: All log messages before absl::InitializeLog() is "
            b"called are written to STDERR\\n")
    c_write(b"I0000 00:00:1795920322.530256    3461 port.cc:153] oneDNN "
            b"custom operations are on.\\n")
    c_write(b"W0000 00:00:1795920322.530743    3461 a.cc:31] careful\\n")
    c_write(b"E0000 00:00:1795920322.530900    3461 b.cc:7] an error\\n")
    sys.stderr.write("Python's own line\\n")
    if sys.argv[2] == "abort":
        c_write(b"F0000 00:00:1795920322.531000    3461 c.cc:9] Check "
                b"failed: x == y\\n")
        libc.abort()
os.write(2, b"after\\n")
"""


@pytest.mark.parametrize("ending", ["abort", "normal"])
def test_filtered_stderr_passes_lines_on_as_they_come(ending):
    """The lines TensorFlow writes while loading: the noise is dropped, an
    error, and the fatal line of a failure that aborts the process, reach
    stderr; after the block, stderr is stderr again."""
    from keras_d2nn import tf_logging

    env = dict(os.environ)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            FILTERED_STDERR_CHILD,
            tf_logging.__file__,
            ending,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    lines = child.stderr.splitlines()
    expected = [
        "before",
        "E0000 00:00:1795920322.530900    3461 b.cc:7] an error",
        "Python's own line",
    ]
    if ending == "abort":
        assert child.returncode == -signal.SIGABRT, child.stderr
        expected.append(
            "F0000 00:00:1795920322.531000    3461 c.cc:9] Check failed: x == y"
        )
    else:
        assert child.returncode == 0, child.stderr
        expected.append("after")
    assert lines == expected, child.stderr


def _log_messages(stderr):
    """TensorFlow's C++ log lines in `stderr`, without time and thread."""
    return {
        line.split("] ", 1)[1]
        for line in stderr.splitlines()
        if re.match(r"[IWEF]\d{4} ", line) and "] " in line
    }


def test_a_log_level_the_user_sets_is_respected():
    # What TensorFlow itself prints at level 0 while loading, the command
    # line prints too when the user asks for level 0...
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="0")
    reference = subprocess.run(
        [sys.executable, "-c", "import tensorflow"],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    shown = subprocess.run(
        [sys.executable, "-m", "keras_d2nn", "--help"],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert shown.returncode == 0
    assert _log_messages(reference.stderr) <= _log_messages(shown.stderr)
    # ... and the level stays the user's (3 only when none was set).
    probe = (
        "import sys; sys.orig_argv = [sys.executable, '-m', "
        "'keras_d2nn']; import os, keras_d2nn; "
        "print(os.environ['TF_CPP_MIN_LOG_LEVEL'])"
    )
    for level, expected in (("0", "0"), (None, "3")):
        child_env = dict(os.environ)
        child_env.pop("TF_CPP_MIN_LOG_LEVEL", None)
        if level is not None:
            child_env["TF_CPP_MIN_LOG_LEVEL"] = level
        child = subprocess.run(
            [sys.executable, "-c", probe],
            capture_output=True,
            text=True,
            timeout=600,
            env=child_env,
        )
        assert child.stdout.strip() == expected, child.stderr


def test_a_library_import_keeps_showing_errors():
    """`import keras_d2nn` in a user's script hides INFO and WARNING lines
    only (level 2), as before; the CLI's quiet is for the CLI."""
    env = dict(os.environ)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os, keras_d2nn; print(os.environ['TF_CPP_MIN_LOG_LEVEL'])",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert child.stdout.strip() == "2", child.stderr


def test_get_data_without_apt_get_or_graphviz_says_how_and_succeeds(
    fake_idx_dir, tmp_path
):
    """No root side effects: a PATH without apt-get or dot."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    env = dict(os.environ, PATH=str(bin_dir))
    result = run_cli(
        "get_data",
        f"--data_dir={fake_idx_dir}",
        f"--tfds_dir={tmp_path / 'tfds'}",
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert f"Fashion-MNIST found in {fake_idx_dir}" in result.stdout
    assert "warning: Graphviz's `dot` is not installed" in result.stderr
    assert "apt-get install -y graphviz" in result.stderr
    assert "Ready:" in result.stdout
    assert (tmp_path / "tfds" / "fashion_mnist_canvas").is_dir()
    assert not TF_NOISE.search(result.stderr), result.stderr


FAKE_APT_GET = f"""#!{sys.executable}
import os, pathlib, sys
with open(os.environ["FAKE_APT_LOG"], "a") as log:
    print(*sys.argv[1:], file=log)
if sys.argv[1] == "install":
    fail_once = pathlib.Path(os.environ.get("FAKE_APT_FAIL_ONCE", "/-"))
    if fail_once.exists():
        fail_once.unlink()
        sys.exit(100)
    if os.environ.get("FAKE_DOT_DIR"):
        dot = pathlib.Path(os.environ["FAKE_DOT_DIR"], "dot")
        dot.write_text("#!/bin/sh\\n")
        dot.chmod(0o755)
"""


@pytest.fixture
def fake_apt(monkeypatch, tmp_path):
    """A root machine whose `apt-get` only records what it is asked (and,
    with `installs_dot`, puts a `dot` on the PATH): get_data's install
    paths, without installing anything."""
    from keras_d2nn import cli

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    apt_get = bin_dir / "apt-get"
    apt_get.write_text(FAKE_APT_GET)
    apt_get.chmod(0o755)
    log = tmp_path / "apt.log"
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "deb.debian.org_dists_main_binary-amd64_Packages.lz4").touch()
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setenv("FAKE_APT_LOG", str(log))
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(cli, "APT_LISTS", str(lists))
    monkeypatch.delenv(pipelines.ENV_VAR, raising=False)

    class Fake:
        def calls(self):
            return log.read_text().splitlines() if log.exists() else []

        def installs_dot(self):
            monkeypatch.setenv("FAKE_DOT_DIR", str(bin_dir))

        def fails_once(self):
            flag = tmp_path / "fail_once"
            flag.touch()
            monkeypatch.setenv("FAKE_APT_FAIL_ONCE", str(flag))

        def fresh_machine(self):
            for name in lists.iterdir():
                name.unlink()

    return Fake()


def test_get_data_installs_both_packages_with_one_apt_get_call(
    cli_run, capsys, fake_apt, monkeypatch, tmp_path
):
    monkeypatch.setattr(pipelines, "DEFAULT_DIR", str(tmp_path / "empty"))
    assert cli_run("get_data") == 2
    assert fake_apt.calls() == ["install -y -q dataset-fashion-mnist graphviz"]
    out, err = capsys.readouterr()
    assert (
        "Installing the Debian packages dataset-fashion-mnist and "
        "graphviz with apt-get" in out
    )
    # Root with apt-get: an install that does not deliver is an error.
    message = "error: apt-get could not install dataset-fashion-mnist"
    assert message in err and message in DOC.read_text()


def test_get_data_installs_graphviz_where_the_data_is_there(
    cli_run, capsys, fake_apt, fake_idx_dir, monkeypatch
):
    monkeypatch.setenv(pipelines.ENV_VAR, fake_idx_dir)
    monkeypatch.setattr(pipelines, "DEFAULT_DIR", fake_idx_dir)
    fake_apt.installs_dot()
    assert cli_run("get_data") is None
    assert fake_apt.calls() == ["install -y -q graphviz"]
    out = capsys.readouterr().out
    assert "Fashion-MNIST found in" in out
    assert "Graphviz installed: " in out and "Ready:" in out


def test_get_data_updates_apt_lists_where_there_are_none(
    cli_run, capsys, fake_apt, fake_idx_dir, monkeypatch
):
    monkeypatch.setenv(pipelines.ENV_VAR, fake_idx_dir)
    monkeypatch.setattr(pipelines, "DEFAULT_DIR", fake_idx_dir)
    fake_apt.fresh_machine()
    fake_apt.installs_dot()
    assert cli_run("get_data") is None
    assert fake_apt.calls() == ["update -q", "install -y -q graphviz"]
    assert "No apt package lists yet" in capsys.readouterr().out


def test_get_data_updates_stale_apt_lists_when_the_install_fails(
    cli_run, capsys, fake_apt, fake_idx_dir, monkeypatch
):
    monkeypatch.setenv(pipelines.ENV_VAR, fake_idx_dir)
    monkeypatch.setattr(pipelines, "DEFAULT_DIR", fake_idx_dir)
    fake_apt.installs_dot()
    fake_apt.fails_once()
    assert cli_run("get_data") is None
    assert fake_apt.calls() == [
        "install -y -q graphviz",
        "update -q",
        "install -y -q graphviz",
    ]
    assert (
        "apt-get install failed: running apt-get update"
        in capsys.readouterr().out
    )


def test_get_data_as_root_warns_and_succeeds_when_graphviz_does_not_install(
    cli_run, capsys, fake_apt, fake_idx_dir, monkeypatch
):
    """Graphviz is for graph drawings only: data ready means exit 0."""
    monkeypatch.setenv(pipelines.ENV_VAR, fake_idx_dir)
    monkeypatch.setattr(pipelines, "DEFAULT_DIR", fake_idx_dir)
    assert cli_run("get_data") is None
    assert fake_apt.calls() == ["install -y -q graphviz"]
    out, err = capsys.readouterr()
    assert "Fashion-MNIST found in" in out and "Ready:" in out
    message = (
        "warning: apt-get could not install graphviz (see its output "
        "above), so graph drawings will be skipped"
    )
    assert message in err and "`apt-get install -y graphviz`" in err
    assert "error:" not in err
    assert message in DOC.read_text()


def test_get_data_without_root_names_both_ways(
    cli_run, capsys, monkeypatch, tmp_path
):
    from keras_d2nn import cli

    monkeypatch.setattr(pipelines, "DEFAULT_DIR", str(tmp_path / "empty"))
    monkeypatch.delenv(pipelines.ENV_VAR, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no apt-get, no dot
    monkeypatch.setattr(cli, "APT_LISTS", str(tmp_path))
    assert cli_run("get_data") == 2
    err = capsys.readouterr().err
    assert "warning: Graphviz's `dot` is not installed" in err
    message = "could not be installed here (that needs root and apt-get)"
    assert message in err
    assert message in DOC.read_text()


def test_a_full_disk_during_train_gets_one_line_saying_what_is_kept(
    cli_main, capsys, monkeypatch
):
    from keras_d2nn.experiments import train_job

    def disk_full(config, log=print):
        raise OSError(28, "No space left on device", "runs/x/model.keras")

    monkeypatch.setattr(train_job, "run", disk_full)
    with pytest.raises(SystemExit) as exit_info:
        cli_main("train", "--output_dir=runs/x")
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip()
    assert error == (
        "error: file-system error on runs/x/model.keras: No space left on "
        "device; this run's outputs were not saved and runs/x holds the "
        "previous run's, if any. Rerun the same command to resume from the "
        "last whole epoch."
    )


def test_empty_files_are_named_as_cut_off(
    cli_main, capsys, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty.keras").write_bytes(b"")
    (tmp_path / "empty.tflite").write_bytes(b"")
    for args, message in (
        (
            ("export", "--model=empty.keras", "--output=x.onnx"),
            "--model: 'empty.keras' is empty (0 bytes): a save that was cut "
            "off. Train or save the model again.",
        ),
        (
            ("verify", "--model=m.keras", "--exported=empty.tflite"),
            "--exported: 'empty.tflite' is empty (0 bytes): an export that "
            "was cut off. Export the model again.",
        ),
    ):
        with pytest.raises(SystemExit) as exit_info:
            cli_main(*args)
        assert exit_info.value.code == 2
        assert capsys.readouterr().err.strip() == f"error: {message}"
        assert message in DOC.read_text()


# --- A user's own model and data (scikit-learn's digits, not images). ---


@pytest.fixture(scope="module")
def digits_files(tmp_path_factory):
    """A trained D2NN on scikit-learn's digits (64 values in [0, 1]), its
    LiteRT export and the test digits as .npz (with labels) and .npy."""
    from sklearn.datasets import load_digits

    import keras_d2nn
    from keras_d2nn import export

    digits = load_digits()
    x = (digits.data / 16).astype("float32")
    y = digits.target
    graph = keras_d2nn.Graph()
    graph.input("pixels", shape=(64,), value_range=(0.0, 1.0))
    graph.f_node("low", keras.layers.Dense(16, activation="relu"), "pixels")
    graph.q_node(
        "gate",
        keras_d2nn.Controller(2, hidden_units=(4,)),
        "low",
        actions=["stop", "high"],
    )
    graph.f_node("exit", keras.layers.Dense(10), "low", when=("gate", "stop"))
    graph.f_node(
        "high", keras.layers.Dense(10), "pixels", when=("gate", "high")
    )
    graph.merge("answer", ["exit", "high"])
    graph.output("answer", "logits")
    model = keras_d2nn.D2NNModel(graph)
    model.compile("adam", LOSS)
    model.fit(x[:1400], y[:1400], epochs=2, verbose=0)
    folder = tmp_path_factory.mktemp("digits")
    model.save(folder / "m.keras")
    export.export_litert(model, folder / "m.tflite", batch_size=None)
    np.savez(folder / "test.npz", x=x[1400:], y=y[1400:])
    np.save(folder / "test.npy", x[1400:])
    np.savez(folder / "raw.npz", x=digits.data[1400:], y=y[1400:])
    np.savez(folder / "unnamed.npz", x[1400:])
    (folder / "notes.txt").write_text("not arrays")
    np.save(folder / "objects.npy", np.array([{"x": 1}], object), True)
    return folder


@pytest.mark.parametrize("data", ["test.npz", "test.npy"])
def test_verify_takes_the_users_own_data(cli_main, capsys, digits_files, data):
    cli_main(
        "verify",
        f"--model={digits_files / 'm.keras'}",
        f"--exported={digits_files / 'm.tflite'}",
        f"--data={digits_files / data}",
        "--n=200",
    )
    out = capsys.readouterr().out
    assert "200 examples" in out and "PASSED" in out
    # Labels give an accuracy; inputs alone do not.
    assert ("accuracy n/a" in out) == (data == "test.npy")


@pytest.mark.parametrize(
    "data, message",
    [
        ("missing.npz", "--data: no file"),
        ("notes.txt", "is not a NumPy .npy or .npz file"),
        ("objects.npy", "Object arrays cannot be loaded"),
        ("unnamed.npz", "expected the inputs under `x`"),
        (
            "raw.npz",
            "hold values outside the range of input 'pixels'",
        ),
    ],
)
def test_verify_refuses_bad_own_data_in_one_line(
    cli_main, capsys, digits_files, data, message
):
    with pytest.raises(SystemExit) as exit_info:
        cli_main(
            "verify",
            f"--model={digits_files / 'm.keras'}",
            f"--exported={digits_files / 'm.tflite'}",
            f"--data={digits_files / data}",
        )
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
