"""Rewards of controller decisions: task reward minus the weighted cost."""

import keras
import tensorflow as tf

TASK_REWARDS = ("correct", "neg_loss")


def check_task_reward(task_reward):
    """Raises a clear error for an unknown `task_reward`."""
    if callable(task_reward) or task_reward in TASK_REWARDS:
        return task_reward
    raise ValueError(
        f"`task_reward` should be one of {TASK_REWARDS} or a callable "
        f"(y_true, y_pred) -> per-example reward. Received: {task_reward!r}"
    )


def correct(y_true, y_pred):
    """1.0 where the top-1 prediction equals the label, else 0.0.

    Labels may be sparse integers `(batch,)`/`(batch, 1)` or one-hot.

    Example: `correct([2, 0], [[0., 1., 5.], [1., 0., 0.]])  # [1., 1.]`
    """
    y_pred = tf.convert_to_tensor(y_pred)
    y_true = tf.convert_to_tensor(y_true)
    predicted = tf.argmax(y_pred, axis=-1, output_type=tf.int32)
    if y_true.shape.rank == y_pred.shape.rank and y_pred.shape[-1] != 1 and (
        y_true.shape[-1] == y_pred.shape[-1]
    ):
        labels = tf.argmax(y_true, axis=-1, output_type=tf.int32)
    else:
        labels = tf.cast(tf.reshape(y_true, [-1]), tf.int32)
    return tf.cast(tf.equal(predicted, labels), tf.float32)


def per_example_loss(loss, y_true, y_pred):
    """The per-example value `(batch,)` of a Keras loss (name or object).

    Example: `per_example_loss("sparse_categorical_crossentropy", y, probs)`.
    """
    loss_fn = keras.losses.get(loss)
    if isinstance(loss_fn, keras.losses.Loss):
        per_example = loss_fn.call(y_true, y_pred)
    else:
        per_example = loss_fn(y_true, y_pred)
    per_example = tf.convert_to_tensor(per_example)
    if per_example.shape.rank > 1:
        per_example = tf.reduce_mean(
            per_example, axis=list(range(1, per_example.shape.rank)))
    return tf.cast(per_example, tf.float32)


def negative_loss(loss, y_true, y_pred):
    """Minus `per_example_loss`: higher is better, as a reward should be.

    Example: `negative_loss("sparse_categorical_crossentropy", y, probs)`.
    """
    return -per_example_loss(loss, y_true, y_pred)


def task_reward(kind, y_true, y_pred, loss=None):
    """Per-example task reward `(batch,)` for `kind` (see `TASK_REWARDS`).

    Example: `task_reward("correct", labels, logits)`.
    """
    if callable(kind):
        return tf.reshape(tf.cast(kind(y_true, y_pred), tf.float32), [-1])
    if kind == "correct":
        return correct(y_true, y_pred)
    return negative_loss(loss, y_true, y_pred)


def reward(task, cost_fraction, cost_weight):
    """`task - cost_weight * cost_fraction`, per example.

    Example: `reward(correct(y, logits), flops / full_flops, 0.5)`.
    """
    return task - tf.cast(cost_weight, tf.float32) * cost_fraction
