"""Catching a loss that reads the model's logits as probabilities.

A D2NN's outputs are logits: the serving function's `probabilities`,
`ConfidenceFeatures`, the threshold exit and the routing reports all take
their softmax. Keras's string losses `"sparse_categorical_crossentropy"`
and `"categorical_crossentropy"` (and the loss classes without
`from_logits=True`) read their input as probabilities instead, and
training then goes wrong without an error: on scikit-learn's digits a
two-phase D2NN ended at 0.10 to 0.29 accuracy instead of 0.96. `compile` warns.
"""

import warnings

import keras

_PROBABILITY_LOSSES = (
    "sparse_categorical_crossentropy",
    "categorical_crossentropy",
    "binary_crossentropy",
)


def reads_probabilities(loss):
    """Whether `loss` (as `compile` takes it) reads probabilities, not
    logits.

    Example: `reads_probabilities("sparse_categorical_crossentropy")  # True`.
    """
    if isinstance(loss, str):
        return loss in _PROBABILITY_LOSSES
    if isinstance(
        loss,
        (
            keras.losses.SparseCategoricalCrossentropy,
            keras.losses.CategoricalCrossentropy,
            keras.losses.BinaryCrossentropy,
        ),
    ):
        return not getattr(loss, "from_logits", False)
    return False


def warn_if_probability_loss(loss):
    """Warns when `loss` (or any loss of a list or dict of them) reads
    probabilities, saying which loss to use.

    Example: `warn_if_probability_loss("categorical_crossentropy")`.
    """
    losses = (
        list(loss.values())
        if isinstance(loss, dict)
        else list(loss)
        if isinstance(loss, (list, tuple))
        else [loss]
    )
    for one in losses:
        if reads_probabilities(one):
            name = one if isinstance(one, str) else type(one).__name__
            warnings.warn(
                f"D2NNModel.compile: loss {name!r} reads the model's "
                "outputs as probabilities, but a D2NN outputs logits (the "
                "exports, ConfidenceFeatures and the threshold exit take "
                "their softmax): training goes wrong without an error. Use "
                "keras.losses.SparseCategoricalCrossentropy(from_logits="
                "True) (or CategoricalCrossentropy(from_logits=True) for "
                "one-hot labels).",
                stacklevel=3,
            )
            return
