"""keras_d2nn: Dynamic Deep Neural Networks for Keras 3 with real skipping."""

# isort: off
from keras_d2nn import tf_logging  # noqa: F401  (must precede TensorFlow)

# isort: on
from keras_d2nn import architectures
from keras_d2nn import profiling
from keras_d2nn.callbacks import RoutingTensorBoard
from keras_d2nn.callbacks import schedules
from keras_d2nn.estimators import Estimator
from keras_d2nn.estimators import FullInformation
from keras_d2nn.estimators import GumbelSoftmax
from keras_d2nn.estimators import QLearning
from keras_d2nn.estimators import Reinforce
from keras_d2nn.execution import ExecutionTrace
from keras_d2nn.execution import execute
from keras_d2nn.export.static_network import static_network
from keras_d2nn.graph import Graph
from keras_d2nn.graph import Plan
from keras_d2nn.graph import UncountableLayerError
from keras_d2nn.graph import layer_flops
from keras_d2nn.inspection import gallery
from keras_d2nn.inspection import plot_graph
from keras_d2nn.inspection import routing_report
from keras_d2nn.layers import Controller
from keras_d2nn.models import D2NNModel
from keras_d2nn.recipes import fit_two_phase
from keras_d2nn.version import __version__

__all__ = [
    "Controller",
    "D2NNModel",
    "Estimator",
    "FullInformation",
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
    "fit_two_phase",
    "gallery",
    "layer_flops",
    "plot_graph",
    "profiling",
    "routing_report",
    "schedules",
    "static_network",
]
