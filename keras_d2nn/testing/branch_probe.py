"""A layer that makes a branch's execution visible in any runtime: it
reports how many examples it was run on, and fails the run if it is given
an example marked as one it must never see."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from keras_d2nn.api_export import keras_d2nn_export
from keras_d2nn.graph import Graph
from keras_d2nn.layers import Controller
from keras_d2nn.models import D2NNModel

# An example whose first feature exceeds this must never reach the probe.
TRIPWIRE = 100.0
# The actions of `probe_model`'s gate.
STOP, HIGH = 0, 1


@keras_d2nn_export
class BranchProbe(keras.layers.Layer):
    """Outputs, for each example, the number of examples the layer was run
    on, and fails at run time if any of them is marked (first feature above
    `TRIPWIRE`, 100).

    Put it in a branch that a controller routes, export the model, and run
    the export: examples that took the branch read the size of the
    sub-batch the branch ran on (the number routed to it, not the batch
    size, when routing really skips), and a marked example routed
    elsewhere makes the run fail (an out-of-range `tf.gather`, which
    TensorFlow, LiteRT and ONNX Runtime all refuse) if the branch was
    computed for it anyway. No variable, so every exporter keeps it as it
    is, and no wall clock.

    Args:
        units: width of the output (every column holds the count).

    Input shape: `(batch, features)`. Output shape: `(batch, units)`.

    Example:

    ```python
    from keras_d2nn.testing import BranchProbe

    probe = BranchProbe(3)
    probe(np.zeros((5, 4), "float32"))[:, 0]  # [5.0, 5.0, 5.0, 5.0, 5.0]
    ```
    """

    def __init__(self, units: int = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if int(units) < 1:
            raise ValueError(
                f"`units` should be >= 1. Received: units={units!r}"
            )
        self.units = int(units)

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        rows = tf.shape(inputs)[0]
        # Index 0 of a one-element table, or far out of range for a marked
        # example: the gather fails in every runtime, and its value (0)
        # feeds the output, so no converter can prune it.
        marked = tf.cast(inputs[:, 0] > TRIPWIRE, tf.int32)
        tripped = tf.gather(tf.zeros([1], inputs.dtype), marked * 1_000_000)
        count = tf.cast(rows, inputs.dtype) + tripped
        return tf.tile(count[:, None], [1, self.units])

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.units)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "units": self.units}


def probe_model() -> D2NNModel:
    """A D2NN whose gate sends an example to a `BranchProbe` (`high`)
    where its feature 1 is positive, and otherwise answers from a Dense
    layer (`stop`): inputs `x` of 4 features, output `logits` of 3.

    Example:

    ```python
    from keras_d2nn.testing import HIGH, STOP, probe_inputs, probe_model

    model = probe_model()
    trace = model.trace(probe_inputs([STOP, HIGH, HIGH]))
    trace.decisions["gate"]  # [0, 1, 1]
    trace.outputs["logits"][1:, 0]  # [2.0, 2.0]: the probe ran on 2
    ```
    """
    graph = Graph()
    graph.input("x", shape=(4,))
    graph.f_node("low", keras.layers.Dense(3), inputs="x")
    gate = Controller(2, hidden_units=())
    graph.q_node("gate", gate, inputs="x", actions=("stop", "high"))
    graph.dummy("stop", inputs="low", when=("gate", "stop"))
    graph.f_node("high", BranchProbe(3), inputs="x", when=("gate", "high"))
    graph.merge("logits", inputs=["stop", "high"])
    graph.output("logits")
    model = D2NNModel(graph)
    model(np.zeros((1, 4), "float32"))
    kernel = np.zeros((4, 2), "float32")
    kernel[1, HIGH] = 100.0  # logit of `high` = 100 * feature 1
    gate.network.layers[-1].kernel.assign(kernel)
    return model


def probe_inputs(routes) -> np.ndarray:
    """Inputs of `probe_model`, one per entry of `routes` (`STOP` or
    `HIGH`): feature 1 sends each to its route, and every `STOP` example
    is marked, so that running the probe on it fails.

    Example:

    ```python
    from keras_d2nn.testing import HIGH, STOP, probe_inputs

    probe_inputs([STOP, HIGH])[:, :2]  # [[1000.0, -1.0], [0.0, 2.0]]
    ```
    """
    x = np.zeros((len(routes), 4), "float32")
    for i, route in enumerate(routes):
        if route not in (STOP, HIGH):
            raise ValueError(
                f"`routes` should hold STOP ({STOP}) or HIGH ({HIGH}). "
                f"Received: {route!r} at index {i}"
            )
        x[i, 1] = 1.0 + i if route == HIGH else -1.0 - i
        x[i, 0] = 0.0 if route == HIGH else 10 * TRIPWIRE
    return x
