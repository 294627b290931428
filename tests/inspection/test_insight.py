"""Seeing what the network decides: graph drawing, routing report, image
gallery and TensorBoard logging, on the saved Fashion-MNIST model and
synthetic images."""

import pathlib

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing import event_accumulator

import keras_d2nn
from keras_d2nn import data
from keras_d2nn.inspection import graph_plot
from keras_d2nn.testing import LOSS
from keras_d2nn.testing import shape_images
from keras_d2nn.testing import small_high_low

SAVED = (
    pathlib.Path(__file__).parents[2]
    / "saved_models"
    / "fashion_mnist_high_low"
    / "model.keras"
)
CLASS_NAMES = data.DATASETS["fashion_mnist"]["class_names"]


@pytest.fixture(scope="module")
def trained():
    return keras.models.load_model(SAVED)


@pytest.fixture(scope="module")
def test_split(trained):
    x, y = shape_images(2000, labels=True)
    # The saved model sends some of them down each route.
    gate = trained.route(x)["decisions"]["gate"]
    assert 0 < gate.sum() < len(gate)
    return x, y


def test_graph_drawing_shows_kinds_edges_flops_and_run_rates(
    trained, test_split, tmp_path
):
    x, _ = test_split
    source = graph_plot.graph_dot(trained, data=x).to_string()
    ran = trained.route(x)["executed"]
    # Q-node a diamond, dummy shaded, control edges dashed with the action.
    lines = {line.split(" [")[0]: line for line in source.splitlines()}
    assert "shape=diamond" in lines["gate"]
    assert 'style="filled,dashed", fillcolor="#d9d9d9"' in lines["stop"]
    for action in ("stop", "high"):
        edge = lines[f"gate -> {action}"]
        assert "style=dashed" in edge and f'label=" {action}"' in edge
    assert lines["low -> gate;"] == "low -> gate;"  # a data edge, solid
    # FLOPs and the measured run rate of the expensive branch.
    high_flops = trained.plan.flops["high"]
    assert graph_plot._flops_text(high_flops) in source
    assert f"ran for {np.mean(ran['high']):.1%}" in source
    path = keras_d2nn.plot_graph(trained, tmp_path / "graph.png", data=x)
    assert path.read_bytes().startswith(b"\x89PNG")
    svg = keras_d2nn.plot_graph(
        keras_d2nn.architectures.cascade(),
        tmp_path / "cascade.svg",
        rankdir="LR",
    )
    assert b"exit2" in svg.read_bytes()


def test_graph_drawing_errors(trained, tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="plot_graph writes .png, .svg"):
        keras_d2nn.plot_graph(trained, tmp_path / "graph.jpg")
    with pytest.raises(ValueError, match="`rankdir` should be"):
        keras_d2nn.plot_graph(trained, tmp_path / "graph.png", rankdir="UP")
    # Without Graphviz on the PATH: what to install, or write the source.
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RuntimeError, match="needs Graphviz's `dot` program"):
        keras_d2nn.plot_graph(trained, tmp_path / "graph.png")
    source = keras_d2nn.plot_graph(trained, tmp_path / "graph.dot")
    assert "digraph" in source.read_text()


def test_routing_report_adds_up(trained, test_split, capsys):
    x, y = test_split
    report = trained.routing_report(x, y, class_names=CLASS_NAMES)
    routes = trained.route(x)
    gate = routes["decisions"]["gate"]
    correct = routes["predictions"] == y
    assert report["examples"] == len(x)
    assert report["accuracy"] == pytest.approx(correct.mean())
    by_route = {r["route"]: r for r in report["routes"]}
    assert set(by_route) == {"gate=stop", "gate=high"}
    for name, action in (("gate=stop", 0), ("gate=high", 1)):
        mine = gate == action
        assert by_route[name]["share"] == pytest.approx(mine.mean())
        assert by_route[name]["accuracy"] == pytest.approx(correct[mine].mean())
        assert by_route[name]["mean_flops"] == pytest.approx(
            routes["executed_flops"][mine].mean(), rel=1e-6
        )
    assert sum(r["share"] for r in report["routes"]) == pytest.approx(1.0)
    gate_report = report["controllers"]["gate"]
    assert gate_report["ran"] == 1.0
    assert gate_report["actions"]["high"] == pytest.approx(np.mean(gate == 1))
    sandal = CLASS_NAMES.index("Sandal")
    assert gate_report["by_class"]["Sandal"]["high"] == pytest.approx(
        np.mean(gate[y == sandal] == 1)
    )
    printed = capsys.readouterr().out
    assert "gate=stop" in printed and "true class" in printed
    assert "Pullover" in printed


def test_routing_report_of_nested_controllers_and_datasets():
    model = keras_d2nn.architectures.cascade()
    rng = np.random.default_rng(0)
    x = rng.random((96, 28, 28, 1), dtype="float32")
    y = rng.integers(0, 10, 96)
    from_arrays = model.routing_report(x, y, print_fn=None)
    from_dataset = model.routing_report(
        tf.data.Dataset.from_tensor_slices((x, y)).batch(32), print_fn=None
    )
    assert from_arrays == from_dataset
    controllers = from_arrays["controllers"]
    # exit2 decides only for the examples exit1 let continue.
    assert controllers["exit2"]["ran"] == pytest.approx(
        controllers["exit1"]["actions"]["continue"]
    )
    assert sum(controllers["exit2"]["actions"].values()) == pytest.approx(
        controllers["exit2"]["ran"]
    )
    unlabelled = model.routing_report(x, print_fn=None)
    assert unlabelled["accuracy"] is None
    assert "by_class" not in unlabelled["controllers"]["exit1"]
    with pytest.raises(ValueError, match="`labels` holds 10 labels for 96"):
        model.routing_report(x, y[:10], print_fn=None)


def test_gallery_groups_images_by_route(trained, test_split, tmp_path):
    x, y = test_split
    path = tmp_path / "routes.png"
    report = keras_d2nn.gallery.route_gallery(
        trained, x, y, path, class_names=CLASS_NAMES, per_route=6
    )
    assert path.read_bytes().startswith(b"\x89PNG")
    # One row per route, the most common first.
    shares = [r["share"] for r in report["routes"]]
    assert {r["route"] for r in report["routes"]} == {"gate=stop", "gate=high"}
    assert shares == sorted(shares, reverse=True)
    with pytest.raises(ValueError, match="route_gallery draws images"):
        keras_d2nn.gallery.route_gallery(
            small_high_low(),
            np.zeros((4, 6), "float32"),
            np.zeros(4),
            tmp_path / "vectors.png",
        )


def _tensors(run_dir):
    events = event_accumulator.EventAccumulator(
        str(run_dir), size_guidance={event_accumulator.TENSORS: 0}
    )
    events.Reload()
    return {
        tag: [tf.make_ndarray(e.tensor_proto) for e in events.Tensors(tag)]
        for tag in events.Tags()["tensors"]
    }


def test_tensorboard_logs_rates_cost_weight_and_confidence(tmp_path):
    x, y = shape_images(384, seed=1, labels=True)
    model = keras_d2nn.architectures.high_low()
    model.compile("adam", LOSS, metrics=["accuracy"], cost_weight=0.05)
    logs = tmp_path / "logs"
    history = model.fit(
        x[:256],
        y[:256],
        validation_data=(x[256:], y[256:]),
        epochs=2,
        verbose=0,
        callbacks=[
            keras.callbacks.TensorBoard(str(logs)),
            keras_d2nn.RoutingTensorBoard(str(logs), data=x[256:]),
        ],
    )
    train = _tensors(logs / "train")
    validation = _tensors(logs / "validation")
    # Next to loss and accuracy: cost, the action rates, the cost weight.
    for tag in (
        "epoch_loss",
        "epoch_accuracy",
        "epoch_cost",
        "epoch_gate_stop",
        "epoch_gate_high",
        "epoch_cost_weight",
    ):
        assert len(train[tag]) == 2, tag
    np.testing.assert_allclose(
        [float(v) for v in train["epoch_gate_high"]],
        history.history["gate_high"],
        rtol=1e-6,
    )
    assert [float(v) for v in train["epoch_cost_weight"]] == pytest.approx(
        [0.05, 0.05]
    )
    # Histograms (bucket left, right, count) of the controller's confidence
    # on the 128 held-out images: a two-way choice is at least 0.5 sure.
    confidence = validation["gate_confidence"][-1]
    assert confidence[:, 2].sum() == 128
    assert confidence[:, 0].min() >= 0.5 - 1e-6
    assert confidence[:, 1].max() <= 1.0 + 1e-6
    assert validation["gate_action"][-1][:, 2].sum() == 128
    assert "executed_flops" in validation
