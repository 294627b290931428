"""Safe loading and determinism (issue 8, parts 4 and 5)."""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

import keras_d2nn
from keras_d2nn.testing import shape_images


def lambda_model():
    graph = keras_d2nn.Graph()
    graph.input("x", shape=(8,))
    graph.f_node("low", keras.layers.Dense(4), inputs="x")
    graph.f_node("doubled", keras.layers.Lambda(lambda t: t * 2), inputs="low")
    graph.f_node("logits", keras.layers.Dense(3), inputs="doubled")
    graph.output("logits")
    return keras_d2nn.D2NNModel(graph)


def test_a_file_carrying_a_lambda_is_refused_unless_unsafe(tmp_path):
    model = lambda_model()
    path = tmp_path / "lambda.keras"
    model.save(path)
    # The graph's layers are deserialised under Keras safe mode too.
    with pytest.raises(ValueError, match="safe_mode=False"):
        keras.models.load_model(path)
    loaded = keras.models.load_model(path, safe_mode=False)
    x = np.ones((2, 8), "float32")
    np.testing.assert_allclose(loaded(x), model(x), atol=1e-6)


def test_cli_refuses_a_lambda_file_and_names_the_opt_out(tmp_path):
    path = tmp_path / "lambda.keras"
    lambda_model().save(path)
    command = [
        sys.executable,
        "-m",
        "keras_d2nn",
        "export",
        f"--model={path}",
        "--format=saved_model",
        f"--output={tmp_path / 'sm'}",
    ]
    refused = subprocess.run(
        command, capture_output=True, text=True, timeout=300
    )
    assert refused.returncode == 2
    assert "Keras safe mode refuses" in refused.stderr
    assert "--unsafe_load" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert not (tmp_path / "sm").exists()
    allowed = subprocess.run(
        command + ["--unsafe_load"], capture_output=True, text=True, timeout=300
    )
    assert allowed.returncode == 0, allowed.stderr[-2000:]
    assert (tmp_path / "sm" / "saved_model.pb").exists()


def test_the_package_never_unpickles_or_evaluates_data():
    import pathlib
    import re

    package = pathlib.Path(keras_d2nn.__file__).parent
    risky = re.compile(
        r"\bpickle\b|\beval\(|\bexec\(|allow_pickle|"
        r"yaml\.load\(|\bmarshal\b"
    )
    offenders = [
        f"{p.relative_to(package)}:{n}"
        for p in package.rglob("*.py")
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if risky.search(line)
    ]
    assert offenders == []


def write_images(path, n=512):
    """Writes `n` synthetic training examples to `path` (.npz, arrays `x`
    and `y`): images of one to three rectangles of random brightness on
    black (garments on Fashion-MNIST's black background), random labels
    of 10 classes."""
    x, y = shape_images(n, labels=True)
    np.savez(path, x=x, y=y)
    return path


DETERMINISM = textwrap.dedent("""
    import json, sys, numpy as np, keras, tensorflow as tf
    from keras_d2nn import architectures, schedules
    tf.config.experimental.enable_op_determinism()
    x, y = np.load(sys.argv[1])["x"], np.load(sys.argv[1])["y"]

    def train():
        keras.utils.set_random_seed(0)
        model = architectures.high_low(gate_input="features")
        model.compile(optimizer="adam", cost_weight=0.1,
                      loss=keras.losses.SparseCategoricalCrossentropy(
                          from_logits=True))
        model.fit(x, y, epochs=2, batch_size=64, verbose=0,
                  callbacks=[schedules.WarmUp(1)])
        return ([w.numpy() for w in model.weights],
                model.route(x[:300])["decisions"]["gate"])

    (a, da), (b, db) = train(), train()
    print(json.dumps({
        "weights_equal": all(np.array_equal(p, q) for p, q in zip(a, b)),
        "weights": len(a),
        "decisions_equal": bool(np.array_equal(da, db)),
        "high_rate": float(np.mean(da == 1)),
    }))
""")


def test_seeded_deterministic_training_repeats_exactly(tmp_path):
    import json

    # Op determinism is process-wide: a fresh process.
    result = subprocess.run(
        [sys.executable, "-c", DETERMINISM, write_images(tmp_path / "d.npz")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["weights"] > 0
    assert report["weights_equal"], report
    assert report["decisions_equal"], report
    # Decisions of a gate that sends some images each way.
    assert 0 < report["high_rate"] < 1, report


# Trains 4 epochs with warm-up and a cost-weight ramp on the examples of
# argv[5] (`write_images`), resuming from what the resume callback (argv[4]:
# "backup" for BackupAndRestore, "checkpoint" for ModelCheckpoint +
# load_model + initial_epoch) left in argv[1].
CRASH = textwrap.dedent("""
    import glob, os, signal, sys
    import numpy as np, keras, tensorflow as tf
    from keras_d2nn import architectures, schedules
    tf.config.experimental.enable_op_determinism()
    backup, out, journal, resume, examples = sys.argv[1:6]
    kill_at = int(os.environ.get("KILL_AT_EPOCH", "-1"))
    x, y = np.load(examples)["x"], np.load(examples)["y"]
    keras.utils.set_random_seed(0)
    model = architectures.high_low(gate_input="features")
    model.compile(optimizer="adam", cost_weight=0.1,
                  loss=keras.losses.SparseCategoricalCrossentropy(
                      from_logits=True))
    initial_epoch = 0
    if resume == "backup":
        saver = keras.callbacks.BackupAndRestore(backup)
    else:
        saver = keras.callbacks.ModelCheckpoint(
            os.path.join(backup, "epoch-{epoch:02d}.keras"))
        saved = sorted(glob.glob(os.path.join(backup, "epoch-*.keras")))
        if saved:
            model = keras.models.load_model(saved[-1])
            initial_epoch = int(saved[-1][-8:-6])  # epochs done

    class Journal(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch
            open(journal, "a").write(f"begin {epoch}\\n")

        def on_epoch_end(self, epoch, logs=None):
            open(journal, "a").write(f"end {epoch}\\n")

        def on_train_batch_end(self, batch, logs=None):
            if self.epoch == kill_at and batch == 3:  # mid-epoch
                os.kill(os.getpid(), signal.SIGKILL)

    model.fit(x, y, epochs=4, initial_epoch=initial_epoch, batch_size=64,
              verbose=0, shuffle=False,
              callbacks=[saver, schedules.WarmUp(1),
                         schedules.CostWeightSchedule(
                             schedules.linear_ramp(0.0, 0.1, 2, delay=1)),
                         Journal()])
    state = model.variables + model.optimizer.variables
    # Keyed by position: a loaded model names some variables differently.
    np.savez(out, paths=[v.path for v in state], *[v.numpy() for v in state])
""")


# Over a minute of training: slow (runs on CI, not in a plain pytest).
@pytest.mark.slow
@pytest.mark.parametrize("resume", ["backup", "checkpoint"])
def test_killed_training_resumes_to_the_uninterrupted_weights(tmp_path, resume):
    examples = write_images(tmp_path / "examples.npz")

    def train(name, backup, kill_at=None):
        env = dict(os.environ)
        if kill_at is not None:
            env["KILL_AT_EPOCH"] = str(kill_at)
        return subprocess.run(
            [
                sys.executable,
                "-c",
                CRASH,
                str(tmp_path / backup),
                str(tmp_path / f"{name}.npz"),
                str(tmp_path / f"{name}.log"),
                resume,
                str(examples),
            ],
            capture_output=True,
            text=True,
            timeout=600,
            env=env,
        )

    whole = train("whole", "backup_whole")
    assert whole.returncode == 0, whole.stderr[-2000:]
    killed = train("resumed", "backup", kill_at=2)
    assert killed.returncode == -9  # SIGKILL, in epoch 2 after 4 batches
    resumed = train("resumed", "backup")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    # No finished epoch repeated or lost: the killed epoch 2 starts again.
    assert (tmp_path / "resumed.log").read_text().split("\n")[:-1] == [
        "begin 0",
        "end 0",
        "begin 1",
        "end 1",
        "begin 2",
        "begin 2",
        "end 2",
        "begin 3",
        "end 3",
    ]
    a = np.load(tmp_path / "whole.npz")
    b = np.load(tmp_path / "resumed.npz")
    # Every variable, the controllers' sampling streams (saved with the
    # weights), the estimator's critic and reward average, the cost weight
    # and the optimizer's moments included, equals the uninterrupted run's.
    assert a.files == b.files
    paths = a["paths"]
    assert len(paths) > 50
    assert any("adam" in path for path in paths)
    for index, path in enumerate(paths):
        np.testing.assert_array_equal(
            a[f"arr_{index}"], b[f"arr_{index}"], err_msg=path
        )


def test_seed_streams_are_saved_with_the_weights(tmp_path):
    from keras_d2nn import architectures

    model = architectures.high_low(gate_input="features")
    controller = model.plan.nodes["gate"].layer
    for _ in range(3):
        controller.seed_generator.next()
        model.routing_seed.next()
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(
        loaded.plan.nodes["gate"].layer.seed_generator.state.numpy(),
        controller.seed_generator.state.numpy(),
    )
    np.testing.assert_array_equal(
        loaded.routing_seed.state.numpy(), model.routing_seed.state.numpy()
    )
