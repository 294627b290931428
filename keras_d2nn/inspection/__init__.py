"""Seeing what a D2NN decides: routing reports, graph drawings, image
galleries and accuracy-versus-cost plots.

These take a model (or its plan) as an argument and import nothing of
`models/`, so that `D2NNModel`'s own reports can use them.
`routing_report` and `tradeoff_plot` each hold a function of their name,
so they are exported as modules: `keras_d2nn.routing_report.routing_report`.
"""

from keras_d2nn.inspection import routing_report
from keras_d2nn.inspection import tradeoff_plot
from keras_d2nn.inspection.gallery import route_gallery
from keras_d2nn.inspection.graph_plot import plot_graph

__all__ = ["plot_graph", "route_gallery", "routing_report", "tradeoff_plot"]
