"""Chain: before each of three stages a controller picks the full, half
or quarter width version of the stage, or skips it.

Trains on 20,000 Fashion-MNIST images for 2 epochs, then prints how often
each version of each stage ran on the test images.
Run: `python examples/chain.py`.
"""

import keras
import numpy as np

import keras_d2nn
from keras_d2nn import data

train = data.load("fashion_mnist", "train[:20000]", batch_size=128)
x_test, y_test = data.load_arrays("fashion_mnist", "test")

model = keras_d2nn.architectures.chain()
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

for controller in model.plan.controllers:
    actions = model.plan.nodes[controller].actions
    shares = np.bincount(decisions[controller], minlength=len(actions))
    print(
        controller,
        ", ".join(
            f"{a} {s / len(y_test):.1%}" for a, s in zip(actions, shares)
        ),
    )
