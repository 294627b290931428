"""keras_d2nn: Dynamic Deep Neural Networks for Keras 3 with real skipping."""

# isort: off
from keras_d2nn import tf_logging  # noqa: F401  (must precede TensorFlow)

# isort: on
from keras_d2nn import architectures
from keras_d2nn import gallery
from keras_d2nn import routing_report
from keras_d2nn import schedules
from keras_d2nn.cost import UncountableLayerError
from keras_d2nn.cost import layer_flops
from keras_d2nn.estimators import Estimator
from keras_d2nn.estimators import GumbelSoftmax
from keras_d2nn.estimators import QLearning
from keras_d2nn.estimators import Reinforce
from keras_d2nn.execution import ExecutionTrace
from keras_d2nn.execution import execute
from keras_d2nn.graph import Graph
from keras_d2nn.graph import Plan
from keras_d2nn.graph_plot import plot_graph
from keras_d2nn.layers.controller import Controller
from keras_d2nn.model import D2NNModel
from keras_d2nn.routing_tensorboard import RoutingTensorBoard
from keras_d2nn.static import static_network
from keras_d2nn.version import __version__

__all__ = [
    "Controller",
    "D2NNModel",
    "Estimator",
    "GumbelSoftmax",
    "ExecutionTrace",
    "Graph",
    "Plan",
    "QLearning",
    "Reinforce",
    "RoutingTensorBoard",
    "UncountableLayerError",
    "__version__",
    "architectures",
    "execute",
    "gallery",
    "layer_flops",
    "plot_graph",
    "routing_report",
    "schedules",
    "static_network",
]
