"""Cascade: three classifiers of growing cost; after each, a controller
stops (answers now) or continues to the next stage.

Trains with the two-phase recipe on 20,000 Fashion-MNIST images (2 epochs
of every stage on every image, then 1 of the controllers alone), lands it
on a budget of 0.3 of the full network's FLOPs with 5,000 held-out
images, prints the test accuracy beside the confidence-threshold exit at
the same FLOPs, then where the test images stopped and how accurate each
exit was.
Run: `python examples/cascade.py`.
"""

import keras
import numpy as np

import keras_d2nn
from keras_d2nn import data
from keras_d2nn.experiments import baselines

train = data.load("fashion_mnist", "train[:20000]", batch_size=128)
x_held_out, _ = data.load_arrays("fashion_mnist", "train[-5000:]")
x_test, y_test = data.load_arrays("fashion_mnist", "test")

# The controllers read their stage's confidence (the recipe's setting).
model = keras_d2nn.architectures.cascade(gate_input="confidence")
keras_d2nn.fit_two_phase(
    model,
    train,
    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    metrics=["accuracy"],
    epochs=2,
    gate_epochs=1,
    shuffle=False,
)
model.calibrate_budget(x_held_out, target_cost=0.3)
routes = model.route(x_test, labels=y_test)
print(
    f"test accuracy {routes.accuracy:.4f}, "
    f"mean cost {routes.mean_cost_fraction:.3f} of the full network"
)
threshold = baselines.threshold_exit_at_cost(
    model, x_test, y_test, routes.mean_flops
)
print(
    "confidence-threshold exit at the same FLOPs: "
    f"{threshold.test_accuracy:.4f} "
    f"({100 * (routes.accuracy - threshold.test_accuracy):+.2f} points)"
)
decisions = routes.decisions

predicted = model.predict(x_test, verbose=0).argmax(axis=-1)
stopped_at = np.where(
    decisions["exit1"] == 0, 1, np.where(decisions["exit2"] == 0, 2, 3)
)
for stage in (1, 2, 3):
    here = stopped_at == stage
    accuracy = np.mean(predicted[here] == y_test[here]) if here.any() else 0
    print(
        f"stopped after stage {stage}: {here.mean():6.1%} of images, "
        f"accuracy {accuracy:.3f}"
    )
