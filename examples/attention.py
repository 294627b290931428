"""Attention (glimpse): from a 7x7 view of the image, a controller picks
one of five 20x20 regions to look at in full resolution.

Trains on 20,000 Fashion-MNIST images for 2 epochs, then prints which
region the controller looks at for each class.
Run: `python examples/attention.py`.
"""

import keras
import numpy as np

import keras_d2nn
from keras_d2nn import data

train = data.load("fashion_mnist", "train[:20000]", batch_size=128)
x_test, y_test = data.load_arrays("fashion_mnist", "test")

model = keras_d2nn.architectures.attention()
model.compile(
    optimizer="adam",
    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    metrics=["accuracy"],
    cost_weight=0.0,
)
model.fit(train, epochs=2, shuffle=False)
results = model.evaluate(x_test, y_test, return_dict=True, verbose=0)
print(
    f"test accuracy {results['accuracy']:.4f}, "
    f"mean cost {results['cost']:.3f} of the full network"
)
decisions = model.route(x_test)["decisions"]

regions = model.plan.nodes["look"].actions
for label, name in enumerate(data.DATASETS["fashion_mnist"]["class_names"]):
    chosen = np.bincount(
        decisions["look"][y_test == label], minlength=len(regions)
    )
    print(
        f"{name:<12} mostly {regions[chosen.argmax()]} "
        f"({chosen.max() / chosen.sum():.0%})"
    )
