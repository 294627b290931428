"""High-low: a cheap network sees every image; a controller runs the
expensive network only where it is needed.

Trains with the two-phase recipe on 20,000 Fashion-MNIST images (2 epochs
of every module on every image, then 1 of the controller alone), lands it
on a budget of 0.3 of the full network's FLOPs with 5,000 held-out
images, prints the test accuracy and mean cost beside the
confidence-threshold exit at the same FLOPs, then which classes the
controller sends to the expensive network (two or three minutes on a
laptop CPU).
Run: `python examples/high_low.py`.
"""

import keras
import numpy as np

import keras_d2nn
from keras_d2nn import data
from keras_d2nn.experiments import baselines

train = data.load("fashion_mnist", "train[:20000]", batch_size=128)
x_held_out, _ = data.load_arrays("fashion_mnist", "train[-5000:]")
x_test, y_test = data.load_arrays("fashion_mnist", "test")

# The gate reads the cheap head's confidence (the recipe's setting).
model = keras_d2nn.architectures.high_low(gate_input="confidence")
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

high = routes.decisions["gate"] == 1
for label, name in enumerate(data.DATASETS["fashion_mnist"]["class_names"]):
    print(f"{name:<12} expensive for {np.mean(high[y_test == label]):6.1%}")
model.cost_report(x_test)
