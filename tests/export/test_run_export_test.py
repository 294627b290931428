"""`keras_d2nn.testing.run_export_test`: exports that agree pass and are
returned; one that disagrees fails naming the format, the output and the
largest difference."""

import inspect
import os
import re

import keras
import numpy as np
import pytest

from keras_d2nn import D2NNModel
from keras_d2nn.export import runtime
from keras_d2nn.export import verify
from keras_d2nn.testing import EXPORT_FORMATS
from keras_d2nn.testing import assert_exports_agree
from keras_d2nn.testing import example_inputs
from keras_d2nn.testing import exports
from keras_d2nn.testing import random_graph
from keras_d2nn.testing import run_export_test
from keras_d2nn.testing import small_high_low
from keras_d2nn.testing import write_every_export


def test_the_docstring_example_runs_and_returns_each_export():
    (example,) = re.findall(
        r"```python\n(.*?)```",
        inspect.cleandoc(run_export_test.__doc__),
        flags=re.DOTALL,
    )
    namespace = {}
    keras.utils.set_random_seed(0)
    exec(example, namespace)
    model, runs = namespace["model"], namespace["runs"]
    assert set(runs) == {"saved_model", "onnx"}
    x = example_inputs(model)
    assert x.shape == (8, 6) and x.dtype == np.float32
    np.testing.assert_array_equal(x, example_inputs(model))  # deterministic
    want = verify.keras_outputs(model, x)
    for run in runs.values():
        assert isinstance(run.exported, runtime.ExportedModel)
        np.testing.assert_array_equal(
            run.outputs["decision_gate"], want["decision_gate"]
        )
    # The temporary files are gone; the loaded exports still run, and
    # examples holding NaN are flagged alike (ONNX; a SavedModel refuses
    # them).
    assert not any(os.path.exists(run.path) for run in runs.values())
    x[2, 0] = np.nan
    outputs = assert_exports_agree(model, {"onnx": runs["onnx"].exported}, x)[
        "onnx"
    ].outputs
    np.testing.assert_array_equal(
        outputs["valid"], [True, True, False] + [True] * 5
    )


def test_a_disagreeing_export_names_format_output_and_difference(tmp_path):
    keras.utils.set_random_seed(0)
    model = small_high_low()
    runs = run_export_test(model, "saved_model", directory=tmp_path)
    path = runs["saved_model"].path
    assert path.startswith(str(tmp_path)) and os.path.exists(path)
    x = example_inputs(model)
    decisions = runs["saved_model"].outputs["decision_gate"]
    assert set(decisions) == {0, 1}, "both branches should be taken"
    # The high network's output bias moves: the examples it answers move.
    bias = model.plan.nodes["high"].layer.layers[-1].bias
    bias.assign(bias + np.arange(3, dtype="float32"))
    with pytest.raises(AssertionError) as error:
        assert_exports_agree(model, {"saved_model": path}, x)
    message = str(error.value)
    assert message.startswith(
        f"saved_model export ({path}) disagrees with Keras on 8 examples:"
    )
    high = int((decisions == 1).sum())
    found = re.search(
        r"`logits` differs beyond tolerance 0.0001 \+ "
        rf"1e-05 \* \|Keras\| on {high} of 8 examples: "
        r"largest difference 2 \(example (\d)\)",
        message,
    )
    assert found and decisions[int(found.group(1))] == 1, message
    assert "`probabilities` differs beyond tolerance" in message
    assert "decision" not in message and "executed_flops" not in message
    # The gate now runs the high network for every example.
    gate = model.plan.nodes["gate"].layer.network.layers[-1].bias
    gate.assign([-100.0, 100.0])
    with pytest.raises(AssertionError) as error:
        assert_exports_agree(model, {"saved_model": path}, x)
    message = str(error.value)
    stopped = 8 - high
    first = int(np.argmax(decisions == 0))
    assert (
        f"decisions of controller `gate` (`decision_gate`) differ on "
        f"{stopped} of 8 examples: largest difference 1 (first: example "
        f"{first}, Keras 1, export 0)"
    ) in message
    assert (
        f"`executed_flops` differs on {stopped} of 8 examples: largest "
        f"difference {model.plan.flops['high']:g}"
    ) in message


def serving_dict(probabilities):
    """A serving dict of `probabilities` (float64), every example valid,
    decided and costed alike."""
    probabilities = np.asarray(probabilities, np.float64)
    n = len(probabilities)
    return {
        "probabilities": probabilities,
        "valid": np.ones(n, bool),
        "decision_gate": np.zeros(n, np.int32),
        "executed_flops": np.full(n, 100, np.int64),
    }


def test_a_top1_swap_within_the_tolerance_is_no_disagreement():
    # Keras's top two probabilities 1.5 atol apart: an export that moves
    # each by 0.9 atol (within tolerance) ranks them the other way round.
    # Every output agrees within tolerance, so the export agrees.
    atol, rtol = 1e-4, 0.0
    want = serving_dict([[0.5 + 0.75e-4, 0.5 - 0.75e-4], [0.9, 0.1]])
    got = serving_dict([[0.5 - 0.15e-4, 0.5 + 0.15e-4], [0.9, 0.1]])
    assert verify._predictions(want)[0] != verify._predictions(got)[0]
    assert exports._disagreements(want, got, atol, rtol) == []
    # Random near ties, each probability moved by up to its tolerance:
    # some top-1 classes swap, none is a disagreement.
    rng = np.random.default_rng(0)
    atol, rtol = verify.PROBABILITY_TOLERANCE, 1e-5
    first = rng.uniform(0.3, 0.5, 200)
    gap = rng.uniform(0, 2 * atol, 200)
    want = serving_dict(
        np.stack([first, first - gap, 1 - 2 * first + gap], axis=1)
    )
    tolerance = atol + rtol * want["probabilities"]
    got = serving_dict(
        want["probabilities"] + 0.999 * tolerance * rng.uniform(-1, 1, (200, 3))
    )
    swapped = verify._predictions(want) != verify._predictions(got)
    assert swapped.sum() > 20
    assert exports._disagreements(want, got, atol, rtol) == []


def test_a_top1_swap_beyond_the_tolerance_is_a_disagreement():
    atol, rtol = 1e-4, 1e-5
    # Example 1: top two 3e-4 apart, beyond the 2.1e-4 both tolerances
    # allow; example 2: a clear winner swapped.
    want = serving_dict([[0.9, 0.1], [0.5 + 1.5e-4, 0.5 - 1.5e-4], [0.8, 0.2]])
    got = serving_dict([[0.9, 0.1], [0.5 - 1.5e-4, 0.5 + 1.5e-4], [0.2, 0.8]])
    problems = exports._disagreements(want, got, atol, rtol)
    assert problems[0] == (
        "top-1 predictions differ on 2 of 3 examples whose top-2 "
        "probabilities are further apart than the tolerance (first: "
        "example 1, Keras class 0, export class 1)"
    )
    assert problems[1].startswith(
        "`probabilities` differs beyond tolerance 0.0001 + 1e-05 * |Keras| "
        "on 2 of 3 examples: largest difference 0.6"
    )
    assert len(problems) == 2


def test_bad_arguments_are_refused(tmp_path):
    model = small_high_low()
    for formats in ("tflite", (), ("onnx", "litert_int8")):
        with pytest.raises(
            ValueError, match="`formats` should name at least one of"
        ):
            run_export_test(model, formats)
    with pytest.raises(ValueError, match="at least one export"):
        assert_exports_agree(model, {})
    with pytest.raises(ValueError, match="at least one example"):
        assert_exports_agree(
            model, {"onnx": tmp_path / "m.onnx"}, np.zeros((0, 6), "float32")
        )
    quantised = runtime.ExportedModel(
        tmp_path / "q.tflite",
        "litert",
        lambda x: {},
        "x",
        (6,),
        1,
        quantized=True,
    )
    with pytest.raises(
        ValueError, match="quantised: it is not expected to agree exactly"
    ):
        assert_exports_agree(model, {"litert_int8": quantised})


def test_write_every_export_writes_the_formats_asked_for(tmp_path):
    paths = write_every_export(small_high_low(), tmp_path, "saved_model")
    assert list(paths) == ["saved_model"]
    assert exports.EXPORT_FORMATS == (
        "saved_model",
        "litert",
        "litert_batched",
        "onnx",
    )


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 4, 5])
def test_random_graphs_export_and_agree(seed):
    # Nested controllers of 2-3 actions, dummies, Add merges with
    # defaults: 2, 6 and 1 controllers; up to a minute each on 2 cores.
    keras.utils.set_random_seed(seed)
    model = D2NNModel(random_graph(seed))
    assert model.plan.controllers
    run_export_test(model, EXPORT_FORMATS)
