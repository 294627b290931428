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
    if (
        y_true.shape.rank == y_pred.shape.rank
        and y_pred.shape[-1] != 1
        and (y_true.shape[-1] == y_pred.shape[-1])
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
            per_example, axis=list(range(1, per_example.shape.rank))
        )
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


def f1_score(y_true, y_pred, positive_class=None):
    """F1 of a set of predictions: macro over classes, or of one class.

    Args:
        y_true: sparse integer labels `(n,)`.
        y_pred: logits or probabilities `(n, classes)`.
        positive_class: if given, the binary F1 of that class; otherwise
            the mean F1 over the classes that occur in labels or predictions.

    Returns:
        A float32 scalar in [0, 1] (1 for an empty set).

    Example: `f1_score([1, 0, 1], [[0., 1.], [1., 0.], [1., 0.]], 1)  # 2/3`.
    """
    y_pred = tf.convert_to_tensor(y_pred)
    labels = tf.cast(tf.reshape(y_true, [-1]), tf.int32)
    predicted = tf.argmax(y_pred, axis=-1, output_type=tf.int32)
    classes = y_pred.shape[-1]
    truth = tf.one_hot(labels, classes)
    guess = tf.one_hot(predicted, classes)
    true_positive = tf.reduce_sum(truth * guess, axis=0)
    false_positive = tf.reduce_sum((1 - truth) * guess, axis=0)
    false_negative = tf.reduce_sum(truth * (1 - guess), axis=0)
    denominator = 2 * true_positive + false_positive + false_negative
    per_class = tf.math.divide_no_nan(2 * true_positive, denominator)
    if positive_class is not None:
        return tf.where(
            denominator[positive_class] > 0, per_class[positive_class], 1.0
        )
    present = tf.cast(denominator > 0, tf.float32)
    count = tf.reduce_sum(present)
    return tf.where(
        count > 0,
        tf.reduce_sum(per_class * present) / tf.maximum(count, 1),
        1.0,
    )


BAG_METRICS = {"f1": f1_score}


def check_bag(bag_size, metric):
    """Checks mini-bag settings; returns the metric as a callable."""
    if bag_size is None:
        return None
    if not isinstance(bag_size, int) or bag_size < 1:
        raise ValueError(
            f"`reward_bag_size` should be an int >= 1. Received: {bag_size!r}"
        )
    if callable(metric):
        return metric
    if metric in BAG_METRICS:
        return BAG_METRICS[metric]
    raise ValueError(
        f"`bag_metric` should be one of {sorted(BAG_METRICS)} or a callable "
        f"(y_true, y_pred) -> scalar. Received: {metric!r}"
    )


def minibag(metric, bag_size, y_true, y_pred):
    """The paper's mini-bag task reward, `(batch,)`.

    Consecutive examples form bags of `bag_size` (the last one may be
    smaller); each example gets the `metric` of its bag, so decisions can
    be trained for set-level metrics such as F1 that do not decompose over
    examples.

    Example: `minibag(f1_score, 8, labels, logits)`.
    """
    labels = tf.reshape(y_true, [-1])
    size = tf.shape(labels)[0]
    starts = tf.range(0, size, bag_size)

    def score(start):
        stop = tf.minimum(start + bag_size, size)
        return tf.cast(
            metric(labels[start:stop], y_pred[start:stop]), tf.float32
        )

    scores = tf.map_fn(score, starts, fn_output_signature=tf.float32)
    return tf.gather(scores, tf.range(size) // bag_size)
