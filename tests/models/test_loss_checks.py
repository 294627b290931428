"""A loss that reads the D2NN's logits as probabilities is warned about at
`compile` (on scikit-learn's digits such a run ended at 0.10 to 0.29 accuracy
instead of 0.96: keras_d2nn/models/loss_checks.py)."""

import warnings

import keras
import pytest

from keras_d2nn.models import loss_checks
from keras_d2nn.testing import LOSS
from keras_d2nn.testing import small_high_low


@pytest.mark.parametrize(
    "loss",
    [
        "sparse_categorical_crossentropy",
        keras.losses.SparseCategoricalCrossentropy(),
        ["categorical_crossentropy"],
        {"logits": keras.losses.CategoricalCrossentropy()},
    ],
)
def test_probability_losses_are_warned_about(loss):
    with pytest.warns(UserWarning, match="from_logits=True"):
        small_high_low().compile("adam", loss)


@pytest.mark.parametrize(
    "loss",
    [LOSS, "mse", keras.losses.CategoricalCrossentropy(from_logits=True)],
)
def test_logit_losses_pass_silently(loss):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        small_high_low().compile("adam", loss)


def test_only_cross_entropies_without_from_logits_read_probabilities():
    assert loss_checks.reads_probabilities("sparse_categorical_crossentropy")
    assert loss_checks.reads_probabilities(keras.losses.BinaryCrossentropy())
    assert not loss_checks.reads_probabilities(LOSS)
    assert not loss_checks.reads_probabilities("mae")
