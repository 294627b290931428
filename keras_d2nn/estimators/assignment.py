"""Which estimator trains which controller, and their serialisation."""

import keras

from keras_d2nn.estimators.base import Estimator


def assign(controllers, estimator, default):
    """Groups controllers by estimator: `[(estimator, (controller, ...))]`.

    `estimator` is None (all get `default`), one estimator for all, or a
    dict `{controller: estimator}` (the others get `default`).

    Example: `assign(("gate",), None, Reinforce())`.
    """
    if estimator is None:
        estimator = default
    if isinstance(estimator, Estimator):
        mapping = {q: estimator for q in controllers}
    elif isinstance(estimator, dict):
        unknown = set(estimator) - set(controllers)
        if unknown:
            raise ValueError(
                f"`estimator` names {sorted(unknown)}, which are not "
                f"controllers; controllers: {list(controllers)}"
            )
        mapping = {q: estimator.get(q, default) for q in controllers}
    else:
        raise TypeError(
            "`estimator` should be a keras_d2nn estimator (Reinforce, "
            "QLearning, GumbelSoftmax) or a dict of them by controller. "
            f"Received: {type(estimator).__name__}"
        )
    for q, est in mapping.items():
        if not isinstance(est, Estimator):
            raise TypeError(
                f"`estimator` for '{q}' should be a keras_d2nn estimator. "
                f"Received: {type(est).__name__}"
            )
    groups = {}
    for q, est in mapping.items():
        groups.setdefault(id(est), (est, []))[1].append(q)
    return [(est, tuple(qs)) for est, qs in groups.values()]


def serialize(estimator):
    """The `compile(estimator=...)` argument as JSON-able config.

    Example: `deserialize(serialize({"gate": QLearning()}))`.
    """
    if isinstance(estimator, dict):
        return {
            q: keras.saving.serialize_keras_object(e)
            for q, e in estimator.items()
        }
    if estimator is None:
        return None
    return keras.saving.serialize_keras_object(estimator)


def deserialize(config):
    """Inverse of `serialize`.

    Example: `estimator = deserialize(config["estimator"])`.
    """
    if config is None:
        return None
    if "class_name" in config:
        return keras.saving.deserialize_keras_object(config)
    return {
        q: keras.saving.deserialize_keras_object(c) for q, c in config.items()
    }
