"""The command line, run as users run it (in a subprocess)."""

import json
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_d2nn import data


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "keras_d2nn", *args],
                          capture_output=True, text=True, timeout=600)


def test_train_writes_report_plot_and_model(tfds_dir, tmp_path):
    result = run_cli("train", "--epochs=1", "--warmup_epochs=0",
                     "--cost_weight_ramp_epochs=0", "--train_examples=512",
                     "--baseline_epochs=1", f"--tfds_dir={tfds_dir}",
                     f"--output_dir={tmp_path}", "--verbose=0")
    assert result.returncode == 0, result.stderr
    assert "test accuracy:" in result.stdout
    assert "controller gate: stop" in result.stdout
    report = json.loads((tmp_path / "report.json").read_text())
    for key in ("arch", "test_accuracy", "mean_cost_fraction", "mean_flops",
                "full_flops", "action_rates", "baselines"):
        assert key in report
    assert 0.0 < report["mean_cost_fraction"] <= 1.0
    rates = report["action_rates"]["gate"]
    assert rates["stop"] + rates["high"] == pytest.approx(1.0)
    kinds = {b["kind"] for b in report["baselines"]}
    assert kinds == {"static", "random", "threshold"}
    for baseline in report["baselines"]:
        assert 0.0 <= baseline["test_accuracy"] <= 1.0
        assert 0.0 < baseline["mean_flops"] <= report["full_flops"]
    for picture in ("tradeoff.png", "routes.png", "graph.png"):
        assert (tmp_path / picture).read_bytes().startswith(b"\x89PNG")
    # The routing report: per route, what it costs and how it does.
    routing = report["routing"]
    assert routing["accuracy"] == pytest.approx(report["test_accuracy"])
    assert {r["route"] for r in routing["routes"]} <= {"gate=stop",
                                                        "gate=high"}
    assert sum(r["share"] for r in routing["routes"]) == pytest.approx(1.0)
    assert set(routing["controllers"]["gate"]["by_class"]) == set(
        data.DATASETS["fashion_mnist"]["class_names"])
    assert "true class" in result.stdout
    assert list((tmp_path / "logs" / "train").iterdir())
    model = keras.models.load_model(tmp_path / "model.keras")
    assert model.full_flops == report["full_flops"]
    # The trained model exports from the command line, and each export
    # agrees with it on real test images.
    for fmt, output, extra in (
            ("saved_model", tmp_path / "served", ()),
            ("onnx", tmp_path / "model.onnx", ()),
            ("litert", tmp_path / "int8.tflite",
             ("--quantize=int8", "--calibration_examples=64"))):
        result = run_cli("export", f"--model={tmp_path / 'model.keras'}",
                         f"--format={fmt}", f"--output={output}",
                         f"--tfds_dir={tfds_dir}", *extra)
        assert result.returncode == 0, result.stderr
        assert output.exists()
        if fmt != "onnx" and not extra:
            continue  # verified in tests/test_verify.py; the CLI once each
        verified = tmp_path / f"verify_{output.name}.json"
        result = run_cli("verify", f"--model={tmp_path / 'model.keras'}",
                         f"--exported={output}", "--n=300",
                         f"--tfds_dir={tfds_dir}", f"--report={verified}")
        assert result.returncode == 0, result.stderr
        check = json.loads(verified.read_text())
        assert check["n"] == 300
        assert check["passed"] is (None if extra else True), result.stdout
        assert check["decision_agreement"]["gate"] >= (0.9 if extra else 1)
        assert extra or "PASSED: agrees on every image" in result.stdout


def test_train_without_optimizer_state_keeps_the_trained_weights(
        tfds_dir, tmp_path):
    result = run_cli("train", "--epochs=1", "--warmup_epochs=0",
                     "--cost_weight_ramp_epochs=0", "--train_examples=512",
                     "--nobaselines", "--nosave_optimizer",
                     f"--tfds_dir={tfds_dir}", f"--output_dir={tmp_path}",
                     "--verbose=0")
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    model = keras.models.load_model(tmp_path / "model.keras")
    assert getattr(model, "optimizer", None) is None
    x, y = data.load_arrays("fashion_mnist", "test", data_dir=tfds_dir)
    accuracy = float(np.mean(np.argmax(model.predict(x, verbose=0), -1) == y))
    assert accuracy == pytest.approx(report["test_accuracy"], abs=1e-6)


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
        argv = flags.FLAGS(["keras_d2nn", *args])
        try:
            cli.main(argv)
        finally:
            flags.FLAGS.unparse_flags()

    return run


@pytest.mark.parametrize("args, message", [
    ((), "expected a command, one of"),
    (("train", "extra"), "unexpected arguments ['extra']"),
    (("train", "--arch=resnet"), "unknown --arch 'resnet'"),
    (("train", "--dataset=cifar"), "unknown --dataset 'cifar'"),
    (("train", "--cost_weight=-1"),
     "`cost_weight` should be a finite number >= 0"),
    (("train", "--epochs=0"), "--epochs should be >= 1"),
    (("train", "--estimator=ppo"), "unknown --estimator 'ppo'"),
    (("train", "--warmup_epochs=-1"), "--warmup_epochs should be >= 0"),
    (("train", "--epochs=1"), "--warmup_epochs=1 leaves none of the "
     "--epochs=1"),
    (("train", "--data_dir=/nonexistent", "--tfds_dir=/tmp/empty-tfds"),
     "IDX files not found in /nonexistent"),
    (("export",), "export needs --model=PATH.keras and --output=PATH"),
    (("export", "--model=/nonexistent.keras", "--output=/tmp/x"),
     "--model: no file '/nonexistent.keras'"),
    (("export", f"--model={__file__}", "--output=/tmp/x"),
     "is not a .keras file (a zip archive): truncated, corrupt or another "
     "format"),
    (("train", "--cost_weight=nan"),
     "`cost_weight` should be a finite number >= 0. Received: nan"),
    (("train", "--batch_size=0"), "--batch_size should be >= 1"),
    (("verify", "--model=m.keras", "--exported=m.onnx", "--n=0"),
     "--n should be >= 1"),
    (("export", "--model=m.keras", "--output=m.onnx", "--format=onnx",
      "--quantize=int8"), "--quantize=int8 applies to --format=litert only"),
    (("tune", "--budget=0.3", "--target_accuracy=0.9"),
     "Give one objective: --budget, --target_accuracy or"),
    (("tune", "--budget=2"), "`budget` is a fraction of the full network"),
    (("tune", "--tuner=grid"), "unknown --tuner 'grid'"),
    (("tune", "--train_examples=55000"),
     "--train_examples + --val_examples should be at most"),
    (("verify", "--model=m.keras"),
     "verify needs --model=PATH.keras and --exported=PATH"),
    (("verify", "--model=m.keras", "--exported=/nonexistent.onnx"),
     "--exported: No exported model at '/nonexistent.onnx'"),
    (("get_data", "--data_dir=/nonexistent"),
     "Fashion-MNIST is not in /nonexistent"),
])
def test_bad_invocations_get_one_clear_line(cli_main, capsys, args, message):
    with pytest.raises(SystemExit) as exit_info:
        cli_main(*args)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    # docs/bad_inputs.md quotes what each bad invocation gets.
    assert message in DOC.read_text()


SAVED = pathlib.Path(__file__).parents[1] / "saved_models" / \
    "fashion_mnist_high_low"
DOC = pathlib.Path(__file__).parents[1] / "docs" / "bad_inputs.md"


@pytest.mark.parametrize("name, flag, message", [
    ("model.keras", "--model", "is not a .keras file (a zip archive)"),
    ("model.tflite", "--exported",
     "is not a readable LiteRT export (truncated, corrupt or not an export "
     "of keras_d2nn)"),
    ("model.onnx", "--exported", "is not a readable ONNX export"),
])
def test_truncated_files_get_one_clear_line(cli_main, capsys, tmp_path, name,
                                            flag, message):
    truncated = tmp_path / name
    truncated.write_bytes((SAVED / name).read_bytes()[:5000])
    files = {"--model": SAVED / "model.keras",
             "--exported": SAVED / "model.tflite", flag: truncated}
    with pytest.raises(SystemExit) as exit_info:
        cli_main("verify", *(f"{k}={v}" for k, v in files.items()), "--n=10")
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"{flag}: " in err and message in err
    assert message in DOC.read_text()
