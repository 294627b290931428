"""Release 0.1's documented module names still import, as the modules
they moved to, with a DeprecationWarning naming the new place."""

import subprocess
import sys

from keras_d2nn import release_0_1

# Each old name's import as 0.1's README and saved_models/README.md wrote
# it, and a name it must give.
SCRIPT = """
import warnings
warnings.simplefilter("always")
with warnings.catch_warnings(record=True) as caught:
    import keras_d2nn.exported
    from keras_d2nn.tuning import D2NNHyperModel
    from keras_d2nn.baselines import measure
    import keras_d2nn.sampling
    from keras_d2nn.verify import verify
import keras_d2nn.export.runtime, keras_d2nn.experiments.tuning
import keras_d2nn.experiments.baselines, keras_d2nn.execution.sampling
import keras_d2nn.export.verify
assert keras_d2nn.exported is keras_d2nn.export.runtime
from keras_d2nn.exported import load_exported
assert load_exported is keras_d2nn.export.runtime.load_exported
assert D2NNHyperModel is keras_d2nn.experiments.tuning.D2NNHyperModel
assert measure is keras_d2nn.experiments.baselines.measure
assert keras_d2nn.sampling is keras_d2nn.execution.sampling
assert verify is keras_d2nn.export.verify.verify
for warning in caught:
    if issubclass(warning.category, DeprecationWarning) and (
        "release 0.1" in str(warning.message)
    ):
        print(warning.filename.rsplit("/", 1)[-1], warning.message)
"""


def test_release_0_1_module_names_import_as_the_moved_modules():
    # A fresh process: a module imports (and warns) once per process.
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert len(lines) == len(release_0_1.MOVED), result.stdout
    for old, new in release_0_1.MOVED.items():
        assert any(
            f"`{old}` is release 0.1's name of `{new}`" in line
            for line in lines
        ), (old, lines)
    # The warning points at the user's import, not at keras_d2nn.
    assert all(line.startswith("<string>") for line in lines), lines
