"""A bad request never kills the serving process, and exported models never
give a confident answer to an image holding NaN or Inf (issue 15).

Each runtime is driven from a fresh process that imports only the runtime
(TensorFlow, ai_edge_litert, onnxruntime), not keras_d2nn: a CHECK failure
inside a kernel aborts the process (exit 134), which only a subprocess can
observe. docs/serving_bad_requests.md tells what each request gets.
"""

import json
import subprocess
import sys
import warnings

import keras
import numpy as np
import onnx
import pytest

from keras_d2nn import architectures
from keras_d2nn import export
from keras_d2nn.export import runtime
from keras_d2nn.export import verify
from keras_d2nn.testing import assert_exports_agree
from keras_d2nn.testing import shape_images

EXPECTED_SHAPE = "should have shape (batch, 28, 28, 1)"

# name -> (shape, dtype); every one is refused, none may crash.
BAD_REQUESTS = {
    "rank 2": ((2, 3), "float32"),
    "rank 3": ((2, 28, 28), "float32"),
    "3 channels": ((2, 28, 28, 3), "float32"),
    "height 27": ((2, 27, 28, 1), "float32"),
    "rank 5": ((2, 28, 28, 1, 1), "float32"),
    "uint8": ((2, 28, 28, 1), "uint8"),
    "float64": ((2, 28, 28, 1), "float64"),
    "int32": ((2, 28, 28, 1), "int32"),
}

# A script of the runtime only: reads the requests, answers one JSON line
# {name: {"error": ..., "message": ...} | {"outputs": {...}}}.
PREAMBLE = """
import json, sys
import numpy as np
requests = dict(np.load(sys.argv[1]))
results = {}
def record(name, run, key=None):
    try:
        outputs = run(requests[name])
        results[key or name] = {"outputs": {k: np.asarray(v).tolist()
                                            for k, v in outputs.items()}}
    except Exception as error:
        results[key or name] = {"error": type(error).__name__,
                                "message": str(error)}
"""
EPILOGUE = """
assert "keras_d2nn" not in sys.modules
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    model = architectures.high_low(gate_input="features")
    model(np.zeros((1, 28, 28, 1), "float32"))
    return model


def top2_gap(probabilities):
    top2 = -np.sort(-np.asarray(probabilities, np.float64), axis=-1)[:, :2]
    return top2[:, 0] - top2[:, 1]


@pytest.fixture(scope="module")
def good(model):
    """Synthetic images, three taking each branch (both convolutions run),
    each with a clear top class: Keras's two highest probabilities further
    apart than `verify`'s tolerance, so that no export within it may rank
    them the other way."""
    images = shape_images(200)
    want = expected(model, images)
    clear = top2_gap(want["probabilities"]) > verify.PROBABILITY_TOLERANCE
    decisions = want["decision_gate"]
    picked = np.concatenate(
        [images[clear & (decisions == action)][:3] for action in (0, 1)]
    )
    assert len(picked) == 6, "the untrained gate should take both actions"
    return picked


@pytest.fixture(scope="module")
def with_bad_rows(good):
    """`good` with an all-NaN image at 1 and an image with one Inf at 4."""
    images = good.copy()
    images[1] = np.nan
    images[4, 5, 5, 0] = np.inf
    return images


@pytest.fixture(scope="module")
def requests(good, with_bad_rows, tmp_path_factory):
    arrays = {
        name: np.zeros(shape, dtype)
        for name, (shape, dtype) in BAD_REQUESTS.items()
    }
    arrays["good"] = good
    arrays["good one"] = good[3:4]
    arrays["with NaN and Inf"] = with_bad_rows
    arrays["all NaN"] = np.full((2, 28, 28, 1), np.nan, "float32")
    arrays["one NaN"] = np.full((1, 28, 28, 1), np.nan, "float32")
    arrays["one Inf"] = np.where(
        np.arange(784).reshape(1, 28, 28, 1) == 7, np.inf, good[:1]
    ).astype("float32")
    arrays["no image"] = np.zeros((0, 28, 28, 1), "float32")
    path = tmp_path_factory.mktemp("requests") / "requests.npz"
    np.savez(path, **arrays)
    return path, arrays


@pytest.fixture(scope="module")
def exports(model, good, tmp_path_factory):
    directory = tmp_path_factory.mktemp("exports")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # int8: calibration warnings
        return {
            "saved_model": export.export_saved_model(model, directory / "sm"),
            "litert": export.export_litert(model, directory / "one.tflite"),
            "litert_batched": export.export_litert(
                model, directory / "any.tflite", batch_size=None
            ),
            "litert_int8": export.export_litert(
                model,
                directory / "int8.tflite",
                quantization="int8",
                representative_images=good,
            ),
            "onnx": export.export_onnx(model, directory / "m.onnx"),
        }


def expected(model, images):
    return {
        k: np.asarray(v)
        for k, v in export.serving_function(model)(images).items()
    }


def run_script(body, *args):
    result = subprocess.run(
        [sys.executable, "-c", PREAMBLE + body + EPILOGUE, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    # Not 134 / -6 (abort on a CHECK failure) nor a segfault.
    assert result.returncode == 0, (result.returncode, result.stderr[-3000:])
    return json.loads(result.stdout.strip().splitlines()[-1])


def assert_agrees(outputs, want, rows=slice(None)):
    np.testing.assert_allclose(
        np.asarray(outputs["probabilities"])[rows],
        want["probabilities"][rows],
        atol=1e-5,
    )
    for key in ("decision_gate", "executed_flops", "valid"):
        np.testing.assert_array_equal(
            np.asarray(outputs[key])[rows], want[key][rows], err_msg=key
        )


def assert_flagged(outputs, bad_rows, good_rows):
    """No confident answer for `bad_rows`; `good_rows` answered."""
    valid = np.asarray(outputs["valid"])
    assert valid.dtype == bool
    assert not valid[bad_rows].any() and valid[good_rows].all()
    for key in ("logits", "probabilities"):
        values = np.asarray(outputs[key], "float32")
        assert np.isnan(values[bad_rows]).all(), key
        assert np.isfinite(values[good_rows]).all(), key
    decisions = np.asarray(outputs["decision_gate"])
    assert (decisions[bad_rows] == -1).all()
    assert set(decisions[good_rows]) <= {0, 1}


def test_keras_serving_function_flags_and_zeroes_non_finite_rows(
    model, good, with_bad_rows
):
    out = expected(model, with_bad_rows)
    assert_flagged(out, [1, 4], [0, 2, 3, 5])
    # The other images are answered as if alone: routing unaffected.
    assert_agrees(out, expected(model, good), [0, 2, 3, 5])
    # The flagged ones ran as a zero image (what `executed_flops` counts).
    zero = expected(model, np.zeros((1, 28, 28, 1), "float32"))
    assert out["executed_flops"][1] == zero["executed_flops"][0]


def test_saved_model_refuses_bad_requests_and_the_server_survives(
    model, exports, requests
):
    path, arrays = requests
    # Tensors of the wrong dtype are refused at the call (NumPy arrays are
    # converted to float32 by TF's Python call, before the graph).
    results = run_script(
        f"""
import tensorflow as tf
serve = tf.saved_model.load({exports["saved_model"]!r}) \\
    .signatures["serving_default"]
shape = tf.saved_model.load({exports["saved_model"]!r}) \\
    .signatures["serving_input_shape"]()["shape"].numpy().tolist()
results["serving_input_shape"] = {{"outputs": {{"shape": shape}}}}
for name in requests:
    record(name, lambda x: serve(image=tf.constant(x)))
""",
        path,
    )
    for name, (shape, dtype) in BAD_REQUESTS.items():
        result = results[name]
        assert result.get("error") == "InvalidArgumentError", (name, result)
        if dtype == "float32":
            received = ", ".join(map(str, shape))
            assert (
                f"input `image` {EXPECTED_SHAPE} (float32, scaled as "
                f"in training); received shape ({received})"
                in result["message"]
            ), (name, result["message"])
        else:
            assert (
                f"expected to be a float tensor but is a "
                f"{ {'float64': 'double'}.get(dtype, dtype) } tensor"
                in result["message"]
            ), (name, result["message"])
    messages = {
        "with NaN and Inf": "2 of 6 examples hold NaN or Inf values (at "
        "indices [1, 4])",
        "all NaN": "2 of 2 examples hold NaN or Inf values (at indices [0, 1])",
        "one Inf": "1 of 1 examples hold NaN or Inf values (at indices [0])",
    }
    for name, message in messages.items():
        assert results[name].get("error") == "InvalidArgumentError", name
        assert message in results[name]["message"], results[name]
    assert results["serving_input_shape"]["outputs"]["shape"] == [-1, 28, 28, 1]
    for name in ("good", "good one"):
        outputs = results[name]["outputs"]
        assert set(outputs) == {
            "logits",
            "probabilities",
            "decision_gate",
            "executed_flops",
            "valid",
        }
        assert_agrees(outputs, expected(model, arrays[name]))
    assert np.shape(results["no image"]["outputs"]["probabilities"]) in (
        (0,),
        (0, 10),
    )


def test_saved_model_of_a_fixed_batch_size_checks_the_batch_too(
    model, good, tmp_path
):
    import tensorflow as tf

    path = export.export_saved_model(model, tmp_path / "sm", batch_size=2)
    serve = tf.saved_model.load(path).signatures["serving_default"]
    with pytest.raises(
        tf.errors.InvalidArgumentError,
        match=r"should have shape \(2, 28, 28, 1\) .*"
        r"received shape \(3, 28, 28, 1\)",
    ):
        serve(image=tf.constant(good[:3]))
    # Fed in batches of 2.
    runs = assert_exports_agree(model, {"saved_model": path}, good)
    assert runs["saved_model"].exported.batch_size == 2


LITERT_SCRIPT = """
from ai_edge_litert import interpreter as litert
def interpreter():
    resolver = (litert.OpResolverType.AUTO if sys.argv[3] == "xnnpack" else
                litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    result = litert.Interpreter(model_path=sys.argv[2],
                                experimental_op_resolver_type=resolver)
    result.allocate_tensors()
    return result
batch_one = sys.argv[4] == "1"
def first(x):
    # A batch-1 model gets batch-1 requests (but for the good batches).
    return x[:1] if batch_one and x.ndim > 1 and len(x) > 1 else x
def set_tensor(x):
    # The plain interpreter API: set_tensor checks shape and dtype.
    it = interpreter()
    it.set_tensor(it.get_input_details()[0]["index"], first(x))
    it.invoke()
    return {o["name"]: it.get_tensor(o["index"])
            for o in it.get_output_details()}
def runner(x):
    # The signature runner resizes the input to what it is fed.
    return interpreter().get_signature_runner()(image=first(x))
for name in requests:
    record(name, set_tensor, "set_tensor " + name)
    record(name, runner)
"""


@pytest.mark.parametrize(
    "name, xnnpack",
    [("litert", True), ("litert_batched", True), ("litert_batched", False)],
)
def test_litert_refuses_bad_requests_and_flags_non_finite_images(
    name, xnnpack, model, exports, requests
):
    path, arrays = requests
    batch_one = name == "litert"
    results = run_script(
        LITERT_SCRIPT,
        path,
        exports[name],
        "xnnpack" if xnnpack else "builtin",
        1 if batch_one else 0,
    )
    for request, (shape, dtype) in BAD_REQUESTS.items():
        # set_tensor: a ValueError naming the dimension or the dtype.
        result = results["set_tensor " + request]
        assert result.get("error") == "ValueError", (request, result)
        if dtype != "float32":
            assert (
                f"Cannot set tensor: Got value of type {dtype.upper()} "
                "but expected type FLOAT32" in result["message"]
            )
        else:
            assert "Cannot set tensor: Dimension mismatch" in result["message"]
        # The signature runner resizes the input to the request first: a
        # wrong dtype or shape then fails (ValueError or RuntimeError).
        # Never a crash (checked in run_script). XNNPACK runs the (1, 28,
        # 28, 1, 1) batch: the same 784 values in the same order.
        result = results[request]
        if "outputs" in result:
            assert (request, batch_one, xnnpack) == ("rank 5", True, True)
            continue
        assert result["error"] in ("ValueError", "RuntimeError"), result
        if dtype != "float32":
            assert (
                f"Got value of type {dtype.upper()}" in result["message"]
                or "failed to prepare" in result["message"]
            )

    def answer(request):
        return results[request]["outputs"]

    assert_agrees(answer("good one"), expected(model, arrays["good one"]))
    assert_agrees(
        results["set_tensor good one"]["outputs"]
        | {k: v for k, v in answer("good one").items()},
        expected(model, arrays["good one"]),
    )
    assert_flagged(answer("one Inf"), [0], [])
    assert_flagged(answer("one NaN"), [0], [])
    if not batch_one:
        outputs = answer("with NaN and Inf")
        assert_flagged(outputs, [1, 4], [0, 2, 3, 5])
        assert_agrees(outputs, expected(model, arrays["good"]), [0, 2, 3, 5])
        assert_flagged(answer("all NaN"), [0, 1], [])
        assert_agrees(answer("good"), expected(model, arrays["good"]))


def test_quantised_litert_flags_non_finite_images_too(
    model, exports, with_bad_rows
):
    """int8 quantises the float input: the check reads its bits first."""
    loaded = runtime.load_exported(exports["litert_int8"])
    assert loaded.quantized
    assert_flagged(loaded.run(with_bad_rows), [1, 4], [0, 2, 3, 5])


ONNX_SCRIPT = """
import onnxruntime
session = onnxruntime.InferenceSession(
    sys.argv[2], providers=["CPUExecutionProvider"])
names = [o.name for o in session.get_outputs()]
for name in requests:
    record(name, lambda x: dict(zip(names, session.run(names, {"image": x}))))
"""


def test_onnx_refuses_bad_requests_and_flags_non_finite_images(
    model, exports, requests
):
    assert "If" in export.onnx.operator_types(onnx.load(exports["onnx"]))
    path, arrays = requests
    results = run_script(ONNX_SCRIPT, path, exports["onnx"])
    onnx_types = {"uint8": "uint8", "float64": "double", "int32": "int32"}
    for request, (shape, dtype) in BAD_REQUESTS.items():
        result = results[request]
        assert result.get("error") == "InvalidArgument", (request, result)
        if dtype != "float32":
            assert (
                f"Unexpected input data type. Actual: "
                f"(tensor({onnx_types[dtype]})) , expected: "
                "(tensor(float))" in result["message"]
            )
        elif len(shape) != 4:
            assert (
                f"Invalid rank for input: image Got: {len(shape)} "
                "Expected: 4" in result["message"]
            )
        else:
            assert (
                "Got invalid dimensions for input: image" in result["message"]
            )
    outputs = results["with NaN and Inf"]["outputs"]
    assert_flagged(outputs, [1, 4], [0, 2, 3, 5])
    assert_agrees(outputs, expected(model, arrays["good"]), [0, 2, 3, 5])
    assert_flagged(results["all NaN"]["outputs"], [0, 1], [])
    assert_agrees(results["good"]["outputs"], expected(model, arrays["good"]))
    assert_agrees(
        results["good one"]["outputs"], expected(model, arrays["good one"])
    )


@pytest.mark.parametrize("name", ["saved_model", "litert", "onnx"])
def test_load_exported_refuses_integer_images_with_what_to_do(name, exports):
    loaded = runtime.load_exported(exports[name])
    assert loaded.input_shape == (28, 28, 1)
    for dtype in ("uint8", "int64", "bool"):
        with pytest.raises(
            ValueError,
            match=r"takes float32 images scaled "
            r"as in training; received an "
            rf"array of dtype {dtype}.*"
            r"astype\('float32'\) / 255",
        ):
            loaded.run(np.zeros((2, 28, 28, 1), dtype))
    with pytest.raises(
        ValueError,
        match=r"images of shape \(batch,\) \+ "
        r"\(28, 28, 1\); received an array "
        r"of shape \(2, 28, 28, 1, 1\)",
    ):
        loaded.run(np.zeros((2, 28, 28, 1, 1), "float32"))


def test_load_exported_saved_model_names_non_finite_images(exports, good):
    loaded = runtime.load_exported(exports["saved_model"])
    images = np.concatenate([good] * 50)  # 300: two batches of `run`
    images[[7, 280]] = np.nan
    with pytest.raises(
        ValueError,
        match=r"refuses images holding NaN or "
        r"Inf: 2 of 300 do \(at indices "
        r"\[7, 280\]\)",
    ):
        loaded.run(images)
    # Past the Python check, the graph's own message comes through.
    with pytest.raises(
        ValueError,
        match=r"refused the images: input "
        r"`image`: 1 of 2 examples hold NaN",
    ):
        loaded._call(
            np.where(
                np.arange(2)[:, None, None, None] == 1, np.nan, good[:2]
            ).astype("float32")
        )


@pytest.mark.parametrize("name", ["litert_batched", "onnx"])
def test_verify_compares_flags_and_the_valid_images(
    name, model, exports, with_bad_rows
):
    labels = np.zeros(len(with_bad_rows), "int64")
    report = verify.verify(
        model, runtime.load_exported(exports[name]), with_bad_rows, labels
    )
    assert report["passed"] is True, verify.format_report(report)
    assert report["invalid_images"] == 2
    assert report["valid_agreement"] == 1.0
    assert report["max_abs_probability_difference"] <= 1e-4
    assert "invalid (NaN/Inf/out of range) 2" in verify.format_report(report)
