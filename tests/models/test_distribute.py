"""Training under tf.distribute: several devices train as one device does.

Logical devices and TF_CONFIG must be set before TensorFlow starts, so
the distributed runs happen in fresh processes.
"""

import json
import os
import socket
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from keras_d2nn import architectures
from keras_d2nn import schedules
from keras_d2nn.testing import shape_images


def training_images(n=256):
    """`(x, y)`: `n` images of one to three rectangles of random brightness
    on black (garments on Fashion-MNIST's black background), and random
    labels of 10 classes."""
    return shape_images(n, labels=True)


def write_training_images(path):
    """`training_images()` in `path` (.npz), for a fresh process."""
    x, y = training_images()
    np.savez(path, x=x, y=y)
    return str(path)


# Trains the default high-low D2NN with each estimator on one device and on
# two (MirroredStrategy over two logical CPUs), from the same seed and on
# the same global batches (of the examples in argv[1]), and reports how far
# apart they end.
MIRRORED = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras, numpy as np, keras_d2nn
    from keras_d2nn import architectures, schedules

    x, y = np.load(sys.argv[1])["x"], np.load(sys.argv[1])["y"]
    ESTIMATORS = {
        "reinforce_value": lambda: None,  # the default
        "reinforce_moving_average_normalized": lambda: keras_d2nn.Reinforce(
            baseline="moving_average", normalize_advantage=True),
        "q_learning": lambda: keras_d2nn.QLearning(),
        "gumbel": lambda: keras_d2nn.GumbelSoftmax(),
        "reinforce_value_budget": lambda: None,
    }
    # The multiplier moves in each step from the global batch's cost: a
    # budget under the untrained gate's cost, so that it rises.
    COMPILE = {
        "reinforce_value_budget": dict(
            target_cost=0.01, budget_learning_rate=0.05),
    }
    # One strategy object for all runs: collective keys of a second
    # MirroredStrategy in the same process clash with the first's.
    two = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    one = tf.distribute.OneDeviceStrategy("/cpu:0")

    def train(strategy, estimator):
        keras.utils.set_random_seed(0)
        with strategy.scope():
            model = architectures.high_low(gate_input="features")
            model.compile("adam", keras.losses.SparseCategoricalCrossentropy(
                from_logits=True),
                estimator=ESTIMATORS[estimator](),
                **COMPILE.get(estimator, dict(cost_weight=0.1)))
        history = model.fit(x, y, epochs=2, batch_size=64, shuffle=False,
                            verbose=0, callbacks=[schedules.WarmUp(1)])
        return model, history.history

    report = {}
    for name in sys.argv[2:]:
        a, history_a = train(one, name)
        b, history_b = train(two, name)
        report[name] = {
            "replicas": two.num_replicas_in_sync,
            "max_weight_diff": max(
                float(np.max(np.abs(p.numpy() - q.numpy())))
                for p, q in zip(a.weights, b.weights)),
            "weights": len(a.weights),
            "max_loss_diff": max(abs(p - q) for p, q in zip(
                history_a["loss"], history_b["loss"])),
            "rates": [history_a["gate_high"], history_b["gate_high"]],
            "cost_weights": [a.cost_weight, b.cost_weight],
            "decisions_agree": float(np.mean(
                a.route(x)["decisions"]["gate"]
                == b.route(x)["decisions"]["gate"])),
        }
    print(json.dumps(report))
""")


def check_two_devices_train_like_one(estimators, directory):
    examples = write_training_images(directory / "examples.npz")
    result = subprocess.run(
        [sys.executable, "-c", MIRRORED, examples, *estimators],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert sorted(report) == sorted(estimators)
    for name, figures in report.items():
        assert figures["replicas"] == 2
        assert figures["weights"] > 20
        # Exploration draws are slices of one global draw, and reward
        # statistics are global: the same decisions, hence the same steps
        # up to float summation order.
        assert figures["rates"][0] == figures["rates"][1], name
        assert figures["max_loss_diff"] < 1e-5, (name, figures)
        assert figures["max_weight_diff"] < 1e-4, (name, figures)
        assert figures["decisions_agree"] == 1.0, (name, figures)
        one, two = figures["cost_weights"]
        assert abs(one - two) < 1e-6, (name, figures)
        # The budget's multiplier rose from 0; the others stay at 0.1.
        assert one > 0 if "budget" in name else abs(one - 0.1) < 1e-6


# Over a minute of training: slow (runs on CI, not in a plain pytest).
@pytest.mark.slow
def test_two_devices_train_like_one_device_on_the_same_global_batch(tmp_path):
    # REINFORCE with each kind of batch statistic: the critic's, and the
    # global mean reward and advantage moments; and a budget's multiplier,
    # moved by the global batch's cost.
    check_two_devices_train_like_one(
        [
            "reinforce_value",
            "reinforce_moving_average_normalized",
            "reinforce_value_budget",
        ],
        tmp_path,
    )


@pytest.mark.slow
def test_two_devices_train_like_one_device_other_estimators(tmp_path):
    check_two_devices_train_like_one(["q_learning", "gumbel"], tmp_path)


# A worker of a two-worker cluster (TF_CONFIG) training on the examples
# of argv[2], saving its weights to argv[1].
WORKER = textwrap.dedent("""
    import json, sys
    import numpy as np, keras, tensorflow as tf
    from keras_d2nn import architectures, schedules

    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    x, y = np.load(sys.argv[2])["x"], np.load(sys.argv[2])["y"]
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = architectures.high_low(gate_input="features")
        model.compile("adam", keras.losses.SparseCategoricalCrossentropy(
            from_logits=True), metrics=["accuracy"], cost_weight=0.1)
    history = model.fit(x, y, epochs=2, batch_size=64, shuffle=False,
                        verbose=0, callbacks=[schedules.WarmUp(1)])
    evaluation = model.evaluate(x, y, batch_size=64, verbose=0,
                                return_dict=True)
    np.savez(sys.argv[1], *[w.numpy() for w in model.weights])
    print(json.dumps({"replicas": strategy.num_replicas_in_sync,
                      "loss": history.history["loss"],
                      "evaluation": evaluation}))
""")


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# Over half a minute of training: slow (runs on CI, not in a plain
# pytest).
@pytest.mark.slow
def test_two_workers_on_loopback_end_with_identical_weights(tmp_path):
    examples = write_training_images(tmp_path / "examples.npz")
    cluster = {"worker": [f"127.0.0.1:{_free_port()}" for _ in range(2)]}
    workers = []
    for index in range(2):
        env = dict(
            os.environ,
            TF_CONFIG=json.dumps(
                {"cluster": cluster, "task": {"type": "worker", "index": index}}
            ),
        )
        workers.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    WORKER,
                    str(tmp_path / f"w{index}.npz"),
                    examples,
                ],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    reports = []
    for worker in workers:
        out, err = worker.communicate(timeout=600)
        assert worker.returncode == 0, err[-3000:]
        reports.append(json.loads(out.strip().splitlines()[-1]))
    assert [r["replicas"] for r in reports] == [2, 2]
    assert reports[0] == reports[1]
    first, second = np.load(tmp_path / "w0.npz"), np.load(tmp_path / "w1.npz")
    assert len(first.files) > 20
    for key in first.files:
        np.testing.assert_array_equal(first[key], second[key], err_msg=key)

    # One process on one device, same seed and global batches, ends at the
    # same weights up to float summation order.
    x, y = training_images()
    keras.utils.set_random_seed(0)
    model = architectures.high_low(gate_input="features")
    model.compile(
        "adam",
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        cost_weight=0.1,
    )
    history = model.fit(
        x,
        y,
        epochs=2,
        batch_size=64,
        shuffle=False,
        verbose=0,
        callbacks=[schedules.WarmUp(1)],
    )
    np.testing.assert_allclose(
        history.history["loss"], reports[0]["loss"], atol=1e-5
    )
    for key, weight in zip(first.files, model.weights):
        np.testing.assert_allclose(
            first[key], weight.numpy(), atol=1e-4, err_msg=weight.path
        )
