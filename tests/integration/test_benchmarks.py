"""The speed benchmarks run from a clone and write rows of the promised
shape (tiny settings: what they measure is checked by their own figures,
not by timed tests).

The smoke runs read a small synthetic Fashion-MNIST (`fake_data`): IDX
files of rectangles on black, and a TFDS directory prepared from them as
from the real files; they check what the scripts write, not what they
measure on real images.
"""

import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def fake_data(fake_idx_dir, fake_tfds_dir):
    """`{"idx": directory of the four IDX files, "tfds": TFDS data
    directory prepared from them}`: the synthetic Fashion-MNIST of
    tests/conftest.py, so that the smoke runs need no real files."""
    return {"idx": fake_idx_dir, "tfds": fake_tfds_dir}


def run_script(name, *args, data=None):
    """Runs benchmarks/`name`; with `data` (`fake_data`), its default IDX
    directory and TFDS data directory are those."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    if data is not None:
        env.update(
            KERAS_D2NN_FASHION_MNIST_DIR=data["idx"], TFDS_DATA_DIR=data["tfds"]
        )
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / name), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.mark.slow  # about 40 s; the other benchmark tests stay
def test_speed_benchmark_writes_rows(tmp_path, fake_data):
    output = tmp_path / "speed.json"
    stdout = run_script(
        "speed.py",
        "--archs=high_low",
        "--tf_batches=32",
        "--litert_batches=1",
        "--examples=32",
        "--repeats=1",
        "--train_examples=256",
        f"--output={output}",
        data=fake_data,
    )
    rows = json.loads(output.read_text())["rows"]
    keys = {
        "arch",
        "runtime",
        "batch",
        "routed_fraction",
        "mode",
        "ms_per_example",
        "flop_speedup",
        "time_speedup",
        "efficiency",
    }
    assert all(keys <= set(row) for row in rows)
    assert {(r["runtime"], r["batch"]) for r in rows} == {
        ("tf", 32),
        ("litert", 1),
    }
    fractions = {r["routed_fraction"] for r in rows if r["mode"] == "routed"}
    assert {0.0, 0.5, 1.0} <= fractions
    # FLOP speedups follow the forced fractions: all cheap saves most.
    routed = {
        r["routed_fraction"]: r["flop_speedup"]
        for r in rows
        if r["mode"] == "routed" and r["runtime"] == "tf"
    }
    assert routed[0.0] > routed[0.5] > routed[1.0]
    assert "efficiency" in stdout or "eff" in stdout


@pytest.mark.slow  # about a minute: six LiteRT conversions at 224x224
def test_speed_benchmark_times_a_real_size_network(tmp_path):
    # Synthetic 224x224x3 pixels, no dataset; XNNPACK with 1 and 2 threads.
    output = tmp_path / "speed.json"
    run_script(
        "speed.py",
        "--archs=cascade_224",
        "--tf_batches=5",
        "--litert_batches=5",
        "--litert_threads=1,2",
        "--real_size_examples=10",
        "--repeats=1",
        f"--output={output}",
    )
    rows = json.loads(output.read_text())["rows"]
    assert {(r["runtime"], r["batch"], r.get("threads")) for r in rows} == {
        ("tf", 5, None),
        ("litert", 5, 1),
        ("litert", 5, 2),
    }
    assert all("error" not in r for r in rows)
    # The expensive path is hundreds of MFLOPs, the cheap one about 10:
    # with 10% of the images expensive the FLOPs shrink more than 5x.
    mostly_cheap = [
        r["flop_speedup"]
        for r in rows
        if r["mode"] == "routed" and r["routed_fraction"] == pytest.approx(0.1)
    ]
    assert mostly_cheap and min(mostly_cheap) > 5
    summary = run_script("speed_summary.py", f"--results={tmp_path}")
    assert "| cascade_224 | tf batch 5 |" in summary
    assert "| cascade_224 | litert batch 5, 2 threads |" in summary


def test_train_speed_benchmark_writes_rows(tmp_path, fake_data):
    output = tmp_path / "train_speed.json"
    run_script(
        "train_speed.py",
        "--archs=high_low",
        "--steps=2",
        "--repeats=1",
        "--batch_size=16",
        f"--output={output}",
        data=fake_data,
    )
    rows = json.loads(output.read_text())["rows"]
    assert {r["mode"] for r in rows} == {
        "static",
        "learned",
        "routed",
        "masked",
    }
    assert all(r["examples_per_second"] > 0 for r in rows)


def test_budget_benchmark_writes_asked_and_landed(tmp_path, fake_data):
    output = tmp_path / "budget.json"
    stdout = run_script(
        "budget.py",
        "--budgets=0.5",
        "--recipes=full_information:none",
        "--seeds=0",
        "--epochs=2",
        "--train_examples=256",
        f"--tfds_dir={fake_data['tfds']}",
        f"--output={output}",
        data=fake_data,
    )
    [row] = json.loads(output.read_text())["rows"]
    assert row["budget"] == 0.5 and 0 < row["landed_cost"] <= 1
    # The warm-up epoch leaves the multiplier at its start.
    assert row["cost_weights"][0] == 0.0
    assert "asked" in stdout and "landed" in stdout


# Over half a minute of training: slow (runs on CI, not in a plain
# pytest).
@pytest.mark.slow
def test_tradeoff_benchmark_lands_each_contender_on_the_budget(
    tmp_path, fake_data
):
    output = tmp_path / "tradeoff.json"
    stdout = run_script(
        "tradeoff.py",
        "--budgets=0.3",
        "--seeds=0",
        "--contenders=two_phase",
        "--epochs=1",
        "--gate_epochs=1",
        "--train_examples=256",
        "--validation_examples=200",
        "--test_examples=300",
        f"--tfds_dir={fake_data['tfds']}",
        f"--output={output}",
        data=fake_data,
    )
    results = json.loads(output.read_text())
    rows = results["seeds"]["0"]
    # The threshold curve at every percentile, from all exits to none.
    assert len(rows["threshold"]["cost"]) > 50
    row = rows["two_phase"]["0.3"]
    assert row["held_out_cost"] == pytest.approx(0.3, abs=0.01)
    assert 0.0 <= row["accuracy"] <= 1.0
    assert set(row["diagnostic"]) == {
        "gate_minus_threshold_points",
        "auc_within_class",
    }
    [line] = results["summary"]
    assert line["contender"] == "two_phase" and line["seeds"] == 1
    assert "two_phase diagnostic" in stdout
    assert output.with_suffix(".png").read_bytes().startswith(b"\x89PNG")


def test_export_latency_benchmark_times_each_route(tmp_path, fake_data):
    import keras

    from keras_d2nn import architectures
    from keras_d2nn import export

    keras.utils.set_random_seed(2)  # a gate that splits the images
    model = architectures.high_low(gate_input="features")
    paths = [
        export.export_litert(model, tmp_path / "m.tflite"),
        export.export_onnx(model, tmp_path / "m.onnx"),
    ]
    output = tmp_path / "latency.json"
    stdout = run_script(
        "export_latency.py",
        "--images=200",
        "--per_route=5",
        "--repeats=1",
        *[f"--exported={p}" for p in paths],
        f"--output={output}",
        data=fake_data,
    )
    results = json.loads(output.read_text())["results"]
    assert [r["format"] for r in results] == ["litert", "onnx"]
    for result in results:
        routes = {r["route"]: r for r in result["routes"]}
        assert set(routes) == {"gate=0", "gate=1"}
        assert routes["gate=1"]["flop_ratio"] == pytest.approx(
            model.plan.full_flops / routes["gate=0"]["flops"], rel=0.01
        )
        assert all(r["ms"] > 0 and r["images"] == 5 for r in routes.values())
    assert "time ratio" in stdout


@pytest.mark.slow  # about a minute
def test_gate_variants_benchmark_writes_each_variant(tmp_path, fake_data):
    output = tmp_path / "gate_variants.json"
    run_script(
        "gate_variants.py",
        "--variants=correct-1,prob-1",
        "--epochs=1",
        f"--work_dir={tmp_path}",
        "--data_args=--train_examples=1500 --test_examples=500 "
        "--validation_examples=500",
        f"--output={output}",
        data=fake_data,
    )
    results = json.loads(output.read_text())["0"]
    assert set(results) == {"correct-1", "prob-1"}
    for variant in results.values():
        assert set(variant["budgets"]) == {
            "0.1",
            "0.2",
            "0.3",
            "0.35",
            "0.4",
            "0.5",
        }


# latency_cost.py trained, profiled and timed as briefly as it runs.
LATENCY_COST_SMOKE = (
    "--epochs=1",
    "--gate_epochs=1",
    "--repeats=1",
    "--profile_repeats=2",
    "--profile_warmup=1",
)


@pytest.mark.slow  # about a minute
def test_latency_cost_benchmark_compares_both_costs(tmp_path, fake_data):
    output = tmp_path / "latency_cost.json"
    stdout = run_script(
        "latency_cost.py",
        *LATENCY_COST_SMOKE,
        "--points=3",
        "--data_args=--train_examples=1500 --test_examples=512 "
        "--validation_examples=500",
        f"--output={output}",
        data=fake_data,
    )
    results = json.loads(output.read_text())
    costs = [p["cost"] for p in results["points"]]
    assert costs.count("flops") == costs.count("latency") == 3
    assert all(p["measured_ms"] > 0 for p in results["points"])
    # The cascade's three routes (exit 1, exit 2, the last head), each
    # predicted by the fitted profile and by the nodes alone.
    assert len(results["routes"]) == 3
    assert all(r["predicted_alone_ms"] > 0 for r in results["routes"])
    assert results["profile"]["base_ms"] > 0
    assert "at matched accuracy" in stdout


@pytest.mark.slow  # about two minutes: a LiteRT conversion per point
def test_latency_cost_benchmark_runs_on_litert(tmp_path, fake_data):
    output = tmp_path / "latency_cost_litert.json"
    run_script(
        "latency_cost.py",
        "--runtime=litert",
        *LATENCY_COST_SMOKE,
        "--points=2",
        "--data_args=--train_examples=1500 --test_examples=200 "
        "--validation_examples=500",
        f"--output={output}",
        data=fake_data,
    )
    results = json.loads(output.read_text())
    assert results["profile"]["runtime"] == "litert"
    assert results["profile"]["batch_size"] == 1
    # At batch 1 every cost is per example: no fixed part, no base.
    assert results["profile"]["base_ms"] == 0.0
    assert len(results["routes"]) == 3 and len(results["points"]) == 4
    assert all(r["measured_ms"] > 0 for r in results["points"])


@pytest.mark.slow  # about two minutes: three modules trained apart
def test_latency_cost_benchmark_runs_wide_or_deep(tmp_path, fake_data):
    output = tmp_path / "latency_cost_wide_or_deep.json"
    run_script(
        "latency_cost.py",
        "--network=wide_or_deep",
        *LATENCY_COST_SMOKE,
        "--points=2",
        "--data_args=--train_examples=1000 --test_examples=256 "
        "--validation_examples=300",
        f"--output={output}",
        data=fake_data,
    )
    results = json.loads(output.read_text())
    # Stop, wide, deep: deep has fewer FLOPs than wide (its routes' FLOP
    # fractions on the test images, every example forced down each).
    stop, wide, deep = results["routes"]
    assert stop["flop_fraction"] < deep["flop_fraction"]
    assert deep["flop_fraction"] < wide["flop_fraction"]
    assert len(results["points"]) == 4
    # speed_summary reads it, and says which results are missing.
    summary = run_script("speed_summary.py", f"--results={tmp_path}")
    assert "| wide_or_deep, TF batch 64: predicted / measured ms" in summary
    assert "| (latency_cost_litert.json missing) |" in summary


@pytest.mark.slow  # about a minute
def test_minibag_benchmark_lands_every_contender(tmp_path, fake_data):
    output = tmp_path / "minibag.json"
    run_script(
        "minibag.py",
        "--epochs=1",
        "--gate_epochs=1",
        "--data_args=--train_examples=1500 --test_examples=500 "
        "--validation_examples=500",
        f"--output={output}",
        data=fake_data,
    )
    rows = json.loads(output.read_text())["rows"]
    assert {(r["contender"], r["budget"]) for r in rows} == {
        (c, b)
        for c in ("two_phase", "two_phase_minibag", "reinforce_minibag")
        for b in (0.1, 0.3)
    }
    assert all(0.0 <= r["f1_positive"] <= 1.0 for r in rows)


@pytest.mark.slow  # about a minute
def test_paper_experiments_compare_the_hierarchical_d2nn(tmp_path, fake_data):
    output = tmp_path / "paper.json"
    run_script(
        "paper_experiments.py",
        "--arch=hierarchical",
        "--seeds=0",
        "--epochs=1",
        "--gate_epochs=1",
        "--train_examples=256",
        "--validation_examples=256",
        "--test_examples=256",
        "--budgets=0.5",
        f"--output={output}",
        data=fake_data,
    )
    run = json.loads(output.read_text())["seeds"][0]
    assert len(run["routes"]) == 7  # every set of experts
    assert {p["name"] for p in run["plain"]} == {
        "one expert (flat)",
        "all experts",
    }
    assert run["rules"][0]["rule"] == "argmax"
    (budget,) = run["budgets"]
    # Between one expert and all of them, whatever the landing.
    assert 0.36 <= budget["cost"] <= 1.0
    best = budget["alternatives"][budget["best_alternative"]]
    assert budget["difference_points"] == pytest.approx(
        100 * (budget["accuracy"] - best)
    )
    assert output.with_suffix(".png").exists()


@pytest.mark.slow  # about a minute
def test_hierarchical_minibag_benchmark_scores_every_contender(
    tmp_path, fake_data
):
    output = tmp_path / "hierarchical_minibag.json"
    run_script(
        "hierarchical_minibag.py",
        "--seeds=0",
        "--epochs=1",
        "--gate_epochs=1",
        "--train_examples=256",
        "--validation_examples=256",
        "--test_examples=256",
        "--budgets=0.5",
        f"--output={output}",
        data=fake_data,
    )
    results = json.loads(output.read_text())
    assert {r["contender"] for r in results["rows"]} == {
        "per_example",
        "minibag_f1",
    }
    for row in results["rows"]:
        assert 0.0 <= row["f1_bag"] <= 1.0
        assert row["rules_f1_bag"] is not None
    # The rules' points: argmax, then the threshold sweep.
    assert len(results["rules"]["0"]) > 1
