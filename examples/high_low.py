"""High-low: a cheap network sees every image; a controller runs the
expensive network only where it is needed.

Trains on 20,000 Fashion-MNIST images for 2 epochs (a minute or two on a
laptop CPU), prints the test accuracy and mean cost, then which classes
the controller sends to the expensive network.
Run: `python examples/high_low.py`.
"""

import keras
import numpy as np

import keras_d2nn
from keras_d2nn import data

train = data.load("fashion_mnist", "train[:20000]", batch_size=128)
x_test, y_test = data.load_arrays("fashion_mnist", "test")

model = keras_d2nn.architectures.high_low()
model.compile(
    optimizer="adam",
    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    metrics=["accuracy"],
    cost_weight=0.1,
)
model.fit(train, epochs=2, shuffle=False)
results = model.evaluate(x_test, y_test, return_dict=True, verbose=0)
print(
    f"test accuracy {results['accuracy']:.4f}, "
    f"mean cost {results['cost']:.3f} of the full network"
)
decisions = model.route(x_test)["decisions"]

high = decisions["gate"] == 1
for label, name in enumerate(data.DATASETS["fashion_mnist"]["class_names"]):
    print(f"{name:<12} expensive for {np.mean(high[y_test == label]):6.1%}")
model.cost_report(x_test)
