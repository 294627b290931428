"""`train` resumes a SIGKILLed run from its backup and ends with the
weights and report of the run that was never killed (issue 29)."""

import json
import os
import signal
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest

from keras_d2nn.callbacks.epoch_backup import BackupUnusable
from keras_d2nn.callbacks.epoch_backup import read_backup

SETTINGS = (
    "--epochs=3",
    "--gate_epochs=2",
    "--train_examples=3072",
    "--val_examples=1024",
    "--baselines=false",
    "--tensorboard=false",
    "--verbose=0",
)


def train(tfds_dir, output_dir, **popen):
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "keras_d2nn",
            "train",
            *SETTINGS,
            f"--tfds_dir={tfds_dir}",
            f"--output_dir={output_dir}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **popen,
    )


def weights(output_dir):
    """Every array of the saved model's weights file."""
    import h5py

    with zipfile.ZipFile(output_dir / "model.keras") as archive:
        archive.extract("model.weights.h5", output_dir / "unzipped")
    arrays = {}
    with h5py.File(output_dir / "unzipped" / "model.weights.h5") as file:
        file.visititems(
            lambda name, item: (
                arrays.setdefault(name, np.array(item))
                if isinstance(item, h5py.Dataset)
                else None
            )
        )
    return arrays


def report(output_dir):
    loaded = json.loads((output_dir / "report.json").read_text())
    loaded.pop("train_seconds")  # time differs
    loaded["config"].pop("output_dir")
    return loaded


@pytest.mark.slow  # about 90 s: three short trainings
def test_a_sigkilled_train_resumes_to_the_uninterrupted_result(
    tfds_dir, tmp_path
):
    whole = train(tfds_dir, tmp_path / "whole")
    assert whole.wait(timeout=600) == 0, whole.stdout.read()

    killed_dir = tmp_path / "killed"
    backup = tmp_path / ".killed.backup"
    killed = train(tfds_dir, killed_dir)
    # Killed in phase two, once a backup of its first epoch is there:
    # phase one is skipped on resuming, phase two resumes mid-way.
    deadline = time.time() + 600
    while time.time() < deadline:
        state = read_backup(backup) if (backup / "latest").exists() else None
        if state is not None and state["fit"] == 1:
            break
        assert killed.poll() is None, killed.stdout.read()
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert not killed_dir.exists()  # nothing that looks like a result

    resumed = train(tfds_dir, killed_dir)
    output = resumed.communicate(timeout=600)[0]
    assert resumed.returncode == 0, output
    assert "Resuming the killed run from its backup" in output
    assert not backup.exists()  # the run is saved: no backup left
    assert report(killed_dir) == report(tmp_path / "whole")
    want, got = weights(tmp_path / "whole"), weights(killed_dir)
    assert want.keys() == got.keys()
    different = [k for k in want if not np.array_equal(want[k], got[k])]
    assert not different, f"{len(different)} of {len(want)} arrays differ"


def test_a_backup_whose_state_does_not_describe_its_weights_is_refused(
    tmp_path,
):
    latest = tmp_path / "latest"
    latest.mkdir()
    (latest / "backup.weights.h5").write_bytes(b"weights of epoch 3")
    (latest / "state.json").write_text(
        json.dumps({"fit": 0, "epoch": 2, "weights_sha256": "0" * 64})
    )
    with pytest.raises(BackupUnusable, match="SHA-256 differs"):
        read_backup(tmp_path)
    (latest / "state.json").write_text('{"fit": 0, "epo')  # truncated
    with pytest.raises(BackupUnusable, match="is damaged"):
        read_backup(tmp_path)
    os.remove(latest / "state.json")
    with pytest.raises(BackupUnusable, match="is damaged"):
        read_backup(tmp_path)


def test_a_backup_of_other_settings_is_refused(tmp_path):
    import hashlib

    latest = tmp_path / "latest"
    latest.mkdir()
    (latest / "backup.weights.h5").write_bytes(b"weights")
    (latest / "state.json").write_text(
        json.dumps(
            {
                "fit": 0,
                "epoch": 1,
                "weights_sha256": hashlib.sha256(b"weights").hexdigest(),
                "fingerprint": {"seed": 0},
            }
        )
    )
    assert read_backup(tmp_path, {"seed": 0})["epoch"] == 1
    with pytest.raises(BackupUnusable, match="of a run with other settings"):
        read_backup(tmp_path, {"seed": 1})
