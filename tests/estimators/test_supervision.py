"""Deep supervision (`Graph.supervise`): the loss of supervised nodes on
the examples they ran for, of their classes only when given, saved with
the graph, and its errors."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_d2nn
from keras_d2nn import Graph
from keras_d2nn.estimators.objective import supervision_loss
from keras_d2nn.testing import LOSS


def supervised_graph(**supervise):
    graph = Graph()
    graph.input("x", shape=(4,))
    graph.f_node("early", keras.layers.Dense(3), inputs="x")
    graph.f_node("late", keras.layers.Dense(3), inputs="early")
    graph.output("late")
    graph.supervise("early", **supervise)
    return graph


def per_example(model, x, y):
    logits = model.trace(x).values["early"]
    return keras.losses.SparseCategoricalCrossentropy(
        from_logits=True, reduction=None
    )(y, logits).numpy()


def test_classes_restrict_the_loss_to_their_examples():
    x = np.random.default_rng(0).normal(size=(6, 4)).astype("float32")
    y = np.array([0, 1, 2, 0, 1, 2], "int32")
    everything = keras_d2nn.D2NNModel(supervised_graph())
    experts = keras_d2nn.D2NNModel.from_config(
        keras_d2nn.D2NNModel(supervised_graph(classes=[0, 2])).get_config()
    )
    experts.set_weights(everything.get_weights())
    losses = per_example(everything, x, y)
    for model, counted in ((everything, losses), (experts, losses * (y != 1))):
        trace = model.trace(x)
        total = supervision_loss(model.plan, LOSS, trace, tf.constant(y))
        # Divided by the batch size, as Keras's compute_loss.
        np.testing.assert_allclose(float(total), counted.sum() / 6, rtol=1e-5)
    assert experts.plan.supervised[0].classes == (0, 2)


@pytest.mark.parametrize(
    "supervise, message",
    [
        ({"classes": []}, "`classes` should list class indices >= 0"),
        ({"classes": [-1]}, "`classes` should list class indices >= 0"),
        ({"classes": [3]}, r"`classes` should be among the 3 classes"),
    ],
)
def test_bad_classes_are_refused(supervise, message):
    with pytest.raises(ValueError, match=message):
        keras_d2nn.D2NNModel(supervised_graph(**supervise))
