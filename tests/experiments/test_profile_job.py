"""The profile job: an architecture, built as the main job builds it,
timed on a runtime and written as a latency profile."""

import pytest

from keras_d2nn.experiments import profile_job
from keras_d2nn.experiments import train_job
from keras_d2nn.profiling import LatencyProfile


def test_the_profile_covers_the_graph_train_builds(tmp_path):
    output = tmp_path / "profile.json"
    lines = []
    returned = profile_job.run(
        profile_job.ProfileConfig(
            arch="high_low", batch_size=4, repeats=1, output=str(output)
        ),
        log=lines.append,
    )
    saved = LatencyProfile.load(output)
    assert saved == returned
    assert (saved.runtime, saved.batch_size) == ("tf_cpu", 4)
    # The main job's high_low reads the head's confidence (a node the
    # builder's own default lacks): the profile times that graph.
    model = train_job.builder(train_job.TrainConfig(arch="high_low"))()
    saved.check(model.plan)
    assert "gate_features" in saved.node_ms
    assert saved.full_ms() > 0
    assert any("--latency_profile=" in line for line in lines)


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"runtime": "gpu"}, "`runtime` should be one of"),
        ({"repeats": 0}, "`repeats` should be >= 1"),
        ({"batch_size": 0}, "`batch_size` should be >= 1"),
        ({"output": None}, "`output` should be the path"),
        ({"output": "/no/such/folder/p.json"}, "an existing folder"),
        ({"arch": "resnet"}, "`arch` should be one of"),
    ],
)
def test_bad_settings_are_refused_before_any_timing(settings, message):
    config = profile_job.ProfileConfig(**({"output": "p.json"} | settings))
    with pytest.raises(ValueError, match=message):
        config.check()
