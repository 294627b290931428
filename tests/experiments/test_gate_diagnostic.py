"""The gate diagnostic of issue 17 on hand-checkable arrays and a toy
model."""

import numpy as np
import pytest

from keras_d2nn.experiments import gate_diagnostic as gd
from keras_d2nn.testing import LOSS
from keras_d2nn.testing import small_high_low
from keras_d2nn.testing import toy_data


def test_auc_counts_pairs_and_ties():
    assert gd.auc(np.array([0.1, 0.9]), np.array([False, True])) == 1.0
    assert gd.auc(np.array([0.9, 0.1]), np.array([False, True])) == 0.0
    assert gd.auc(np.array([0.5, 0.5]), np.array([False, True])) == 0.5
    assert np.isnan(gd.auc(np.array([0.5]), np.array([True])))


def test_within_class_auc_ignores_what_separates_classes():
    # The score separates the classes perfectly but ranks within each
    # class backwards: overall high, within class 0.
    score = np.array([0.0, 0.1, 1.0, 1.1])
    positive = np.array([True, False, True, False])
    groups = np.array([0, 0, 1, 1])
    assert gd.within_class_auc(score, positive, groups) == 0.0
    assert gd.auc(score, positive) == pytest.approx(0.25)


def test_accuracy_at_share_sends_the_top_scores():
    stop = np.array([True, False, True, False])
    go_on = np.array([True, True, False, False])
    score = np.array([0.0, 1.0, 0.5, 0.2])
    assert gd.accuracy_at_share(score, stop, go_on, 0.25) == 0.75
    assert gd.accuracy_at_share(score, stop, go_on, 0.5) == 0.5


def test_class_prior_agreement():
    decisions = np.array([True, True, False, False, True])
    groups = np.array([0, 0, 0, 1, 1])
    # Majorities: True in group 0 (2 of 3), a tie in group 1 (1 of 2).
    assert gd.class_prior_agreement(decisions, groups) == pytest.approx(0.6)


def test_diagnose_a_toy_model():
    model = small_high_low()
    model.compile("adam", LOSS, cost_weight=0.1)
    x, y = toy_data(200)
    arrays = gd.gate_scores(model, x, y, batch_size=64)
    assert all(len(v) == 200 for v in arrays.values())
    result = gd.diagnose(arrays)
    assert [r["share"] for r in result["shares"]] == list(gd.SHARES)
    text = gd.format_diagnostic("toy", result)
    assert "gate-thr" in text and "within" in text
