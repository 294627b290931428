"""Attention (glimpse): from a 7x7 view a controller picks one 20x20 region to
look at in full resolution.

Trains on 20,000 Fashion-MNIST images for 2 epochs (a minute or two on a
laptop CPU), then prints the test accuracy, the mean cost and, per node,
how often it ran. Run: `python examples/attention.py`.
"""

import keras

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
print(f"test accuracy {results['accuracy']:.4f}, "
      f"mean cost {results['cost']:.3f} of the full network")
model.cost_report(x_test)
