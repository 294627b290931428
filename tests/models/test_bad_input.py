"""Bad input at the Python entry points gets a specific error, early.

Each case names the entry point and the bad input; `docs/bad_inputs.md`
lists every case id with what it gets (checked below), next to the
graph-construction and command-line cases tested elsewhere.
"""

import pathlib

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_d2nn
from keras_d2nn import architectures
from keras_d2nn.export import load_exported
from keras_d2nn.testing import LOSS
from keras_d2nn.testing import small_high_low
from keras_d2nn.testing import toy_data

ROOT = pathlib.Path(__file__).parents[2]
SAVED = ROOT / "saved_models" / "fashion_mnist_high_low"
DOC = ROOT / "docs" / "bad_inputs.md"

X, Y = toy_data(n=64)  # 6 features, 3 classes


def compiled(**kwargs):
    model = small_high_low()
    model.compile("adam", LOSS, metrics=["accuracy"], **kwargs)
    return model


def dataset(x, y, batch=16):
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch)


def fit(x, y=None, **kwargs):
    return compiled().fit(x, y, verbose=0, **kwargs)


def with_non_finite(x, values):
    """A copy of `x` with example `i` set to `values[i]` (NaN or Inf) in
    one feature."""
    x = x.copy()
    for index, value in values.items():
        x[index, 2] = value
    return x


def ranged_model():
    """A compiled D2NN whose input declares values in [0, 1]."""
    config = small_high_low().graph.get_config()
    assert config["nodes"][0]["kind"] == "input"
    config["nodes"][0]["value_range"] = [0.0, 1.0]
    model = keras_d2nn.D2NNModel(keras_d2nn.Graph.from_config(config))
    model.compile("adam", LOSS)
    return model


def integer_input_model():
    """A D2NN whose graph declares int32 inputs and scales them itself."""
    graph = keras_d2nn.Graph()
    graph.input("ids", shape=(6,), dtype="int32")
    graph.f_node("scaled", keras.layers.Rescaling(1 / 255), inputs="ids")
    graph.q_node(
        "gate",
        keras_d2nn.layers.Controller(2, hidden_units=()),
        inputs="scaled",
        actions=("cheap", "expensive"),
    )
    graph.f_node(
        "cheap", keras.layers.Dense(3), inputs="scaled", when=("gate", "cheap")
    )
    graph.f_node(
        "expensive",
        keras.layers.Dense(3),
        inputs="scaled",
        when=("gate", "expensive"),
    )
    graph.merge("m", inputs=["cheap", "expensive"])
    graph.output("m")
    return keras_d2nn.D2NNModel(graph)


def functional_wrapper(model):
    """`model` inside a functional Keras model (graph mode, no D2NN entry
    point of its own)."""
    inputs = keras.Input((6,))
    return keras.Model(inputs, model(inputs))


# id -> (what to run, exception type, message pattern)
CASES = {
    # compile and the cost weight
    "compile: negative cost_weight": (
        lambda: compiled(cost_weight=-1),
        ValueError,
        r"`cost_weight` should be a finite number >= 0. Received: "
        "cost_weight=-1",
    ),
    "compile: NaN cost_weight": (
        lambda: compiled(cost_weight=float("nan")),
        ValueError,
        r"`cost_weight` should be a finite number >= 0. Received: "
        "cost_weight=nan",
    ),
    "cost_weight set to a string": (
        lambda: setattr(compiled(), "cost_weight", "high"),
        ValueError,
        r"`cost_weight` should be a number >= 0. Received: cost_weight='high'",
    ),
    "compile: target_cost 0": (
        lambda: compiled(target_cost=0),
        ValueError,
        r"`target_cost` should be a fraction of the full network's FLOPs, "
        r"in \(0, 1\]. Received: target_cost=0",
    ),
    "compile: target_cost above 1": (
        lambda: compiled(target_cost=1.5),
        ValueError,
        r"`target_cost` should be a fraction .* Received: target_cost=1.5",
    ),
    "compile: budget_learning_rate 0": (
        lambda: compiled(target_cost=0.3, budget_learning_rate=0),
        ValueError,
        r"`budget_learning_rate` should be a finite number > 0. Received: "
        "budget_learning_rate=0",
    ),
    "calibrate_budget: below the cheapest route": (
        lambda: compiled().calibrate_budget(X, target_cost=0.01),
        ValueError,
        r"`target_cost` should be at least the cost of the graph's cheapest "
        r"route \(0.1331 of the full FLOPs\): no price on cost lands below "
        r"it. Received: target_cost=0.01",
    ),
    "calibrate_budget: target_cost above 1": (
        lambda: compiled().calibrate_budget(X, target_cost=2),
        ValueError,
        r"`target_cost` should be a fraction .* Received: target_cost=2",
    ),
    "compile: cost unknown": (
        lambda: compiled(cost="time"),
        ValueError,
        r"`cost` should be one of \('flops', 'latency'\). Received: "
        r"cost='time'",
    ),
    "compile: latency cost without a profile": (
        lambda: compiled(cost="latency"),
        ValueError,
        r"cost='latency' needs a `latency_profile`",
    ),
    "compile: latency profile missing nodes": (
        lambda: compiled(
            cost="latency",
            latency_profile=keras_d2nn.profiling.LatencyProfile({"low": 1.0}),
        ),
        ValueError,
        r"The latency profile has no time for the nodes \['low_head', "
        r"'gate', 'high'\]",
    ),
    "LatencyProfile: negative milliseconds": (
        lambda: keras_d2nn.profiling.LatencyProfile({"low": -1.0}),
        ValueError,
        r"Every latency should be a finite number of milliseconds "
        r">= 0. Received: node_ms\['low'\]=-1.0",
    ),
    "profile_latency: unknown runtime": (
        lambda: keras_d2nn.profiling.profile_latency(
            small_high_low(), runtime="gpu"
        ),
        ValueError,
        r"`runtime` should be one of \('tf_cpu', 'litert'\). Received: "
        r"runtime='gpu'",
    ),
    "compile: no loss": (
        lambda: small_high_low().compile("adam"),
        ValueError,
        r"needs a `loss`",
    ),
    "compile: estimator given by name": (
        lambda: compiled(estimator="reinforce"),
        TypeError,
        r"`estimator` should be a keras_d2nn estimator",
    ),
    "compile: estimator for an unknown controller": (
        lambda: compiled(estimator={"ghost": keras_d2nn.Reinforce()}),
        ValueError,
        r"names \['ghost'\], which are not controllers",
    ),
    "compile: unknown task_reward": (
        lambda: compiled(task_reward="accuracy"),
        ValueError,
        r"`task_reward` should be one of",
    ),
    "compile: reward_bag_size 0": (
        lambda: compiled(reward_bag_size=0),
        ValueError,
        r"`reward_bag_size` should be an int >= 1",
    ),
    # inputs of fit / evaluate / predict / call
    "fit: input of the wrong rank": (
        lambda: fit(X[:, :, None], Y),
        ValueError,
        r"Input 'image' should have shape \(None, 6\) \(batch first\); "
        r"received shape \(64, 6, 1\)",
    ),
    "fit: input of the wrong size": (
        lambda: fit(np.zeros((64, 5), "float32"), Y),
        ValueError,
        r"should have shape \(None, 6\) .*received shape \(64, 5\)",
    ),
    "fit: strings as input": (
        lambda: fit(np.full((64, 6), "a"), Y),
        ValueError,
        r"Input 'image' should hold numbers \(float32\); received dtype",
    ),
    "fit: wrong size after a first fit": (
        lambda: (
            lambda m: (
                m.fit(X, Y, verbose=0),
                m.fit(np.zeros((8, 5), "float32"), Y[:8], verbose=0),
            )
        )(compiled()),
        ValueError,
        r"received shape \(8, 5\)",
    ),
    "fit: dict input with a wrong name": (
        lambda: fit({"pixels": X}, Y),
        ValueError,
        r"expects inputs named \['image'\]; received a dict with keys "
        r"\['pixels'\]",
    ),
    "fit: dataset of the wrong shape": (
        lambda: fit(dataset(X[:, :5], Y)),
        ValueError,
        r"received shape \(None, 5\)",
    ),
    "predict: input of the wrong size": (
        lambda: compiled().predict(np.zeros((4, 7), "float32"), verbose=0),
        ValueError,
        r"received shape \(4, 7\)",
    ),
    "call: input of the wrong size": (
        lambda: small_high_low()(np.zeros((4, 7), "float32")),
        ValueError,
        r"received shape \(4, 7\)",
    ),
    # Values outside a declared range (keras_d2nn.models.value_range)
    "predict: raw values for a [0, 1] input": (
        lambda: ranged_model().predict(np.abs(X) * 16, verbose=0),
        ValueError,
        r"predict: 64 of 64 examples hold values outside the range of "
        r"input 'image' \(at indices \[0, 1, .*values seen from 0\.0\d* to "
        r".*should hold values in \[0, 1\] \(its declared value_range",
    ),
    "evaluate: a dataset batch outside the range": (
        lambda: ranged_model().evaluate(
            dataset(np.where(np.arange(64)[:, None] == 9, 3, X * 0 + 0.5), Y),
            verbose=0,
        ),
        ValueError,
        r"evaluate: a batch held examples with values outside the range "
        r"of input 'image', at positions \[9\] of that batch",
    ),
    "graph: a value_range that is not low < high": (
        lambda: keras_d2nn.Graph().input("x", (6,), value_range=(1, 0)),
        ValueError,
        r"Input 'x': `value_range` should be finite numbers with low < "
        r"high. Received: value_range=\(1, 0\)",
    ),
    # NaN and Inf in inputs, and integer images (keras_d2nn.models.non_finite)
    "fit: NaN image": (
        lambda: fit(with_non_finite(X, {5: np.nan}), Y),
        ValueError,
        r"fit: input 'image' holds NaN or Inf in 1 example, at index \[5\]. "
        r"A D2NN cannot route such inputs. .*`model.allow_non_finite = "
        r"True`",
    ),
    "predict: NaN and Inf images": (
        lambda: compiled().predict(
            with_non_finite(X, {3: np.nan, 40: np.inf, 41: -np.inf}), verbose=0
        ),
        ValueError,
        r"predict: input 'image' holds NaN or Inf in 3 examples, at "
        r"indices \[3, 40, 41\]",
    ),
    "evaluate: NaN image in a dataset": (
        lambda: compiled().evaluate(
            dataset(with_non_finite(X, {18: np.nan}), Y), verbose=0
        ),
        ValueError,
        r"evaluate: a batch held examples whose input 'image' is NaN or "
        r"Inf, at positions \[2\] of that batch",
    ),
    "fit: Inf image from a generator": (
        lambda: fit(
            (with_non_finite(X, {1: np.inf})[i : i + 16], Y[i : i + 16])
            for i in range(0, 64, 16)
        ),
        ValueError,
        r"fit: a batch held examples whose input 'image' is NaN or Inf, at "
        r"positions \[1\]",
    ),
    "route: NaN image": (
        lambda: small_high_low().route(
            with_non_finite(X, {63: np.nan}), batch_size=16
        ),
        ValueError,
        r"route: input 'image' holds NaN or Inf in 1 example, at index "
        r"\[63\]",
    ),
    "trace: Inf image": (
        lambda: small_high_low().trace(with_non_finite(X, {0: np.inf})),
        ValueError,
        r"trace: input 'image' holds NaN or Inf in 1 example",
    ),
    "call: NaN image": (
        lambda: small_high_low()(with_non_finite(X, {2: np.nan})),
        ValueError,
        r"model\(x\): input 'image' holds NaN or Inf",
    ),
    "call under tf.function: NaN image": (
        lambda: tf.function(small_high_low())(with_non_finite(X, {2: np.nan})),
        tf.errors.InvalidArgumentError,
        r"keras_d2nn non-finite check input=image at:\] \[2\]",
    ),
    "predict of a functional model wrapping a D2NN: Inf image": (
        lambda: functional_wrapper(small_high_low()).predict(
            with_non_finite(X, {7: np.inf}), verbose=0
        ),
        tf.errors.InvalidArgumentError,
        r"keras_d2nn non-finite check input=image at:\] \[7\]",
    ),
    "call: float values into an integer input": (
        lambda: integer_input_model()(np.zeros((4, 6), "float32")),
        ValueError,
        r"Input 'ids' should hold int32 values; received dtype float32, "
        r"which casting would truncate",
    ),
    "fit: uint8 images": (
        lambda: fit((np.abs(X) * 40).astype("uint8"), Y),
        ValueError,
        r"Input 'image' should hold float32 values scaled as in training; "
        r"received dtype uint8. .* x.astype\('float32'\) / 255 for "
        r"pixels, or with the scaler fitted on the training data. A graph "
        r"that scales its inputs itself .* graph.input\('image', "
        r"shape, dtype='uint8'\)",
    ),
    "call: int32 images": (
        lambda: small_high_low()(np.zeros((4, 6), "int32")),
        ValueError,
        r"should hold float32 values scaled as in training; received dtype "
        r"int32",
    ),
    # labels
    "fit: label equal to the number of classes": (
        lambda: fit(X, np.full(64, 3)),
        ValueError,
        r"labels should be class indices, whole numbers in \[0, 3\) for "
        r"the 3 outputs; 64 of 64 are not, e.g. \[3\]",
    ),
    "fit: negative label": (
        lambda: fit(X, np.where(np.arange(64) == 5, -1, Y)),
        ValueError,
        r"1 of 64 are not, e.g. \[-1\]",
    ),
    "fit: fractional label": (
        lambda: fit(X, Y + 0.5),
        ValueError,
        r"e.g. \[0.5",
    ),
    "fit: NaN label": (
        lambda: fit(X, np.where(np.arange(64) == 0, np.nan, Y)),
        ValueError,
        r"1 of 64 are not, e.g. \[nan\]",
    ),
    "fit: one-hot labels with a sparse loss": (
        lambda: fit(X, np.eye(3)[Y]),
        ValueError,
        r"a sparse categorical loss takes class indices, shape \(n,\); "
        r"received labels of shape \(64, 3\). For one-hot labels use "
        r"keras.losses.CategoricalCrossentropy",
    ),
    "fit: string labels": (
        lambda: fit(X, np.array(["cat"] * 64)),
        ValueError,
        r"labels should be numbers",
    ),
    "fit: out-of-range labels in a dataset": (
        lambda: fit(dataset(X, np.full(64, 3))),
        ValueError,
        r"fit: a batch held labels that are not class indices: labels "
        r"should be whole numbers in \[0, 3\)",
    ),
    "fit: out-of-range labels from a generator": (
        lambda: fit((X[i : i + 16], np.full(16, 7)) for i in range(0, 64, 16)),
        ValueError,
        r"a batch held labels that are not class indices",
    ),
    "fit: one-hot labels in a dataset": (
        lambda: fit(dataset(X, np.eye(3)[Y])),
        ValueError,
        r"the dataset yields labels of shape \(None, 3\)",
    ),
    "fit: out-of-range validation labels": (
        lambda: fit(X, Y, validation_data=(X, np.full(64, 9))),
        ValueError,
        r"validation_data: labels should be class indices",
    ),
    "evaluate: out-of-range labels": (
        lambda: compiled().evaluate(X, np.full(64, 3), verbose=0),
        ValueError,
        r"evaluate: labels should be class indices",
    ),
    "fit: one-hot labels of the wrong width (categorical loss)": (
        lambda: (
            lambda m: (
                m.compile(
                    "adam",
                    keras.losses.CategoricalCrossentropy(from_logits=True),
                ),
                m.fit(X, np.eye(4)[Y], verbose=0),
            )
        )(small_high_low()),
        ValueError,
        r"labels should have shape \(n, 3\)",
    ),
    "fit: fewer labels than examples": (
        lambda: fit(X, Y[:10]),
        ValueError,
        r"Data cardinality is ambiguous",
    ),
    # no data
    "fit: empty arrays": (
        lambda: fit(X[:0], Y[:0]),
        ValueError,
        r"fit: input 'image' holds no examples \(shape \(0, 6\)\)",
    ),
    "fit: empty dataset": (
        lambda: fit(dataset(X[:0], Y[:0])),
        ValueError,
        r"fit: the dataset is empty",
    ),
    "fit: dataset that turns out empty": (
        lambda: fit(
            tf.data.Dataset.from_tensor_slices((X, Y))
            .filter(lambda a, b: b > 5)
            .batch(16)
        ),
        ValueError,
        r"fit: the data yielded no batch, so nothing was trained",
    ),
    "predict: empty array": (
        lambda: compiled().predict(X[:0], verbose=0),
        ValueError,
        r"predict: input 'image' holds no examples",
    ),
    "route: empty array": (
        lambda: small_high_low().route(X[:0]),
        ValueError,
        r"`data` is empty: no example to route",
    ),
    # builders
    "builder: vector input_shape for convolutional defaults": (
        lambda: architectures.high_low(
            input_shape=(28,), gate_input="features"
        ),
        ValueError,
        r"high_low: `input_shape` should be an image shape \(height, width, "
        r"channels\)",
    ),
    "builder: one class": (
        lambda: architectures.cascade(num_classes=1, gate_input="logits"),
        ValueError,
        r"cascade: `num_classes` should be an int >= 2. Received: "
        r"num_classes=1",
    ),
    "builder: input_shape of strings": (
        lambda: architectures.chain(input_shape=("a", 28, 1)),
        ValueError,
        r"chain: `input_shape` should be an image shape",
    ),
    # exported models (the saved_models/ exports of Fashion-MNIST)
    "exported: truncated .tflite": (
        lambda: load_exported(truncated("model.tflite")),
        ValueError,
        r"is not a readable LiteRT export \(truncated, corrupt",
    ),
    "exported: truncated .onnx": (
        lambda: load_exported(truncated("model.onnx")),
        ValueError,
        r"is not a readable ONNX export \(truncated, corrupt",
    ),
    "exported: SavedModel directory without a graph": (
        lambda: load_exported(empty_saved_model()),
        ValueError,
        r"is not a readable SavedModel export",
    ),
    "exported: images of the wrong shape": (
        lambda: load_exported(SAVED / "model.tflite").run(
            np.zeros((2, 28, 28), "float32")
        ),
        ValueError,
        r"takes images of shape \(batch,\) \+ \(28, 28, 1\); received an "
        r"array of shape \(2, 28, 28\)",
    ),
    "exported: strings as images": (
        lambda: load_exported(SAVED / "model.onnx").run(
            np.full((1, 28, 28, 1), "x")
        ),
        ValueError,
        r"takes numbers \(float32 images\); received an array of dtype",
    ),
    "exported: no image": (
        lambda: load_exported(SAVED / "saved_model" / "1").run(
            np.zeros((0, 28, 28, 1), "float32")
        ),
        ValueError,
        r"received no image",
    ),
    "exported: batch-1 model fed a batch of 5": (
        lambda: load_exported(SAVED / "model.tflite")(
            np.zeros((5, 28, 28, 1), "float32")
        ),
        ValueError,
        r"made for batches of exactly 1; received a batch of 5",
    ),
}


@pytest.fixture(autouse=True)
def _scratch(tmp_path, monkeypatch):
    monkeypatch.setitem(SCRATCH, "dir", tmp_path)


SCRATCH = {}


def truncated(name):
    path = SCRATCH["dir"] / f"truncated_{name}"
    path.write_bytes((SAVED / name).read_bytes()[:3000])
    return path


def empty_saved_model():
    path = SCRATCH["dir"] / "empty_saved_model"
    path.mkdir()
    (path / "saved_model.pb").write_bytes(b"")
    return path


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_gets_a_specific_error(case):
    run, error, pattern = CASES[case]
    with pytest.raises(error, match=pattern):
        run()


def test_non_finite_inputs_let_through_keep_decisions_valid():
    # allow_non_finite: the caller takes responsibility; the model must
    # still not crash, and every controller must take a valid action.
    model = compiled(cost_weight=0.1)
    model.allow_non_finite = True
    bad = with_non_finite(X, {i: np.nan for i in range(8)})
    bad[8:16] = np.inf
    model.fit(bad, Y, epochs=1, batch_size=64, verbose=0)
    # The training step ran (whatever its loss) instead of being refused.
    assert int(model.optimizer.iterations) == 1
    routes = model.route(bad)
    assert set(np.unique(routes["decisions"]["gate"])) <= {0, 1}
    assert np.all(np.isfinite(routes["executed_flops"]))
    assert np.all(routes["executed_flops"] > 0)
    assert model.predict(bad, verbose=0).shape == (64, 3)
    # The setting is part of the config, so a saved model keeps it.
    clone = keras_d2nn.D2NNModel.from_config(model.get_config())
    assert clone.allow_non_finite
    assert not keras_d2nn.D2NNModel.from_config(
        small_high_low().get_config()
    ).allow_non_finite


@pytest.mark.parametrize("name", sorted(architectures.ARCHITECTURES))
def test_empty_batch_gives_empty_outputs_for_every_builder(name):
    # oneDNN's eager Conv2D gives a wrong shape for a zero-size batch and
    # some controllers fail on one: `call` must not run the layers.
    model = architectures.ARCHITECTURES[name]()
    empty = np.zeros((0, 28, 28, 1), "float32")
    assert tuple(model(empty).shape) == (0, 10)
    trace = model.trace(empty)
    assert trace.executed_flops.shape == (0,)
    assert all(d.shape == (0,) for d in trace.decisions.values())
    some = np.random.default_rng(0).random((3, 28, 28, 1), "float32")
    # The same keys as a real trace, every value empty.
    assert sorted(trace.values) == sorted(model.trace(some).values)
    assert all(v.shape[0] == 0 for v in trace.values.values())
    traced = tf.function(
        model, input_signature=[tf.TensorSpec([None, 28, 28, 1], tf.float32)]
    )
    assert tuple(traced(empty).shape) == (0, 10)
    np.testing.assert_allclose(traced(some), model(some), atol=1e-5)


def test_a_graph_declaring_integer_inputs_takes_them():
    model = integer_input_model()
    ids = np.arange(24, dtype="int32").reshape(4, 6)
    trace = model.trace(ids)
    # Rescaling ran on the integers: the same as scaled floats by hand.
    np.testing.assert_allclose(trace.values["scaled"], ids / 255, rtol=1e-6)
    assert tuple(model.predict(ids, verbose=0).shape) == (4, 3)


def test_masked_trace_replays_a_routed_trace_of_nested_controllers():
    # A trace reports -1 for a controller that did not decide; masked
    # execution still computes those rows and must accept it.
    model = architectures.cascade(gate_input="logits")
    images = np.random.default_rng(1).random((32, 28, 28, 1), "float32")
    # Half the examples stop at the first exit (forced, not left to the
    # random initial weights), so exit2 does not decide for them.
    stop_first = {"exit1": tf.constant([0, 1] * 16, tf.int32)}
    routed = model.trace(images, decisions=stop_first)
    np.testing.assert_array_equal(
        routed.decisions["exit2"].numpy() == -1, [True, False] * 16
    )
    masked = model.trace(images, mode="masked", decisions=routed.decisions)
    for controller, decision in routed.decisions.items():
        np.testing.assert_array_equal(masked.decisions[controller], decision)
    np.testing.assert_allclose(
        masked.outputs["logits"], routed.outputs["logits"], atol=1e-5
    )


def test_every_case_is_in_the_docs_table():
    doc = DOC.read_text()
    missing = [case for case in CASES if f"| {case} |" not in doc]
    assert missing == []
