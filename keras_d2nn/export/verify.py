"""Checking that an exported D2NN agrees with its Keras model on real data.

`verify(model, exported, images, labels)` runs both on the same images and
returns the agreement of top-1 predictions and of every controller
decision, the largest probability difference, and each side's accuracy
and mean executed FLOPs. Float exports must agree exactly on predictions
and decisions and within `PROBABILITY_TOLERANCE` on probabilities;
quantised ones (LiteRT float16/int8) report their figures.

Images holding NaN or Inf are flagged (`valid` False, NaN probabilities)
by the Keras side and by LiteRT and ONNX exports: both sides must flag
the same images, and predictions and probabilities are compared on the
others. A SavedModel refuses such images (ValueError).
"""

import numpy as np
import tensorflow as tf

from keras_d2nn.export import runtime
from keras_d2nn.export import serving

PROBABILITY_TOLERANCE = 1e-4


def keras_outputs(model, images, batch_size=256):
    """The serving dict of the Keras model itself, as NumPy, in batches.

    Example: `keras_outputs(model, x_test)["decision_gate"]`.
    """
    serve = tf.function(serving.serving_function(model), reduce_retracing=True)
    return runtime.in_batches(
        lambda batch: {
            k: v.numpy() for k, v in serve(tf.constant(batch)).items()
        },
        images,
        batch_size,
    )


def _valid(outputs):
    """Which examples the outputs answer for (exports older than the
    `valid` output: those with finite probabilities)."""
    if "valid" in outputs:
        return np.asarray(outputs["valid"], bool)
    return np.isfinite(outputs["probabilities"]).all(-1)


def _predictions(outputs):
    """Top-1 classes, -1 for the examples flagged invalid."""
    return np.where(
        _valid(outputs),
        np.argmax(np.nan_to_num(outputs["probabilities"]), -1),
        -1,
    )


def _summary(outputs, labels, full_flops):
    flops = outputs["executed_flops"].astype(np.float64)
    return {
        "accuracy": None
        if labels is None
        else float(np.mean(_predictions(outputs) == labels)),
        "mean_flops": float(flops.mean()),
        "mean_flop_fraction": float(flops.mean() / full_flops),
    }


def verify(model, exported, images, labels=None, batch_size=256):
    """Agreement report of `exported` (an `ExportedModel`) against `model`.

    Returns a JSON-able dict: `n`, `format`, `quantized`,
    `top1_agreement`, `decision_agreement` (`{controller: fraction}`),
    `invalid_images` (holding NaN or Inf, flagged by Keras),
    `valid_agreement` (the fraction of images both sides flag alike),
    `max_abs_probability_difference` (over the images both answer),
    `keras` and `exported` (each with `accuracy`, counting flagged images
    as wrong, None without `labels`; `mean_flops`, `mean_flop_fraction`)
    and `passed`: for a
    float export, whether predictions, decisions and flags agree on every
    image and probabilities within `PROBABILITY_TOLERANCE`; None when
    quantised.

    Example:

    ```python
    from keras_d2nn.export.verify import verify

    path = keras_d2nn.export.export_saved_model(model, "exported/1")
    exported = keras_d2nn.export.load_exported(path)
    report = verify(model, exported, test_images, test_labels)
    report["top1_agreement"], report["passed"]  # 1.0, True
    ```
    """
    images = np.asarray(images)
    # float64 arrays as the export's floats; any other mismatch (floats
    # for int32 ids, say) is refused by `exported.run`, not truncated.
    if images.dtype.kind == "f" and exported.input_dtype.kind == "f":
        images = images.astype(exported.input_dtype)
    if images.ndim == 0 or len(images) == 0:
        raise ValueError("verify needs at least one example; received none.")
    if labels is not None:
        labels = np.asarray(labels).reshape(-1)
        if len(images) != len(labels):
            raise ValueError(
                f"verify needs as many labels as examples; received "
                f"{len(images)} examples and {len(labels)} labels."
            )
    want = keras_outputs(model, images, batch_size)
    got = exported.run(images, batch_size)
    if "probabilities" not in got:
        raise ValueError(
            f"{exported.path} has no `probabilities` output (outputs: "
            f"{sorted(got)}); was it written by keras_d2nn.export?"
        )
    decisions = sorted(k for k in want if k.startswith("decision_"))
    missing = [k for k in decisions if k not in got]
    if missing:
        raise ValueError(
            f"{exported.path} lacks the outputs {missing} of this model: "
            "was it exported from a different model?"
        )
    full = model.plan.full_flops
    top1 = _predictions(want) == _predictions(got)
    agreement = {
        k[len("decision_") :]: float(np.mean(want[k] == got[k]))
        for k in decisions
    }
    valid = _valid(want)
    valid_agreement = float(np.mean(valid == _valid(got)))
    both = valid & _valid(got)
    difference = float(
        np.max(
            np.abs(want["probabilities"][both] - got["probabilities"][both]),
            initial=0.0,
        )
    )
    passed = None
    if not exported.quantized:
        passed = bool(
            top1.all()
            and all(v == 1.0 for v in agreement.values())
            and valid_agreement == 1.0
            and difference <= PROBABILITY_TOLERANCE
        )
    return {
        "n": int(len(images)),
        "format": exported.format,
        "path": exported.path,
        "quantized": exported.quantized,
        "top1_agreement": float(top1.mean()),
        "decision_agreement": agreement,
        "invalid_images": int((~valid).sum()),
        "valid_agreement": valid_agreement,
        "max_abs_probability_difference": difference,
        "keras": _summary(want, labels, full),
        "exported": _summary(got, labels, full),
        "passed": passed,
    }


def format_report(report):
    """The verify report as a few aligned lines for people.

    Example: `print(format_report(verify(...)))`.
    """
    lines = [
        f"{report['format']} export {report['path']}"
        f"{' (quantised)' if report['quantized'] else ''} vs Keras, "
        f"{report['n']} examples",
        f"  top-1 agreement        {report['top1_agreement']:.4f}",
    ]
    for q, value in report["decision_agreement"].items():
        lines.append(f"  decisions of {q:<9} {value:.4f}")
    if report.get("invalid_images"):
        lines.append(
            f"  invalid (NaN/Inf/out of range) {report['invalid_images']}"
            f" (flagged alike: {report['valid_agreement']:.4f})"
        )
    lines.append(
        f"  max |d probability|    "
        f"{report['max_abs_probability_difference']:.2e}"
    )
    for side in ("keras", "exported"):
        s = report[side]
        accuracy = "n/a" if s["accuracy"] is None else f"{s['accuracy']:.4f}"
        lines.append(
            f"  {side:<9} accuracy {accuracy}, mean FLOPs "
            f"{s['mean_flops']:,.0f} ({s['mean_flop_fraction']:.3f}"
            " of the full network)"
        )
    verdict = {
        True: "PASSED: agrees on every example",
        False: "FAILED: a float export must agree on every image "
        f"(probabilities within {PROBABILITY_TOLERANCE})",
        None: "quantised: figures reported, exact agreement not required",
    }[report["passed"]]
    lines.append(f"  {verdict}")
    return "\n".join(lines)
