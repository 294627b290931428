"""Routed D2NNs convert to LiteRT with builtin ops only and agree with TF."""

import numpy as np
import pytest
import tensorflow as tf

from keras_d2nn import architectures
from keras_d2nn.export import litert
from keras_d2nn.testing import HIGH
from keras_d2nn.testing import STOP
from keras_d2nn.testing import probe_inputs
from keras_d2nn.testing import probe_model


@pytest.fixture(scope="module")
def model():
    model = architectures.high_low()
    model(np.zeros((2, 28, 28, 1), "float32"))
    return model


def forced_fn(model):
    def run(images, gate):
        return model.trace(
            images, decisions={"gate": gate}, statistics=False
        ).outputs["logits"]

    return run


def run_litert(content, xnnpack, images, gate):
    runner = litert.interpreter(content, xnnpack=xnnpack).get_signature_runner()
    return next(iter(runner(images=images, gate=gate).values()))


def test_batch_of_one_with_xnnpack_agrees_on_each_forced_action(model):
    spec = [
        tf.TensorSpec([1, 28, 28, 1], tf.float32, name="images"),
        tf.TensorSpec([1], tf.int32, name="gate"),
    ]
    content = litert.convert([model], forced_fn(model), spec)
    images = np.random.default_rng(0).random((1, 28, 28, 1), "float32")
    for action in (0, 1):
        gate = np.array([action], np.int32)
        expected = forced_fn(model)(images, gate).numpy()
        np.testing.assert_allclose(
            run_litert(content, True, images, gate), expected, atol=1e-5
        )


def test_batch_of_one_with_xnnpack_runs_only_the_chosen_branch():
    # The probe fails the run if it is computed for the marked example:
    # forced to `stop`, the `high` branch must not run at all.
    probe = probe_model()
    spec = [
        tf.TensorSpec([1, 4], tf.float32, name="x"),
        tf.TensorSpec([1], tf.int32, name="gate"),
    ]

    def forced(x, gate):
        return probe.trace(
            x, decisions={"gate": gate}, statistics=False
        ).outputs["logits"]

    content = litert.convert([probe], forced, spec)
    runner = litert.interpreter(content, xnnpack=True).get_signature_runner()
    marked = probe_inputs([STOP])
    out = next(iter(runner(x=marked, gate=np.array([STOP], np.int32)).values()))
    np.testing.assert_allclose(out, forced(marked, [STOP]).numpy(), atol=1e-5)
    with pytest.raises(RuntimeError, match="gather index out of bounds"):
        runner(x=marked, gate=np.array([HIGH], np.int32))


@pytest.mark.parametrize("xnnpack", [True, False])
def test_batched_model_takes_any_batch_and_empty_branches(model, xnnpack):
    # XNNPACK, the default delegate, cannot prepare a zero-size tensor: the
    # branch no example takes ([0] * 5: "high") must not be handed one.
    spec = [
        tf.TensorSpec([None, 28, 28, 1], tf.float32, name="images"),
        tf.TensorSpec([None], tf.int32, name="gate"),
    ]
    content = litert.convert([model], forced_fn(model), spec)
    rng = np.random.default_rng(1)
    for gate in ([0] * 5, [1] * 3, [0, 1, 1, 0, 1, 0, 0], [0]):
        gate = np.array(gate, np.int32)
        images = rng.random((len(gate), 28, 28, 1), "float32")
        expected = forced_fn(model)(images, gate).numpy()
        np.testing.assert_allclose(
            run_litert(content, xnnpack, images, gate), expected, atol=1e-5
        )


def test_batched_model_takes_a_batch_of_no_example(model):
    # The builtin kernels (XNNPACK cannot prepare the zero-size input).
    spec = [
        tf.TensorSpec([None, 28, 28, 1], tf.float32, name="images"),
        tf.TensorSpec([None], tf.int32, name="gate"),
    ]
    content = litert.convert([model], forced_fn(model), spec)
    images = np.zeros((0, 28, 28, 1), "float32")
    out = run_litert(content, False, images, np.zeros([0], np.int32))
    assert out.shape == (0, 10)


def test_ops_needing_flex_are_refused_at_conversion(model):
    spec = [tf.TensorSpec([4, 28, 28, 1], tf.float32, name="images")]

    def partitioned(images):
        # dynamic_partition would need the Flex delegate on the phone.
        parts = tf.dynamic_partition(images, [0, 1, 0, 1], 2)
        return model(parts[0])

    with pytest.raises(ValueError, match="builtin ops only"):
        litert.convert([model], partitioned, spec)


def test_cascade_batched_model_converts_and_agrees():
    # Stage 3 reads stage 2's scattered output: its static shape must
    # survive conversion for the convolution to be a builtin.
    cascade = architectures.cascade()
    controllers = list(cascade.plan.controllers)

    def run(images, decisions):
        forced = {q: decisions[:, i] for i, q in enumerate(controllers)}
        return cascade.trace(
            images, decisions=forced, statistics=False
        ).outputs["logits"]

    spec = [
        tf.TensorSpec([None, 28, 28, 1], tf.float32, name="images"),
        tf.TensorSpec([None, 2], tf.int32, name="decisions"),
    ]
    content = litert.convert([cascade], run, spec)
    # The default interpreter (XNNPACK), with stages no example reaches.
    runner = litert.interpreter(content).get_signature_runner()
    images = np.random.default_rng(2).random((6, 28, 28, 1), "float32")
    for decisions in (
        [[0, 0], [1, 0], [1, 1], [0, 1], [1, 1], [0, 0]],
        [[0, 0]] * 6,
        [[1, 0]] * 6,
    ):
        decisions = np.array(decisions, np.int32)
        out = next(iter(runner(images=images, decisions=decisions).values()))
        np.testing.assert_allclose(
            out, run(images, decisions).numpy(), atol=1e-5
        )
