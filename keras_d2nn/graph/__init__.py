"""The D2NN as a graph: its description, validation, plan and FLOPs.

`Graph` describes the DAG of input, F-, Q-, dummy, merge and output nodes;
`Graph.validate()` checks it and returns the `Plan` that every other part
of the library runs; `layer_flops` counts a Keras layer's FLOPs per
example.
"""

from keras_d2nn.graph.exits import EarlyExit
from keras_d2nn.graph.flops import UncountableLayerError
from keras_d2nn.graph.flops import layer_flops
from keras_d2nn.graph.graph import Graph
from keras_d2nn.graph.plan import Node
from keras_d2nn.graph.plan import Plan

__all__ = [
    "EarlyExit",
    "Graph",
    "Node",
    "Plan",
    "UncountableLayerError",
    "layer_flops",
]
