"""Random valid D2NN graphs, for testing routed against masked execution."""

import keras
import numpy as np

from keras_d2nn.graph import Graph
from keras_d2nn.layers.controller import Controller


def random_graph(seed, width=4, input_width=6, max_depth=3):
    """A random valid graph of nested conditional regions.

    Each region is either a Dense node, or a Q-node with 2-3 actions whose
    branches are regions themselves (so controllers nest), closed by a merge
    of alternatives; some regions add an always-running node combined with
    `keras.layers.Add`, and some edges carry non-zero defaults.

    Example:

    ```python
    from keras_d2nn.testing import random_graph

    d2nn = keras_d2nn.D2NNModel(random_graph(seed=3))
    x = np.random.default_rng(0).normal(size=(16, 6)).astype("float32")
    routed, masked = d2nn.trace(x), d2nn.trace(x, mode="masked")
    np.testing.assert_allclose(routed.outputs["y"], masked.outputs["y"],
                               atol=1e-5)
    ```
    """
    rng = np.random.default_rng(seed)
    graph = Graph()
    graph.input("x", shape=(input_width,))
    counter = [0]

    def fresh(prefix):
        counter[0] += 1
        return f"{prefix}{counter[0]}"

    def dense(source, when=None):
        activation = ["relu", "tanh", None][rng.integers(3)]
        return graph.f_node(
            fresh("f"),
            keras.layers.Dense(width, activation),
            inputs=source,
            when=when,
        )

    def region(source, depth):
        choice = rng.random()
        if depth == 0 or choice < 0.3:
            return dense(source)
        if choice < 0.45:
            always = dense(source)
            gated = region(source, depth - 1)
            # A non-zero default: Add sees -1 where the gated part did not run.
            defaults = {gated: -1.0} if rng.random() < 0.5 else None
            return graph.merge(
                fresh("add"),
                [always, gated],
                combine=keras.layers.Add(),
                defaults=defaults,
            )
        num_actions = int(rng.integers(2, 4))
        q = graph.q_node(
            fresh("q"),
            Controller(num_actions, hidden_units=()),
            inputs=source,
            actions=num_actions,
        )
        branches = []
        for action in range(num_actions):
            if rng.random() < 0.25:
                entry = graph.dummy(fresh("d"), inputs=source, when=(q, action))
                branches.append(dense(entry))
            else:
                entry = dense(source, when=(q, action))
                branches.append(region(entry, depth - 1))
        return graph.merge(fresh("m"), branches)

    first = dense("x")
    last = region(first, max_depth)
    if rng.random() < 0.5:
        last = graph.f_node(fresh("head"), keras.layers.Dense(3), inputs=last)
    graph.output(last, "y")
    return graph
