"""What a replica needs to know of the others under `tf.distribute`.

Under `MirroredStrategy` or `MultiWorkerMirroredStrategy` every replica
runs the training step on its own slice of the global batch, with the same
variables (and so the same seeds). Two things then go wrong unless each
replica knows its place and the replicas share statistics:

- random draws: every replica would draw the same numbers for its slice,
  so example `i` of replica 0 and example `i` of replica 1 would explore
  alike, and the decisions would depend on how many devices there are;
- batch statistics (mean rewards, advantage moments): each replica would
  see only its slice.

The helpers here give a replica its slice of the global batch (for
`sampling.uniform_noise`) and the statistics of the global batch, so
that training on several devices takes the same decisions and steps as
one device on the same global batch. Outside a strategy (one replica)
they add no op.
"""

import tensorflow as tf


def num_replicas():
    """Replicas in sync under the current strategy (1 outside one).

    Example: `loss / replicas.num_replicas()`.
    """
    return tf.distribute.get_strategy().num_replicas_in_sync


def multi_worker():
    """Whether training runs on several workers (MultiWorkerMirrored).

    Example: `if replicas.multi_worker(): ...`.
    """
    strategy = tf.distribute.get_strategy()
    return (
        isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
        and strategy.extended._in_multi_worker_mode()
    )


def _replica_context():
    """The replica context when several replicas run in sync, else None."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return None
    return context


def batch_slice(batch_size):
    """`(offset, global_size)` of this replica's slice of the global batch.

    Replicas hold consecutive slices of the global batch in replica order,
    as `tf.distribute` splits it. The slices are taken to be of equal size,
    which saves a collective per step: the last batch of an epoch, when it
    is split unevenly, gets draws that differ from one device's.

    Example:

    ```python
    offset, total = batch_slice(tf.shape(x)[0])  # (0, batch) on one device
    ```
    """
    batch_size = tf.cast(batch_size, tf.int32)
    context = _replica_context()
    if context is None:
        return tf.constant(0, tf.int32), batch_size
    replica = tf.cast(context.replica_id_in_sync_group, tf.int32)
    return replica * batch_size, context.num_replicas_in_sync * batch_size


def mean(values):
    """Mean of the per-example `values` over the global batch.

    Example: `baseline = mean(rewards)`.
    """
    values = tf.convert_to_tensor(values)
    context = _replica_context()
    if context is None:
        return tf.reduce_mean(values)
    total, count = context.all_reduce(
        tf.distribute.ReduceOp.SUM,
        [tf.reduce_sum(values), tf.cast(tf.size(values), values.dtype)],
    )
    return total / count


def moments(values):
    """`(mean, variance)` of the per-example `values` over the global batch.

    Example: `mu, var = moments(advantages)`.
    """
    values = tf.convert_to_tensor(values)
    context = _replica_context()
    if context is None:
        return tf.nn.moments(values, axes=[0])
    # One collective for both: E[x] and E[x^2].
    total, squares, count = context.all_reduce(
        tf.distribute.ReduceOp.SUM,
        [
            tf.reduce_sum(values),
            tf.reduce_sum(tf.square(values)),
            tf.cast(tf.size(values), values.dtype),
        ],
    )
    center = total / count
    return center, tf.maximum(squares / count - tf.square(center), 0.0)
