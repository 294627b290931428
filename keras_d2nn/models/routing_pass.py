"""One inference pass over a dataset, recording what every example did.

`D2NNModel.route` returns a `Routes`; the reports (`cost_report`,
`routing_report`, the route gallery, the graph drawing) and the baselines'
measurements take one, so a job routes its test set once.
"""

import collections.abc
import dataclasses

import numpy as np
import tensorflow as tf

from keras_d2nn.inspection.batches import batches_with_labels
from keras_d2nn.models import input_checks


@dataclasses.dataclass
class Routes(collections.abc.Mapping):
    """What each example of a dataset did, as NumPy arrays.

    Read as attributes or, as in release 0.1 where `route` returned a
    dict, by key (`routes["decisions"]`).

    Attributes:
        executed: `{node: bool (n,)}`.
        decisions: `{controller: int (n,)}`, -1 where it did not decide.
        executed_flops: float `(n,)`, FLOPs of the nodes that ran.
        predictions: int `(n,)`, the argmax of the first output.
        labels: int `(n,)` when the data had labels, else None.
        node_values: `{node: array (n, ...)}`: the outputs of the nodes
            asked for (`route(..., values=[...])`).
        full_flops: FLOPs per example of running every node.
        executed_ms: float `(n,)`, the predicted milliseconds of the nodes
            that ran, when the model trains on latency
            (`compile(cost="latency")`), else None.
        full_ms: milliseconds per example of running every node, with
            `executed_ms`, else None.

    Example:

    ```python
    routes = model.route(test_images, labels=test_labels)
    routes.accuracy, routes.mean_cost_fraction, routes.decisions["gate"]
    ```
    """

    executed: dict
    decisions: dict
    executed_flops: np.ndarray
    predictions: np.ndarray
    labels: np.ndarray | None = None
    node_values: dict = dataclasses.field(default_factory=dict)
    full_flops: float = 1.0
    executed_ms: np.ndarray | None = None
    full_ms: float | None = None

    def _keys(self):
        keys = ["executed", "decisions", "executed_flops", "predictions"]
        return keys + ["labels"] * (self.labels is not None)

    def __getitem__(self, key):
        if key not in self._keys():
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self):
        return iter(self._keys())

    def __len__(self):
        return len(self._keys())

    @property
    def examples(self):
        """The number of examples routed."""
        return len(self.predictions)

    @property
    def accuracy(self):
        """Top-1 accuracy; needs the labels."""
        if self.labels is None:
            raise ValueError(
                "accuracy needs labels: route `(x, y)` data or pass `labels=`."
            )
        return float(np.mean(self.predictions == self.labels))

    @property
    def mean_flops(self):
        """Executed FLOPs per example, averaged."""
        return float(self.executed_flops.astype(np.float64).mean())

    @property
    def mean_flop_fraction(self):
        """`mean_flops` over the full network's FLOPs."""
        return self.mean_flops / self.full_flops

    @property
    def mean_ms(self):
        """Predicted milliseconds per example (None without a latency
        cost)."""
        if self.executed_ms is None:
            return None
        return float(self.executed_ms.astype(np.float64).mean())

    @property
    def mean_cost_fraction(self):
        """The mean cost over the full network's, in the unit the model
        trains on: latency when the routes carry predicted milliseconds,
        else FLOPs."""
        if self.executed_ms is not None:
            return self.mean_ms / (self.full_ms or 1.0)
        return self.mean_flop_fraction

    def without_controller_flops(self, plan):
        """The FLOPs of each example without its controllers' (a static
        network runs none).

        Example:

        ```python
        model.set_routing({"gate": "high"})  # the full static network
        routes = model.route(test_images)
        routes.without_controller_flops(model.plan)  # [8642875.0, ...]
        # the high network's FLOPs for each example: the full network's
        # 8,653,245 without the gate's 10,370
        ```
        """
        flops = self.executed_flops.astype(np.float64)
        for q in plan.controllers:
            flops = flops - plan.flops[q] * self.executed[q]
        return flops


def route(model, data, batch_size=256, labels=None, decisions=None, values=()):
    """Routes `data` through `model` in inference mode; see
    `D2NNModel.route`.

    Example: `route(model, test_images, labels=test_labels).accuracy`.
    """
    if not isinstance(data, tf.data.Dataset):
        # Arrays whole, so that the message counts every bad example.
        for name, value in input_checks.pair_inputs(model.input_names, data):
            model._check_values(name, value, "route")
    forced = {q: np.asarray(d, np.int32) for q, d in (decisions or {}).items()}
    unknown = sorted(set(forced) - set(model.plan.controllers))
    if unknown:
        raise ValueError(
            f"`decisions` should name controllers of the model "
            f"{list(model.plan.controllers)}. Received: decisions={unknown}"
        )
    for q, chosen in forced.items():
        count = len(model.plan.nodes[q].actions)
        if chosen.size and not (0 <= chosen.min() and chosen.max() < count):
            raise ValueError(
                f"`decisions['{q}']` should be action indices in [0, "
                f"{count - 1}] ({', '.join(model.plan.nodes[q].actions)}). "
                f"Received values from {chosen.min()} to {chosen.max()}"
            )
    values = tuple(values)
    parts = collections.defaultdict(lambda: collections.defaultdict(list))
    seen = 0
    for x, y in batches_with_labels(data, labels, batch_size):
        inputs = model._input_dict(x, what="route", offset=seen)
        size = int(tf.shape(next(iter(inputs.values())))[0])
        batch_forced = {
            q: tf.constant(d[seen : seen + size]) for q, d in forced.items()
        }
        seen += size
        ran, chosen, cost, output, kept = _traced(model)(
            inputs, batch_forced, values
        )
        for name, part in (
            ("executed", ran),
            ("decisions", chosen),
            ("values", kept),
        ):
            for k, v in part.items():
                parts[name][k].append(v.numpy())
        parts["flat"]["executed_flops"].append(cost.numpy())
        parts["flat"]["predictions"].append(np.argmax(output.numpy(), -1))
        if y is not None:
            parts["flat"]["labels"].append(np.asarray(y).reshape(-1))
    if not seen:
        raise ValueError("`data` is empty: no example to route.")
    joined = {
        name: {k: np.concatenate(v) for k, v in part.items()}
        for name, part in parts.items()
    }
    flat = joined["flat"]
    profile = model.cost_measure.profile
    return Routes(
        executed=joined["executed"],
        decisions=joined.get("decisions", {}),
        executed_flops=flat["executed_flops"],
        predictions=flat["predictions"],
        labels=flat.get("labels"),
        node_values=joined.get("values", {}),
        full_flops=model.full_flops,
        executed_ms=None
        if profile is None
        else profile.per_example(joined["executed"]),
        full_ms=None if profile is None else profile.full_ms(),
    )


def _traced(model):
    """The model's compiled inference pass (rebuilt by `set_routing`)."""
    if model._trace_function is None:

        def run(batch, forced, values):
            trace = model.trace(
                batch,
                training=False,
                statistics=False,
                decisions=forced or None,
            )
            output = next(iter(trace.outputs.values()))
            return (
                trace.executed,
                trace.decisions,
                trace.executed_flops,
                output,
                {k: trace.values[k] for k in values},
            )

        model._trace_function = tf.function(run, reduce_retracing=True)
    return model._trace_function
