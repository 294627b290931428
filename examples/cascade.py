"""Cascade: three classifiers of growing cost; after each, a controller
stops (answers now) or continues to the next stage.

Trains on 20,000 Fashion-MNIST images for 2 epochs, then prints where the
test images stopped and how accurate each exit was.
Run: `python examples/cascade.py`.
"""

import keras
import numpy as np

import keras_d2nn
from keras_d2nn import data

train = data.load("fashion_mnist", "train[:20000]", batch_size=128)
x_test, y_test = data.load_arrays("fashion_mnist", "test")

model = keras_d2nn.architectures.cascade()
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
