"""The main job trained on a latency profile: the controllers pay
milliseconds, and the budget and report are in them."""

import pytest

from keras_d2nn.estimators import budget as budget_lib
from keras_d2nn.experiments import profile_job
from keras_d2nn.experiments import train_job
from keras_d2nn.profiling import LatencyProfile


def test_train_job_pays_the_profiles_milliseconds(tfds_dir, tmp_path):
    path = str(tmp_path / "profile.json")
    profile = profile_job.run(
        profile_job.ProfileConfig(
            arch="high_low", batch_size=4, repeats=1, output=path
        ),
        log=lambda line: None,
    )
    config = train_job.TrainConfig(
        arch="high_low",
        epochs=1,
        gate_epochs=1,
        train_examples=1024,
        val_examples=500,
        # Above the cheap route's share of the time (about 0.45 at batch
        # 4 in TF: the model's call costs time, not FLOPs).
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
    assert report["full_ms"] == pytest.approx(profile.full_ms())
    assert report["mean_ms"] > 0
    # The cost fractions are of the full latency, not of the FLOPs.
    assert report["mean_cost_fraction"] == pytest.approx(
        report["mean_ms"] / report["full_ms"], rel=1e-5
    )
    model = train_job.builder(config)()
    flop_cheapest = budget_lib.cheapest_cost(model.plan)
    # The cheap route is a far larger part of the time than of the
    # FLOPs (the model's call and routing cost time, not FLOPs).
    assert report["budget"]["cheapest_cost"] > 2 * flop_cheapest
    assert any("ms per example, predicted for tf_cpu" in x for x in lines)
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
