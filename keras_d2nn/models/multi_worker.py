"""Work-arounds for Keras 3.15's `fit` under MultiWorkerMirroredStrategy.

Keras reduces two things across replicas in ways that fail under that
strategy (keras-team/keras#20585): the first batch, which the symbolic
build reduces with `strategy.reduce("MEAN")`, and a step's logs, reduced
with `axis=0` though they are scalars. `D2NNModel` mixes this class in.
"""

import tensorflow as tf

from keras_d2nn.execution import replicas


class MultiWorkerFixes:
    """Overrides two `keras.Model` internals; see the module docstring."""

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Keras 3.15 gets a batch to build from by `strategy.reduce("MEAN")`
        # of the first distributed batch, which fails under
        # MultiWorkerMirroredStrategy ("Attempt to convert a value
        # (PerReplica...)", keras-team/keras#20585). Building needs only
        # the shapes: this replica's part of the batch gives them.
        strategy = getattr(self, "_distribute_strategy", None)
        if iterator is None or strategy is None:
            return super()._maybe_symbolic_build(iterator, data_batch)
        for _, _, batches in iterator:
            data_batch = tf.nest.map_structure(
                lambda v: (
                    strategy.experimental_local_results(v)[0]
                    if isinstance(v, tf.distribute.DistributedValues)
                    else v
                ),
                next(batches),
            )
            break
        return super()._maybe_symbolic_build(data_batch=data_batch)

    def _step_logs(self, logs):
        # Keras 3.15 reduces a step's logs with `strategy.reduce("MEAN",
        # axis=0)` under MultiWorkerMirroredStrategy, which fails for
        # scalars (keras-team/keras#20585). The metrics are already
        # synchronised across replicas: as vectors of one element they
        # reduce to the same scalars.
        if not replicas.multi_worker():
            return logs
        return tf.nest.map_structure(lambda v: tf.reshape(v, [1]), logs)
