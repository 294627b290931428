"""The main job trained on a latency profile: the controllers pay
milliseconds, and the budget and report are in them. The profile is a
fixed one (timing is for `profile_job` and the benchmarks): every figure
of the report follows from it and the decisions taken."""

import pytest

from keras_d2nn.estimators import budget as budget_lib
from keras_d2nn.experiments import train_job
from keras_d2nn.profiling import LatencyProfile


@pytest.fixture
def tfds_dir(fake_tfds_dir):
    """Synthetic Fashion-MNIST look-alikes (tests/conftest.py): these
    tests are about the job, not about accuracy on real images."""
    return fake_tfds_dir


# Milliseconds per example of each node, at batch 4, and per batch: the
# call of the model (base) and the high network's (fixed) as a profile
# fitted to the routed model has them.
PROFILE = LatencyProfile(
    {
        "low": 0.02,
        "low_head": 0.002,
        "gate_features": 0.001,
        "gate": 0.002,
        "high": 0.05,
    },
    runtime="tf_cpu",
    batch_size=4,
    node_fixed_ms={"high": 0.08},
    base_ms=0.2,
)
# Per example: the cheap route pays the base (0.2 / 4) and the low path
# with the gate; the full route adds the high network (0.05 + 0.08 / 4).
CHEAP_MS = 0.05 + 0.02 + 0.002 + 0.001 + 0.002
FULL_MS = CHEAP_MS + 0.05 + 0.02


def test_train_job_pays_the_profiles_milliseconds(tfds_dir, tmp_path):
    path = str(tmp_path / "profile.json")
    PROFILE.save(path)
    config = train_job.TrainConfig(
        arch="high_low",
        epochs=1,
        gate_epochs=1,
        train_examples=1024,
        val_examples=500,
        # Above the cheap route's share of the time (0.52 here, 0.45 at
        # batch 4 in TF: the model's call costs time, not FLOPs).
        budget=0.7,
        baselines=False,
        tensorboard=False,
        verbose=0,
        tfds_dir=tfds_dir,
        output_dir=str(tmp_path / "run"),
        latency_profile=path,
    )
    lines = []
    report = train_job.run(config, log=lines.append)
    assert report["cost"] == "latency"
    assert report["full_ms"] == pytest.approx(FULL_MS, rel=1e-9)
    assert report["latency_profile"] == {
        "path": path,
        "runtime": "tf_cpu",
        "batch_size": 4,
    }
    # Each test example pays its route's milliseconds: the mean is the
    # cheap route's plus the high network's for the share that ran it.
    high = report["action_rates"]["gate"]["high"]
    assert report["mean_ms"] == pytest.approx(
        CHEAP_MS + high * (FULL_MS - CHEAP_MS), rel=1e-5
    )
    # The cost fractions are of the full latency, not of the FLOPs.
    assert report["mean_cost_fraction"] == pytest.approx(
        report["mean_ms"] / FULL_MS, rel=1e-5
    )
    assert report["budget"]["landed_cost"] == report["mean_cost_fraction"]
    # The cheapest route's share of the time, not of the FLOPs (the
    # model's call and routing cost time, not FLOPs).
    assert report["budget"]["cheapest_cost"] == pytest.approx(
        CHEAP_MS / FULL_MS, rel=1e-6
    )
    model = train_job.builder(config)()
    assert budget_lib.cheapest_cost(model.plan) < 0.01
    assert any(
        f"{report['mean_ms']:.4f} of {FULL_MS:.4f} ms per example, "
        "predicted for tf_cpu" in x
        for x in lines
    )
    assert any("budget 0.7 of the full latency: the cost" in x for x in lines)


def test_another_graphs_profile_is_refused_with_its_path(tmp_path):
    path = tmp_path / "cascade.json"
    LatencyProfile({"stage1": 0.01, "head1": 0.001}).save(path)
    model = train_job.builder(train_job.TrainConfig(arch="high_low"))()
    with pytest.raises(ValueError, match="is not a latency profile of this"):
        train_job.load_latency_profile(path, model.plan)
    path.write_text("not json")
    with pytest.raises(ValueError, match="is not a latency profile of this"):
        train_job.load_latency_profile(path, model.plan)
