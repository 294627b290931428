"""`.keras` files saved by earlier releases load, in a fresh process, and
compute what they computed: the registered names (`keras_d2nn>D2NNModel`,
`keras_d2nn>Controller`, `keras_d2nn>FillLike`, `keras_d2nn>Reinforce`)
outlive the modules the classes lived in (tests/fixtures/README.md)."""

import json
import pathlib
import subprocess
import sys
import zipfile

import pytest

ROOT = pathlib.Path(__file__).parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
SAVED_MODELS = sorted((ROOT / "saved_models").glob("*/model.keras"))

# Run in a fresh process: only `import keras_d2nn` registers the classes.
LOAD_AND_COMPARE = """
import sys

import keras
import numpy as np

import keras_d2nn

high_low = keras.models.load_model(sys.argv[1] + "/high_low_0.1.0.keras")
expected = np.load(sys.argv[1] + "/high_low_0.1.0.npz")
trace = high_low.trace(expected["x"])
np.testing.assert_allclose(trace.outputs["logits"], expected["logits"],
                           atol=1e-6)
np.testing.assert_array_equal(trace.decisions["gate"], expected["gate"])
np.testing.assert_allclose(trace.executed_flops, expected["executed_flops"])
assert type(high_low) is keras_d2nn.D2NNModel
(estimator, controllers), = high_low._estimator_groups
assert type(estimator) is keras_d2nn.Reinforce and controllers == ("gate",)
assert estimator.baseline == "value"

static = keras.models.load_model(sys.argv[1] + "/static_network_0.1.0.keras")
expected = np.load(sys.argv[1] + "/static_network_0.1.0.npz")
np.testing.assert_allclose(static(expected["x"]), expected["m"], atol=1e-6)
assert any(type(layer) is keras_d2nn.layers.FillLike
           for layer in static.layers)
print("loaded")
"""

# A shipped model against its shipped float32 LiteRT export.
LOAD_SHIPPED = """
import sys

import keras
import numpy as np

import keras_d2nn

model = keras.models.load_model(sys.argv[1])
assert type(model) is keras_d2nn.D2NNModel
exported = keras_d2nn.export.load_exported(sys.argv[2])
rng = np.random.default_rng(0)
images = rng.random((64,) + tuple(model.plan.order[0].shape), "float32")
labels = rng.integers(0, 10, 64)
report = keras_d2nn.export.verify.verify(model, exported, images, labels)
assert report["passed"], report
print("loaded")
"""


def run(script, *args):
    return subprocess.run(
        [sys.executable, "-c", script, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def registered_classes(path):
    """`(module, registered_name)` of the keras_d2nn objects in a file."""
    found = set()

    def walk(value):
        if isinstance(value, dict):
            if str(value.get("registered_name", "")).startswith("keras_d2nn>"):
                found.add((value["module"], value["registered_name"]))
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    with zipfile.ZipFile(path) as archive:
        walk(json.loads(archive.read("config.json")))
    return found


def test_fixtures_name_the_modules_of_0_1_0():
    # The point of the fixtures: their configs name modules that no longer
    # exist, so only the registered names can rebuild them.
    assert registered_classes(FIXTURES / "high_low_0.1.0.keras") == {
        ("keras_d2nn.model", "keras_d2nn>D2NNModel"),
        ("keras_d2nn.layers.controller", "keras_d2nn>Controller"),
        ("keras_d2nn.estimators.reinforce", "keras_d2nn>Reinforce"),
    }
    assert registered_classes(FIXTURES / "static_network_0.1.0.keras") == {
        ("keras_d2nn.static", "keras_d2nn>FillLike")
    }


def test_files_of_0_1_0_load_and_compute_the_same():
    result = run(LOAD_AND_COMPARE, FIXTURES)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "loaded" in result.stdout


@pytest.mark.parametrize(
    "path", SAVED_MODELS, ids=[p.parent.name for p in SAVED_MODELS]
)
def test_shipped_models_load_and_agree_with_their_export(path):
    assert registered_classes(path)
    result = run(LOAD_SHIPPED, path, path.parent / "model.tflite")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "loaded" in result.stdout
