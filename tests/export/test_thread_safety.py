"""One `ExportedModel` shared by 8 threads answers every call as it does
alone (issue 29: a shared LiteRT interpreter gave logits off by up to 18
and flipped decisions)."""

import concurrent.futures

import keras
import numpy as np
import pytest

from keras_d2nn import architectures
from keras_d2nn import export
from keras_d2nn.testing import shape_images

THREADS = 8
CALLS = 200


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    keras.utils.set_random_seed(0)
    # The raw-features gate: untrained, it takes both actions, so that a
    # call answered with another thread's tensors shows in the decisions.
    model = architectures.high_low(gate_input="features")
    model(np.zeros((1, 28, 28, 1), "float32"))
    directory = tmp_path_factory.mktemp("exports")
    return {
        "litert": export.export_litert(
            model, directory / "any.tflite", batch_size=None
        ),
        "onnx": export.export_onnx(model, directory / "m.onnx"),
        "saved_model": export.export_saved_model(model, directory / "sm"),
    }


@pytest.mark.parametrize("fmt", ["litert", "onnx", "saved_model"])
def test_eight_threads_sharing_one_exported_model_get_their_own_answers(
    exports, fmt
):
    exported = export.load_exported(exports[fmt])
    images = shape_images(64, seed=3)
    # Batches of different sizes and contents: a call that read or
    # resized another thread's tensors gives another answer.
    batches = [images[i % 16 : i % 16 + 1 + i % 7] for i in range(CALLS)]
    alone = [exported(batch) for batch in batches]
    decisions = np.concatenate([a["decision_gate"] for a in alone])
    assert 0 < decisions.mean() < 1, "both branches should run"

    with concurrent.futures.ThreadPoolExecutor(THREADS) as pool:
        shared = list(pool.map(exported, batches))

    wrong = [
        i
        for i, (want, got) in enumerate(zip(alone, shared))
        if set(want) != set(got)
        or any(not np.array_equal(want[k], got[k]) for k in want)
    ]
    assert not wrong, f"{len(wrong)} of {CALLS} calls got another answer"
