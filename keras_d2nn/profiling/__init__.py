"""Measuring what each node of a D2NN costs in time on a runtime.

`profile_latency(model, runtime=..., batch_size=...)` times every node's
layer alone, then the routed model on each of its routes, and returns a
`LatencyProfile` fitted to those route times (`{node: ms per example}`,
a fixed cost per batch of each node, a base cost per batch; saved as
JSON); `model.compile(cost="latency", latency_profile=profile)` then
trains the controllers on predicted milliseconds instead of FLOPs. See
docs/latency_cost.md.
"""

from keras_d2nn.graph.latency_profile import RUNTIMES
from keras_d2nn.graph.latency_profile import LatencyProfile
from keras_d2nn.profiling.latency import profile_latency

__all__ = ["RUNTIMES", "LatencyProfile", "profile_latency"]
