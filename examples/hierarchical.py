"""Hierarchical: a coarse classifier (tops, shoes, others) routes each
image to one fine-grained expert.

Trains on 20,000 Fashion-MNIST images for 2 epochs, then prints, for each
true group, which expert the images went to.
Run: `python examples/hierarchical.py`.
"""

import keras
import numpy as np

import keras_d2nn
from keras_d2nn import data

train = data.load("fashion_mnist", "train[:20000]", batch_size=128)
x_test, y_test = data.load_arrays("fashion_mnist", "test")

model = keras_d2nn.architectures.hierarchical()
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

groups = model.graph.metadata["groups"]
experts = model.plan.nodes["route"].actions
for group, labels in groups.items():
    members = np.isin(y_test, labels)
    shares = np.bincount(decisions["route"][members], minlength=len(experts))
    print(
        f"{group:<7} ->",
        ", ".join(
            f"{e} {s / members.sum():.1%}" for e, s in zip(experts, shares)
        ),
    )
