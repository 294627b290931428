"""Every export format of a model, written side by side for a test, and
the test that each agrees with the Keras model.

- `write_every_export`: the float exports a test compares with Keras
  (SavedModel, LiteRT at batch 1 and at any batch, ONNX);
- `assert_exports_agree`: runs exports (paths or loaded) on the same
  inputs as the Keras model and raises an AssertionError naming the
  format, the output and the largest difference where they disagree;
- `run_export_test`: both, for a model: write, load, run, compare.

The Keras side is the model's serving function run by TensorFlow itself
(`keras_d2nn.export.verify.keras_outputs`, eagerly), and top-1
predictions and the flagging of non-finite examples are read as `verify`
reads them.
"""

import contextlib
import pathlib
import tempfile
import typing

import numpy as np

from keras_d2nn.export import runtime
from keras_d2nn.export import serving
from keras_d2nn.export import verify

# Name -> writer of that export in a directory: what `write_every_export`
# writes and `run_export_test` takes as `formats`.
_WRITERS = {
    "saved_model": lambda model, directory: serving.export_saved_model(
        model, directory / "sm"
    ),
    # Batch 1: one `tf.cond` per conditional node.
    "litert": lambda model, directory: serving.export_litert(
        model, directory / "one.tflite"
    ),
    # Any batch: gather/scatter routing.
    "litert_batched": lambda model, directory: serving.export_litert(
        model, directory / "any.tflite", batch_size=None
    ),
    "onnx": lambda model, directory: serving.export_onnx(
        model, directory / "m.onnx"
    ),
}
EXPORT_FORMATS = tuple(_WRITERS)
DEFAULT_FORMATS = ("saved_model", "litert", "onnx")
# Executed FLOPs are integers summed in int64 on both sides: equal.
FLOPS = "executed_flops"


class ExportRun(typing.NamedTuple):
    """One export as `assert_exports_agree` ran it.

    Attributes:
        path: where the export was written (gone after `run_export_test`
            unless it was given a `directory`).
        exported: the loaded `keras_d2nn.export.ExportedModel` (usable
            after its files are gone: each runtime holds it in memory).
        outputs: its serving dict on the inputs, as NumPy arrays.

    Example:

    ```python
    # slow
    from keras_d2nn.testing import run_export_test

    run = run_export_test(model, formats=["onnx"])["onnx"]
    run.outputs["decision_gate"], run.exported.format
    ```
    """

    path: str
    exported: runtime.ExportedModel
    outputs: dict


def _check_formats(formats):
    formats = (formats,) if isinstance(formats, str) else tuple(formats)
    unknown = [f for f in formats if f not in _WRITERS]
    if unknown or not formats:
        raise ValueError(
            f"`formats` should name at least one of {EXPORT_FORMATS}. "
            f"Received: formats={formats!r}"
        )
    return formats


def write_every_export(model, directory, formats=EXPORT_FORMATS):
    """Writes `model` in each format a test compares with Keras.

    Returns `{format: path}` for `keras_d2nn.export.load_exported`, for
    the `formats` asked for among `"saved_model"`, `"litert"` (batch 1),
    `"litert_batched"` (any batch) and `"onnx"` (default: all four).

    Example:

    ```python
    # slow
    from keras_d2nn.export import load_exported
    from keras_d2nn.testing import write_every_export

    paths = write_every_export(model, "exports", formats=["litert"])
    load_exported(paths["litert"]).run(images)["probabilities"].shape
    ```
    """
    directory = pathlib.Path(directory)
    return {
        name: _WRITERS[name](model, directory)
        for name in _check_formats(formats)
    }


def example_inputs(model, n=8, seed=0):
    """A deterministic batch of `n` inputs for `model`'s single input, of
    the shape and dtype its exports declare: uniform floats in [0, 1),
    integers in [0, 10) (small token ids) or random bools.

    Example:

    ```python
    from keras_d2nn.testing import example_inputs

    example_inputs(keras_d2nn.architectures.cascade()).shape  # (8, 28, 28, 1)
    ```
    """
    (spec,) = serving.input_signature(model)  # one input, known shape
    shape = (n,) + tuple(spec.shape[1:])
    rng = np.random.default_rng(seed)
    if spec.dtype.is_floating:
        values = rng.random(shape)
    elif spec.dtype.is_bool:
        values = rng.random(shape) < 0.5
    else:
        values = rng.integers(0, 10, shape)
    return values.astype(spec.dtype.as_numpy_dtype)


def _keras_outputs(model, inputs, batch_size=256):
    """`verify.keras_outputs(model, inputs)`, run eagerly: the same
    serving function, in batches, as NumPy. `keras_outputs` traces it
    into a new `tf.function` at each call, which takes 0.5-6 s for the
    architectures; a test's few examples run eagerly in well under one.
    """
    serve = serving.serving_function(model)
    parts = [
        {k: np.asarray(v) for k, v in serve(inputs[i : i + batch_size]).items()}
        for i in range(0, len(inputs), batch_size)
    ]
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


def _tolerance_text(atol, rtol):
    return f"tolerance {atol:g} + {rtol:g} * |Keras|"


def _first(mask):
    """The first index where `mask` (per example) is True."""
    return int(np.flatnonzero(mask)[0])


def _per_example(mask):
    """`mask` reduced to one bool per example (any along the others)."""
    mask = np.asarray(mask)
    return mask.reshape(len(mask), -1).any(axis=1) if mask.ndim > 1 else mask


def _near_tie(probabilities, atol, rtol):
    """Per example: whether Keras's two highest probabilities are within
    the tolerance of each other, `p1 - p2 <= (atol + rtol * p1) + (atol +
    rtol * p2)`. An export whose every probability is within tolerance
    may then rank them the other way round (untrained models have top-2
    gaps down to 3e-7, exports differ by 5e-8): such a swap of the top-1
    class is numeric noise, not a disagreement. Examples with fewer than
    two classes, or NaN (flagged invalid), are never near a tie."""
    p = np.asarray(probabilities, np.float64)
    if p.ndim != 2 or p.shape[1] < 2:
        return np.zeros(len(p), bool)
    top2 = -np.sort(-p, axis=-1)[:, :2]
    tolerance = 2 * atol + rtol * np.abs(top2).sum(axis=-1)
    gap = top2[:, 0] - top2[:, 1]
    return np.isfinite(top2).all(axis=-1) & (gap <= tolerance)


def _disagreements(want, got, atol, rtol):
    """Lines naming each output of `got` that disagrees with `want` (both
    serving dicts on the same inputs), with its largest difference."""
    problems = []
    missing = sorted(set(want) - set(got))
    unexpected = sorted(set(got) - set(want))
    if missing or unexpected:
        problems.append(
            f"outputs differ: missing {missing}, unexpected "
            f"{unexpected} (Keras has {sorted(want)})"
        )
    keys = sorted(set(want) & set(got))
    for key in keys:
        if np.shape(got[key]) != np.shape(want[key]):
            problems.append(
                f"`{key}` has shape {np.shape(got[key])}, "
                f"Keras {np.shape(want[key])}"
            )
    if problems:
        return problems
    n = len(want[keys[0]])
    # Examples holding NaN or Inf must be flagged alike (`valid` False,
    # decisions -1 and NaN floats on both sides).
    valid = verify._valid(want)
    flagged = valid != verify._valid(got)
    if flagged.any():
        i = _first(flagged)
        problems.append(
            f"`valid` (finite input) differs on {flagged.sum()} of {n} "
            f"examples (first: example {i}, Keras {valid[i]})"
        )
        return problems
    if "probabilities" in want:
        top1 = (
            verify._predictions(want) != verify._predictions(got)
        ) & ~_near_tie(want["probabilities"], atol, rtol)
        if top1.any():
            i = _first(top1)
            problems.append(
                f"top-1 predictions differ on {top1.sum()} of {n} examples "
                "whose top-2 probabilities are further apart than the "
                f"tolerance (first: example {i}, Keras class "
                f"{verify._predictions(want)[i]}, export class "
                f"{verify._predictions(got)[i]})"
            )
    for key in keys:
        expected, actual = np.asarray(want[key]), np.asarray(got[key])
        if key == "valid":
            continue
        if (
            key.startswith("decision_")
            or key == FLOPS
            or expected.dtype.kind not in "fc"
        ):
            differ = _per_example(expected != actual)
            if differ.any():
                i = _first(differ)
                what = (
                    f"decisions of controller `{key[len('decision_') :]}`"
                    f" (`{key}`) differ"
                    if key.startswith("decision_")
                    else f"`{key}` differs"
                )
                difference = np.abs(
                    expected.astype(np.float64) - actual.astype(np.float64)
                ).max()
                problems.append(
                    f"{what} on {differ.sum()} of {n} examples: "
                    f"largest difference {difference:g} (first: example "
                    f"{i}, Keras {expected[i].tolist()}, export "
                    f"{actual[i].tolist()})"
                )
            continue
        # Float outputs: within tolerance on the valid examples (the
        # flagged ones hold NaN on both sides); NaN on one side only fails.
        expected, actual = expected[valid], actual[valid]
        difference = np.abs(
            expected.astype(np.float64) - actual.astype(np.float64)
        )
        both_nan = np.isnan(expected) & np.isnan(actual)
        difference = np.where(
            both_nan, 0.0, np.where(np.isnan(difference), np.inf, difference)
        )
        bad = _per_example(
            difference > atol + rtol * np.abs(np.nan_to_num(expected))
        )
        if bad.any():
            worst = difference.reshape(len(difference), -1).max(axis=1)
            i = int(np.argmax(worst))
            problems.append(
                f"`{key}` differs beyond {_tolerance_text(atol, rtol)} on "
                f"{bad.sum()} of {n} examples: largest difference "
                f"{worst[i]:.3g}"
                f"{' (NaN on one side only)' if worst[i] == np.inf else ''}"
                f" (example {int(np.flatnonzero(valid)[i])})"
            )
    return problems


def assert_exports_agree(
    model, exports, inputs=None, atol=verify.PROBABILITY_TOLERANCE, rtol=1e-5
):
    """Runs each export on `inputs` and asserts it agrees with `model`.

    Agreement, output by output of the serving dict
    (`keras_d2nn.export.serving_function`): the same outputs and shapes;
    the same examples flagged as non-finite (`valid`), and on the others:
    the same top-1 predictions (except where Keras's top two
    probabilities are within the tolerance of each other: a near tie the
    export may break the other way), the same decision of every
    controller (`decision_<controller>`), the same `executed_flops` and
    every float output (`probabilities`, `logits`, ...) within
    `atol + rtol * |Keras|`.

    Args:
        model: the `keras_d2nn.D2NNModel` the exports were written from.
        exports: `{format name: path or loaded ExportedModel}` (e.g. the
            result of `write_every_export`); float exports only (a
            quantised one cannot agree exactly: use
            `keras_d2nn.export.verify.verify` for its figures).
        inputs: a batch for the model's input (default:
            `example_inputs(model)`); float inputs are converted to the
            model's input dtype.
        atol, rtol: tolerance of the float outputs.

    Returns:
        `{format name: ExportRun(path, exported, outputs)}`.

    Raises:
        AssertionError: naming every format that disagrees, each output
            that does and its largest difference.

    Example:

    ```python
    # slow
    from keras_d2nn.testing import assert_exports_agree, write_every_export

    paths = write_every_export(model, "exports", formats=("onnx",))
    runs = assert_exports_agree(model, paths, images)
    runs["onnx"].outputs["decision_gate"]
    ```
    """
    (spec,) = serving.input_signature(model)
    inputs = example_inputs(model) if inputs is None else np.asarray(inputs)
    if inputs.dtype.kind == "f" and spec.dtype.is_floating:
        inputs = inputs.astype(spec.dtype.as_numpy_dtype)
    if not exports:
        raise ValueError("`exports` should name at least one export.")
    if inputs.ndim == 0 or len(inputs) == 0:
        raise ValueError(
            "`inputs` should hold at least one example. "
            f"Received an array of shape {inputs.shape}."
        )
    want = _keras_outputs(model, inputs)
    runs, failures = {}, []
    for name, export in exports.items():
        exported = (
            export
            if isinstance(export, runtime.ExportedModel)
            else runtime.load_exported(export)
        )
        if exported.quantized:
            raise ValueError(
                f"The {name} export {exported.path} is quantised: it is not "
                "expected to agree exactly. Use "
                "keras_d2nn.export.verify.verify for its agreement figures."
            )
        got = exported.run(inputs)
        runs[name] = ExportRun(exported.path, exported, got)
        problems = _disagreements(want, got, atol, rtol)
        if problems:
            failures.append(
                f"{name} export ({exported.path}) disagrees with Keras on "
                f"{len(inputs)} examples:\n"
                + "\n".join(f"  {p}" for p in problems)
            )
    if failures:
        raise AssertionError("\n".join(failures))
    return runs


def run_export_test(
    model,
    formats=DEFAULT_FORMATS,
    inputs=None,
    directory=None,
    atol=verify.PROBABILITY_TOLERANCE,
    rtol=1e-5,
):
    """Exports `model` in `formats` and asserts each agrees with Keras.

    Writes the exports (`write_every_export`) to `directory` (default: a
    temporary directory, removed on return), loads each with
    `keras_d2nn.export.load_exported`, runs it on `inputs` and compares it
    with the Keras model (`assert_exports_agree`): the same top-1
    predictions (but near ties), controller decisions, executed FLOPs
    and flags of non-finite examples, and every float output within
    `atol + rtol * |Keras|`.

    Args:
        model: a `keras_d2nn.D2NNModel` with one input.
        formats: among `"saved_model"`, `"litert"` (batch 1, fed one
            example at a time), `"litert_batched"` (any batch) and
            `"onnx"`. Each LiteRT or ONNX conversion takes seconds.
        inputs: a batch for the model's input (default: 8 deterministic
            random examples of its shape and dtype, `example_inputs`).
            Real data makes the controllers take more varied decisions.
        directory: where to write the exports, kept (for tests that
            inspect the files).
        atol, rtol: tolerance of the float outputs.

    Returns:
        `{format: ExportRun(path, exported, outputs)}`, for more
        assertions on an export (`outputs` is its serving dict on the
        inputs; `exported` stays usable once the files are removed).

    Raises:
        AssertionError: naming every format that disagrees, each output
            that does and its largest difference.

    Example:

    ```python
    from keras_d2nn.testing import run_export_test, small_high_low

    model = small_high_low()
    runs = run_export_test(model, formats=("saved_model", "onnx"))
    runs["onnx"].outputs["decision_gate"]  # the ONNX model's decisions
    ```
    """
    formats = _check_formats(formats)
    if directory is not None:
        context = contextlib.nullcontext(directory)
    else:
        context = tempfile.TemporaryDirectory(prefix="export_test_")
    with context as path:
        paths = write_every_export(model, path, formats)
        return assert_exports_agree(model, paths, inputs, atol, rtol)
