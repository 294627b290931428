"""The main job in-process: estimator, warm-up and ramp settings."""

import dataclasses
import json
import zipfile

import keras
import numpy as np
import pytest

from keras_d2nn.experiments import train_job


def test_estimator_warm_up_and_ramp_reach_the_report(tfds_dir, tmp_path):
    config = train_job.TrainConfig(
        epochs=2,
        train_examples=512,
        estimator="reinforce_value",
        warmup_epochs=1,
        cost_weight_ramp_epochs=1,
        cost_weight=0.2,
        baselines=False,
        tfds_dir=tfds_dir,
        output_dir=str(tmp_path),
        verbose=0,
    )
    report = train_job.run(config, log=lambda *_: None)
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["config"]["estimator"] == "reinforce_value"
    assert saved["baselines"] == []
    assert 0.0 < report["mean_cost_fraction"] <= 1.0
    assert (tmp_path / "model.keras").exists()
    assert (tmp_path / "tradeoff.png").exists()


def test_config_check_names_the_bad_setting():
    with pytest.raises(
        ValueError,
        match="`estimator` should be one of .* Received: estimator='ppo'",
    ):
        train_job.TrainConfig(estimator="ppo").check()
    with pytest.raises(
        ValueError,
        match="`cost_weight_ramp_epochs` should "
        "be >= 0. Received: "
        "cost_weight_ramp_epochs=-2",
    ):
        train_job.TrainConfig(cost_weight_ramp_epochs=-2).check()


def test_short_runs_are_accepted_and_end_at_the_target_cost_weight():
    # Release 0.1's recipe (a cost weight, no budget: the two-phase
    # default has no ramp to shorten).
    old = dict(estimator="reinforce_value", budget=0.0)
    # Once refused: the warm-up took the only epoch.
    config = train_job.TrainConfig(epochs=1, warmup_epochs=3, **old).check()
    assert config.schedule().cost_weights() == [0.1]
    # Two epochs: warm-up, then the target (not the ramp's 0).
    assert train_job.TrainConfig(epochs=2, **old).schedule().cost_weights() == [
        0.1,
        0.1,
    ]
    # Three epochs: warm-up, the ramp, the target.
    schedule = train_job.TrainConfig(**old).schedule()
    assert (schedule.warmup_epochs, schedule.cost_weights()) == (
        1,
        [0.0, 0.0, 0.1],
    )


def small_run(tfds_dir, output_dir, **settings):
    config = train_job.TrainConfig(
        **{
            **dict(
                # Release 0.1's recipe unless a test asks for another:
                # faster, and what most of these tests are about.
                estimator="reinforce_value",
                budget=0.0,
                train_examples=2048,
                baselines=False,
                tensorboard=False,
                tfds_dir=tfds_dir,
                output_dir=str(output_dir),
                verbose=0,
            ),
            **settings,
        }
    )
    lines = []
    report = train_job.run(config, log=lines.append)
    return report, "\n".join(str(line) for line in lines)


def trained_cost_weight(output_dir):
    config = json.loads(
        zipfile.ZipFile(output_dir / "model.keras").read("config.json")
    )
    return config["compile_config"]["cost_weight"]


def test_one_epoch_run_trains_a_routing_d2nn(tfds_dir, tmp_path):
    report, printed = small_run(tfds_dir, tmp_path, epochs=1, cost_weight=0.01)
    assert report["schedule"] == {
        "warmup_epochs": 0,
        "cost_weight_ramp_epochs": 0,
        "cost_weights": [0.01],
    }
    assert trained_cost_weight(tmp_path) == pytest.approx(0.01)
    assert "no warm-up" in printed and "shortened" in printed
    # It routes: both actions taken on the test split, no warning.
    rates = report["action_rates"]["gate"]
    assert min(rates.values()) > 0.01, rates
    assert report["routing_collapse"]["routes"] == 2
    assert report["warnings"] == [] and "WARNING" not in printed
    assert 0 < report["mean_cost_fraction"] < 1


def test_a_run_that_does_not_route_says_so(tfds_dir, tmp_path):
    # A cost weight far too high for the run: every test image stops.
    report, printed = small_run(tfds_dir, tmp_path, epochs=2, cost_weight=20.0)
    assert report["action_rates"]["gate"]["stop"] == 1.0
    assert report["routing_collapse"] == {
        "routes": 1,
        "controllers": [
            {
                "controller": "gate",
                "action": "stop",
                "ran": 1.0,
                "share": 1.0,
                "rank": "cheapest",
            }
        ],
    }
    [warning] = report["warnings"]
    assert "no routing" in warning and "gate=stop" in warning
    assert "lower --cost_weight (was 20)" in warning
    assert "train longer (more than --epochs=2)" in warning
    # Printed last, and in report.json.
    assert printed.rstrip().endswith(warning)
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["warnings"] == [warning]


def test_a_budget_run_reports_where_it_landed(tfds_dir, tmp_path):
    report, printed = small_run(
        tfds_dir,
        tmp_path,
        epochs=2,
        budget=0.3,
        estimator="full_information",
        val_examples=2000,
        warmup_epochs=1,
    )
    budget = report["budget"]
    assert budget["target_cost"] == 0.3
    assert budget["landed_cost"] == report["mean_cost_fraction"]
    # Landed on the 2,000 held-out images (each one sent high moves the
    # cost by ~0.0005), so the 10,000 test images, drawn like them, land
    # near the budget too (binomial spread of the share ~0.01).
    landing = budget["landing"]
    assert landing["val_examples"] == 2000
    assert landing["landed_cost"] == pytest.approx(0.3, abs=0.002)
    assert budget["landed_cost"] == pytest.approx(0.3, abs=0.04)
    assert "Landed on the budget with 2000 held-out images" in printed
    # The confidence gate (two layers of 64) is the cheapest route's extra.
    assert budget["cheapest_cost"] == pytest.approx(0.0067, abs=1e-3)
    # The multiplier starts at --cost_weight (0.1) and stays there in the
    # warm-up; then the budget moves it.
    # 2 epochs, then the default 2 of the controllers alone.
    first, *_, last = budget["cost_weights"]
    assert len(budget["cost_weights"]) == 4
    assert first == pytest.approx(0.1) and last != first
    assert budget["cost_weight"] == pytest.approx(last)
    assert trained_cost_weight(tmp_path) == pytest.approx(last)
    assert report["schedule"] == {
        "warmup_epochs": 1,
        "cost_weight_ramp_epochs": 0,
        "cost_weights": None,
    }
    assert "budget 0.3 of the full FLOPs" in printed
    assert f"budget 0.30: landed at {budget['landed_cost']:.2f}" in printed
    compile_config = json.loads(
        zipfile.ZipFile(tmp_path / "model.keras").read("config.json")
    )["compile_config"]
    assert compile_config["target_cost"] == 0.3
    # A run without a budget says so.
    assert train_job.TrainConfig(budget=0).target_cost is None


def test_an_accuracy_target_run_reports_the_promise_and_the_test_figure(
    tfds_dir, tmp_path
):
    report, printed = small_run(
        tfds_dir,
        tmp_path,
        epochs=1,
        estimator="full_information",
        gate_epochs=1,
        max_accuracy_drop=0.02,
        val_examples=2000,
    )
    target = report["accuracy_target"]
    held_out, test = target["held_out"], target["test"]
    # Kept on the held-out images by construction.
    assert held_out["examples"] == 2000
    assert held_out["drop"] <= 0.02 + 1e-9
    assert held_out["cost"] < 1.0
    # The test figures are the run's own: its routes at the price found.
    assert test["accuracy"] == report["test_accuracy"]
    assert test["cost"] == report["mean_cost_fraction"]
    assert test["drop"] == pytest.approx(
        test["full_accuracy"] - test["accuracy"]
    )
    assert test["kept"] == (test["drop"] <= 0.02 + 1e-9)
    assert "Landed on at most 0.02 accuracy below the full network" in printed
    assert "accuracy target: at most 0.02 below the full network" in printed
    assert (
        any("accuracy target" in w for w in report["warnings"])
        != (test["kept"])
    )


@pytest.mark.parametrize(
    "settings, message",
    [
        (dict(max_accuracy_drop=1.5), "a fraction in \\[0, 1\\)"),
        (dict(max_accuracy_drop=-0.01), "a fraction in \\[0, 1\\)"),
        (dict(max_accuracy_drop=0.01, val_examples=0), "held-out"),
        (
            dict(arch="attention", max_accuracy_drop=0.01),
            "does not apply to arch='attention'",
        ),
    ],
)
def test_an_accuracy_target_is_checked(settings, message):
    with pytest.raises(ValueError, match=message):
        train_job.TrainConfig(**settings).check()


# Over a minute of training: slow (runs on CI, not in a plain pytest).
@pytest.mark.slow
def test_gate_epochs_train_the_controllers_alone(tfds_dir, tmp_path):
    report, printed = small_run(
        tfds_dir,
        tmp_path,
        epochs=1,
        gate_epochs=1,
        estimator="full_information",
        gate_input="confidence",
    )
    assert "Training the controllers alone for 1 epoch on the frozen" in (
        printed
    )
    assert report["config"]["gate_epochs"] == 1
    model = keras.models.load_model(tmp_path / "model.keras")
    # Trainable again once saved: a loaded model trains as any other.
    assert all(n.layer.trainable for n in model.plan.order if n.kind == "f")


def recipe(settings):
    return (
        settings.estimator,
        settings.gate_input,
        settings.warmup_epochs,
        settings.gate_epochs,
        settings.budget,
    )


def test_defaults_are_the_two_phase_recipe_but_for_attention():
    for arch in ("high_low", "cascade"):
        settings = train_job.TrainConfig(arch=arch).check().resolved()
        assert recipe(settings) == ("full_information", "confidence", 0, 2, 0.3)
    for arch, budget in (("chain", 0.5), ("hierarchical", 0.6)):
        settings = train_job.TrainConfig(arch=arch).check().resolved()
        assert recipe(settings) == (
            "full_information", "features", 0, 2, budget
        )  # fmt: skip
    # Attention: the static-first recipe, its controller regressing each
    # region's value for 12 epochs on its canvas, without a budget.
    settings = train_job.TrainConfig(arch="attention").check().resolved()
    assert recipe(settings) == ("full_information", "features", 0, 12, 0.0)
    assert settings.dataset == "fashion_mnist_canvas"
    assert train_job.TrainConfig().resolved().dataset == "fashion_mnist"
    # What is given stays.
    settings = train_job.TrainConfig(
        estimator="reinforce", budget=0.2, warmup_epochs=0, gate_epochs=1
    ).resolved()
    assert (
        settings.estimator,
        settings.budget,
        settings.warmup_epochs,
        settings.gate_epochs,
    ) == ("reinforce", 0.2, 0, 1)
    assert (
        train_job.TrainConfig(estimator="reinforce").resolved().gate_epochs == 0
    )
    # The schedule of the default: no warm-up, no ramp (a budget).
    schedule = train_job.TrainConfig(epochs=3).schedule()
    assert (schedule.warmup_epochs, schedule.ramp_epochs) == (0, 0)


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"budget": 0.3}, "`budget` does not apply to arch='attention'"),
        (
            {"latency_profile": __file__},
            "`latency_profile` does not apply to arch='attention'",
        ),
        ({"estimator": "reinforce"}, "trains with the static-first recipe"),
    ],
)
def test_attention_refuses_what_its_recipe_cannot_use(settings, message):
    with pytest.raises(ValueError, match=message):
        train_job.TrainConfig(arch="attention", **settings).check()


def test_chance_accuracy_is_a_failure_that_says_what_to_try(tmp_path):
    config = train_job.TrainConfig(output_dir=str(tmp_path / "run"))
    with pytest.raises(
        train_job.TrainingFailed,
        match=r"test accuracy 0.1000 is chance level \(10 classes: 0.10\); "
        r"no model or report was saved",
    ) as failure:
        train_job.check_not_chance(0.1, config)
    assert "Lower --learning_rate (was 0.001)" in str(failure.value)
    train_job.check_not_chance(0.16, config)  # above 1.5 x chance


def test_budget_is_checked_and_its_misses_warned():
    with pytest.raises(
        ValueError,
        match=r"`budget` should be a fraction of the full network's cost "
        r"\(FLOPs, or milliseconds with `latency_profile`\), in \(0, 1\], "
        r"or 0 for none. Received: budget=1.5",
    ):
        train_job.TrainConfig(budget=1.5).check()
    with pytest.raises(ValueError, match="Received: budget=-0.1"):
        train_job.TrainConfig(budget=-0.1).check()
    config = train_job.TrainConfig(budget=0.3, epochs=2)
    assert train_job.budget_warnings(config, 0.31, 0.006) == []
    assert (
        train_job.budget_warnings(train_job.TrainConfig(budget=0), 0.9, 0.0)
        == []
    )
    [miss] = train_job.budget_warnings(config, 0.36, 0.006)
    assert "budget 0.30: landed at 0.36" in miss
    assert "landed on the budget on the held-out images" in miss
    unlanded = dataclasses.replace(
        config, val_examples=0, estimator="reinforce_value"
    )
    [miss] = train_job.budget_warnings(unlanded, 0.36, 0.006)
    assert "--estimator=full_information follows a budget" in miss
    assert "--val_examples=5000 lands the trained model" in miss
    with pytest.raises(ValueError, match="Received: val_examples=60000"):
        train_job.TrainConfig(budget=0.3, val_examples=60_000).check()
    [below] = train_job.budget_warnings(
        train_job.TrainConfig(budget=0.001), 0.0056, 0.0056
    )
    assert "--budget=0.001 is below the cost of the cheapest route" in below
    collapse = {
        "routes": 1,
        "controllers": [
            {"controller": "gate", "action": "stop", "ran": 1.0},
        ],
    }
    collapse["controllers"][0]["rank"] = "cheapest"
    [warning] = train_job.collapse_warnings(collapse, 0.1, 2, budget=0.05)
    assert "raise --budget (was 0.05)" in warning
    assert "--cost_weight" not in warning


def test_collapse_found_on_given_decisions_and_ranked_by_cost():
    from keras_d2nn.testing import small_high_low

    model = small_high_low()
    x = np.random.default_rng(0).normal(size=(64, 6)).astype("float32")
    gate = model.plan.nodes["gate"]
    high = gate.actions.index("high")
    collapse = train_job.routing_collapse(model, x, {"gate": np.full(64, high)})
    assert collapse == {
        "routes": 1,
        "controllers": [
            {
                "controller": "gate",
                "action": "high",
                "ran": 1.0,
                "share": 1.0,
                "rank": "costliest",
            }
        ],
    }
    [warning] = train_job.collapse_warnings(collapse, 0.05, epochs=2)
    assert "(gate=high, the costliest action of every controller)" in warning
    assert "raise --cost_weight (was 0.05)" in warning
    mixed = {"gate": np.arange(64) % 2}
    assert train_job.routing_collapse(model, x, mixed) == {
        "routes": 2,
        "controllers": [],
    }
    # One action for 99.5% of the examples (the rest -1: not decided):
    # collapsed too, whatever its rank, and the warning says how far.
    nearly = np.full(300, high)
    nearly[0] = 1 - high
    nearly[1:11] = -1
    [found] = train_job.routing_collapse(model, x, {"gate": nearly})[
        "controllers"
    ]
    assert found["action"] == "high" and found["ran"] == pytest.approx(
        290 / 300
    )
    assert found["share"] == pytest.approx(289 / 290)
    [warning] = train_job.collapse_warnings(
        {"routes": 2, "controllers": [found]}, 0.05, epochs=2
    )
    assert "gate took high (costliest action) for 99.7% of the test" in (
        warning
    )
    # Below the threshold (98%), it routes.
    routing = np.full(100, high)
    routing[:2] = 1 - high
    assert train_job.routing_collapse(model, x, {"gate": routing}) == {
        "routes": 2,
        "controllers": [],
    }
    assert (
        train_job.collapse_warnings({"routes": 2, "controllers": []}, 0.1, 3)
        == []
    )


def test_a_run_that_fails_while_saving_leaves_the_previous_run_whole(
    tfds_dir, tmp_path, monkeypatch
):
    output = tmp_path / "default"
    output.mkdir()
    (output / "report.json").write_text("previous report")
    (output / "model.keras").write_text("previous model")

    def disk_full(model, path, save_optimizer):
        path.write_bytes(b"half a model")
        raise OSError(28, "No space left on device", str(path))

    # The disk fills as the model is saved, after the report was written.
    monkeypatch.setattr(train_job, "_save", disk_full)
    with pytest.raises(OSError, match="No space left"):
        small_run(tfds_dir, output, epochs=1, train_examples=512)
    assert (output / "report.json").read_text() == "previous report"
    assert (output / "model.keras").read_text() == "previous model"
    # No half-written folder; the training's backup stays, for the rerun
    # (once there is room) to resume from instead of training again.
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".default.backup",
        "default",
    ]


def test_a_run_replaces_the_previous_run_folder_whole(tfds_dir, tmp_path):
    output = tmp_path / "default"
    output.mkdir()
    (output / "report.json").write_text("{}")  # an earlier run's folder
    (output / "stale.png").write_text("from the earlier run")
    report, printed = small_run(tfds_dir, output, epochs=1, train_examples=512)
    assert json.loads((output / "report.json").read_text()) == report
    assert not (output / "stale.png").exists()
    assert keras.models.load_model(output / "model.keras").built
    assert f"wrote to {output}" in printed


def test_a_model_with_non_finite_weights_is_a_failure(tmp_path):
    from keras_d2nn.testing import small_high_low

    model = small_high_low()
    model(np.zeros((1, 6), "float32"))
    config = train_job.TrainConfig(output_dir=str(tmp_path / "run"))
    train_job.check_finite_weights(model, config)  # fresh weights: finite
    weight = model.weights[0]
    weight.assign(np.full(weight.shape, np.nan, "float32"))
    with pytest.raises(
        train_job.TrainingFailed,
        match=r"1 of \d+ weights are NaN or infinite .*no model or report",
    ):
        train_job.check_finite_weights(model, config)
