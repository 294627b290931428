"""The tuning job end to end: search, front plot, best model, resuming a
killed search, and workers sharing trials (`keras_d2nn.experiments.tune_job`).
"""

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import keras
import pytest

from keras_d2nn import D2NNModel
from keras_d2nn.experiments import tune_job


@pytest.fixture
def tfds_dir(fake_tfds_dir):
    """Synthetic Fashion-MNIST look-alikes (tests/conftest.py): these
    tests are about the job, not about accuracy on real images."""
    return fake_tfds_dir


def tiny_config(tfds_dir, output_dir, **overrides):
    settings = dict(
        # Two epochs leave trials near the full network's FLOPs: under the
        # whole budget, every trial qualifies and the best one is saved.
        budget=1.0,
        max_trials=2,
        epochs=2,
        train_examples=600,
        val_examples=300,
        baselines=False,
        output_dir=str(output_dir),
        tfds_dir=tfds_dir,
        verbose=0,
        cost_weight_min=0.01,
        cost_weight_max=0.3,
    )
    settings.update(overrides)
    return tune_job.TuneConfig(**settings)


# Over half a minute of training: slow (runs on CI, not in a plain
# pytest).
@pytest.mark.slow
def test_tune_job_writes_front_plot_best_model_and_resumes(tfds_dir, tmp_path):

    summary = tune_job.run(tiny_config(tfds_dir, tmp_path), log=lambda m: 0)
    assert summary["trials"] == 2
    assert summary["ran_trials"] == ["0", "1"]
    for name in ("pareto.json", "pareto.png", "summary.json"):
        assert (tmp_path / name).exists()
    pareto = json.loads((tmp_path / "pareto.json").read_text())
    points = {p["trial_id"]: p for p in pareto["points"]}
    assert sorted(points) == ["0", "1"]
    for p in points.values():
        assert 0.01 <= p["cost_weight"] <= 0.3
        assert 0 <= p["val_accuracy"] <= 1
        assert 0 < p["val_flop_fraction"] <= 1
    # Every trial that did not route is named in a warning, and a trial
    # that routed in none.
    stuck = [t for t, p in points.items() if p["no_routing"]]
    warned = " ".join(summary["warnings"])
    assert all(f"trial {t} (" in warned for t in stuck)
    assert all(f"trial {t} (" not in warned for t in points if t not in stuck)
    assert all(line.startswith("WARNING") for line in summary["warnings"])
    # The front: the trials no other one beats on both validation
    # accuracy and FLOPs (at least one), each measured on the test set.
    beaten = {
        t
        for t, p in points.items()
        for q in points.values()
        if q["val_accuracy"] >= p["val_accuracy"]
        and q["val_flop_fraction"] <= p["val_flop_fraction"]
        and (q["val_accuracy"], q["val_flop_fraction"])
        != (p["val_accuracy"], p["val_flop_fraction"])
    }
    front = pareto["front"]
    assert sorted(p["trial_id"] for p in front) == sorted(set(points) - beaten)
    assert front == summary["front"] and len(front) >= 1
    for p in front:
        assert 0 <= p["test_accuracy"] <= 1
        assert 0 < p["test_flop_fraction"] <= 1
    # The best: the most accurate trial (all are within the budget),
    # measured on the test set and saved.
    chosen = max(points.values(), key=lambda p: p["val_accuracy"])
    assert summary["best"]["trial_id"] == chosen["trial_id"]
    assert 0 <= summary["best"]["test_accuracy"] <= 1
    assert 0 < summary["best"]["test_flop_fraction"] <= 1
    assert not any("no trial met the budget" in w for w in summary["warnings"])
    best = keras.models.load_model(tmp_path / "best_model.keras")
    assert isinstance(best, D2NNModel)
    # The chosen trial's model: trained at its cost weight.
    assert best.cost_weight == pytest.approx(chosen["cost_weight"], rel=1e-6)
    first = (tmp_path / "search" / "trial_0" / "trial.json").read_text()
    # Same command, more trials: only the new one runs.
    summary = tune_job.run(
        tiny_config(tfds_dir, tmp_path, max_trials=3), log=lambda m: 0
    )
    assert summary["trials"] == 3
    assert summary["ran_trials"] == ["2"]
    assert (tmp_path / "search" / "trial_0" / "trial.json").read_text() == first


def run_cli(*args, env=None):
    return subprocess.Popen(
        [sys.executable, "-m", "keras_d2nn", "tune", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def cli_args(tfds_dir, output_dir, trials):
    return [
        "--budget=0.5",
        f"--max_trials={trials}",
        "--epochs=2",
        "--train_examples=600",
        "--val_examples=300",
        "--nobaselines",
        f"--tfds_dir={tfds_dir}",
        f"--output_dir={output_dir}",
        "--verbose=0",
        "--cost_weight_max=0.3",
    ]


def completed(output_dir):
    done = set()
    for path in pathlib.Path(output_dir, "search").glob("trial_*/trial.json"):
        trial = json.loads(path.read_text())
        if trial["status"] == "COMPLETED":
            done.add(trial["trial_id"])
    return done


# Over a minute of training: slow (runs on CI, not in a plain pytest).
@pytest.mark.slow
def test_a_killed_search_resumes_without_redoing_finished_trials(
    tfds_dir, tmp_path
):
    process = run_cli(*cli_args(tfds_dir, tmp_path, 3))
    deadline = time.time() + 300
    while not completed(tmp_path) and time.time() < deadline:
        assert process.poll() is None, process.communicate()[1][-2000:]
        time.sleep(0.5)
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished = completed(tmp_path)
    assert finished and len(finished) < 3
    before = {
        t: (tmp_path / "search" / f"trial_{t}" / "trial.json").read_text()
        for t in finished
    }
    resumed = run_cli(*cli_args(tfds_dir, tmp_path, 3))
    out, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err[-2000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["trials"] == 3
    assert not set(summary["ran_trials"]) & finished
    for t, text in before.items():
        assert (
            tmp_path / "search" / f"trial_{t}" / "trial.json"
        ).read_text() == text


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Over a minute of training: slow (runs on CI, not in a plain pytest).
@pytest.mark.slow
def test_distributed_search_shares_trials_between_workers(tfds_dir, tmp_path):
    port = str(free_port())
    base = {"KERASTUNER_ORACLE_IP": "127.0.0.1", "KERASTUNER_ORACLE_PORT": port}
    args = cli_args(tfds_dir, tmp_path, 3)
    chief = run_cli(*args, env={**base, "KERASTUNER_TUNER_ID": "chief"})
    time.sleep(3)
    workers = [
        run_cli(*args, env={**base, "KERASTUNER_TUNER_ID": name})
        for name in ("tuner0", "tuner1")
    ]
    for process in workers + [chief]:
        out, err = process.communicate(timeout=600)
        assert process.returncode == 0, err[-3000:]
    ran = [
        json.loads((tmp_path / f"worker_{name}.json").read_text())["trials"]
        for name in ("tuner0", "tuner1")
    ]
    # However the trials were shared out (one worker may have run them
    # all), each ran exactly once and together they are the search.
    every = ran[0] + ran[1]
    assert len(every) == len(set(every)), f"a trial ran twice: {ran}"
    assert set(every) == completed(tmp_path) == {"0", "1", "2"}
    # The chief saved the oracle with no trial left ongoing, so a plain
    # run of the same command would train none again.
    oracle = json.loads((tmp_path / "search" / "oracle.json").read_text())
    assert oracle["ongoing_trials"] == {}


# Over a minute of training: slow (runs on CI, not in a plain pytest).
@pytest.mark.slow
def test_a_resumed_search_trains_the_cut_off_trial_as_the_whole_search(
    tfds_dir, tmp_path
):
    # Trial "1" run after trial "0" in one process, and run alone by a
    # later process (as after a kill during it): the same training.
    tune_job.run(tiny_config(tfds_dir, tmp_path / "whole"), log=lambda m: 0)
    resumed = tmp_path / "resumed"
    tune_job.run(tiny_config(tfds_dir, resumed, max_trials=1), log=print)
    summary = tune_job.run(tiny_config(tfds_dir, resumed), log=lambda m: 0)
    assert summary["ran_trials"] == ["1"]

    def trial_1(output_dir):
        points = json.loads((output_dir / "pareto.json").read_text())["points"]
        return next(p for p in points if p["trial_id"] == "1")

    want, got = trial_1(tmp_path / "whole"), trial_1(resumed)
    assert got["cost_weight"] == want["cost_weight"]
    assert got["val_accuracy"] == want["val_accuracy"]
    assert got["val_flop_fraction"] == want["val_flop_fraction"]


def test_a_cut_off_search_file_gets_one_line_naming_it(tfds_dir, tmp_path):
    trial = tmp_path / "search" / "trial_0"
    trial.mkdir(parents=True)
    (trial / "trial.json").write_text('{"trial_id": "0", "hyperpar')
    with pytest.raises(
        tune_job.SearchStateDamaged,
        match=r"trial_0/trial.json is cut off or damaged .* Remove",
    ):
        tune_job.run(tiny_config(tfds_dir, tmp_path), log=lambda m: 0)
