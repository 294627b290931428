"""Training under tf.distribute.MirroredStrategy (two logical CPUs).

Logical devices must be configured before TensorFlow starts, so the run
happens in a fresh process.
"""

import json
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import json, keras, numpy as np, keras_d2nn
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 6)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    with strategy.scope():
        low = keras.Sequential([keras.Input((6,)),
                                keras.layers.Dense(8, activation="relu")])
        high = keras.Sequential([keras.Input((6,)),
                                 keras.layers.Dense(32, activation="relu"),
                                 keras.layers.Dense(2)])
        model = keras_d2nn.architectures.high_low(
            input_shape=(6,), num_classes=2, low_network=low,
            high_network=high)
        model.compile("adam", keras.losses.SparseCategoricalCrossentropy(
            from_logits=True), cost_weight=0.2)
    history = model.fit(x, y, epochs=2, batch_size=64, verbose=0)
    print(json.dumps({"replicas": strategy.num_replicas_in_sync,
                      "history": history.history,
                      "updates": float(model.policy.updates.numpy())}))
""")


def test_trains_under_mirrored_strategy():
    result = subprocess.run([sys.executable, "-c", SCRIPT],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["replicas"] == 2
    history = report["history"]
    for key in ("loss", "cost", "gate_stop", "gate_high"):
        assert all(v == v for v in history[key]), key  # no NaN
    # 256 examples / 64 per global batch = 4 steps per epoch, 2 epochs.
    assert report["updates"] == 8.0
