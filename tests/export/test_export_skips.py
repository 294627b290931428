"""Every export really skips: a branch runs only on the examples routed to
it, and not at all when none is.

The expensive branch of the model under test is a `BranchProbe`: examples
that take it read the size of the sub-batch it ran on, and an example
marked as one it must never see makes the runtime fail. Outputs alone
cannot tell skipping from computing every branch and discarding the
unused results (masking gives the same answers); these tests can, and fail
when routed execution computes a skipped branch (checked by making every
run masked in `execution/engine.py`).
"""

import numpy as np
import pytest

from keras_d2nn.testing import HIGH
from keras_d2nn.testing import STOP
from keras_d2nn.testing import probe_inputs
from keras_d2nn.testing import probe_model
from keras_d2nn.testing.branch_probe import TRIPWIRE
from tests.export.skip_exports import ALL
from tests.export.skip_exports import load_every_export
from tests.export.skip_exports import run


@pytest.fixture(scope="module")
def model():
    return probe_model()


@pytest.fixture(scope="module")
def exports(model, tmp_path_factory):
    return load_every_export(model, tmp_path_factory.mktemp("exports"))


@pytest.mark.parametrize("name", ALL)
def test_a_marked_example_routed_to_the_probe_fails_the_run(name, exports):
    # The tripwire is live in this runtime, so the tests below, where no
    # marked example is routed to it, would fail if it ran on one.
    x = probe_inputs([HIGH])
    x[0, 0] = 10 * TRIPWIRE
    with pytest.raises(Exception, match="(?i)index|indices|refused"):
        run(exports[name], x)


@pytest.mark.parametrize("name", ALL)
def test_branch_runs_only_on_the_examples_routed_to_it(name, exports):
    routes = [STOP, HIGH, STOP, STOP, HIGH, STOP, HIGH, STOP]
    out = run(exports[name], probe_inputs(routes))
    np.testing.assert_array_equal(out["decision_gate"], routes)
    taken = np.array(routes) == HIGH
    # The probe's sub-batch held exactly the three examples routed to it
    # (one at a time at batch 1), not the batch of eight.
    rows = 1 if exports[name].batch_size == 1 else taken.sum()
    np.testing.assert_array_equal(out["logits"][taken], rows)


@pytest.mark.parametrize("name", ALL)
def test_branch_no_example_takes_does_not_run(name, exports, model):
    x = probe_inputs([STOP] * 5)
    out = run(exports[name], x)
    np.testing.assert_array_equal(out["decision_gate"], STOP)
    np.testing.assert_allclose(
        out["logits"], model.trace(x).outputs["logits"], atol=1e-5
    )


def test_keras_routed_execution_skips_like_its_exports(model):
    routes = [STOP, HIGH, STOP, HIGH]
    trace = model.trace(probe_inputs(routes))
    np.testing.assert_array_equal(trace.decisions["gate"], routes)
    logits = np.asarray(trace.outputs["logits"])
    np.testing.assert_array_equal(logits[np.array(routes) == HIGH], 2)
