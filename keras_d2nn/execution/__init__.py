"""Running a plan on a batch: which examples reach which node.

`execute` runs a validated plan in routed (gather/compute/scatter,
`tf.cond`) or masked (reference) mode and returns an `ExecutionTrace`.
The modules beside it draw the exploration noise (`sampling`), turn forced
routing into decisions (`forced_routing`) and share batch statistics
between `tf.distribute` replicas (`replicas`).
"""

from keras_d2nn.execution.engine import Decision
from keras_d2nn.execution.engine import ExecutionTrace
from keras_d2nn.execution.engine import execute

__all__ = ["Decision", "ExecutionTrace", "execute"]
