"""The main job in-process: estimator, warm-up and ramp settings."""

import json

import pytest

from keras_d2nn import main_job


def test_estimator_warm_up_and_ramp_reach_the_report(tfds_dir, tmp_path):
    config = main_job.TrainConfig(
        epochs=2, train_examples=512, estimator="reinforce_value",
        warmup_epochs=1, cost_weight_ramp_epochs=1, cost_weight=0.2,
        baselines=False, tfds_dir=tfds_dir, output_dir=str(tmp_path),
        verbose=0)
    report = main_job.run(config, log=lambda *_: None)
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["config"]["estimator"] == "reinforce_value"
    assert saved["baselines"] == []
    assert 0.0 < report["mean_cost_fraction"] <= 1.0
    assert (tmp_path / "model.keras").exists()
    assert (tmp_path / "tradeoff.png").exists()


def test_config_check_names_the_bad_setting():
    with pytest.raises(ValueError, match="unknown --estimator 'ppo'"):
        main_job.TrainConfig(estimator="ppo").check()
    with pytest.raises(ValueError, match="--cost_weight_ramp_epochs should "
                                         "be >= 0"):
        main_job.TrainConfig(cost_weight_ramp_epochs=-2).check()
