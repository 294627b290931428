"""The command line, run as users run it (in a subprocess)."""

import json
import subprocess
import sys

import keras
import pytest


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "keras_d2nn", *args],
                          capture_output=True, text=True, timeout=600)


def test_train_writes_report_and_model(fashion_mnist, tmp_path):
    result = run_cli("train", "--epochs=1", "--train_examples=512",
                     f"--output_dir={tmp_path}", "--verbose=0")
    assert result.returncode == 0, result.stderr
    assert "test accuracy:" in result.stdout
    assert "controller gate: stop" in result.stdout
    report = json.loads((tmp_path / "report.json").read_text())
    for key in ("arch", "test_accuracy", "mean_cost_fraction", "mean_flops",
                "full_flops", "action_rates"):
        assert key in report
    assert 0.0 < report["mean_cost_fraction"] <= 1.0
    rates = report["action_rates"]["gate"]
    assert rates["stop"] + rates["high"] == pytest.approx(1.0)
    model = keras.models.load_model(tmp_path / "model.keras")
    assert model.full_flops == report["full_flops"]


@pytest.mark.parametrize("args, message", [
    ((), "expected a command, one of"),
    (("trian",), "received trian"),
    (("train", "--arch=resnet"), "unknown --arch 'resnet'"),
    (("train", "--dataset=cifar"), "unknown --dataset 'cifar'"),
    (("train", "--cost_weight=-1", "--train_examples=8"),
     "`cost_weight` should be a finite number >= 0"),
    (("train", "--data_dir=/nonexistent"), "IDX files not found"),
])
def test_bad_invocations_get_one_clear_line(args, message):
    result = run_cli(*args)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr
