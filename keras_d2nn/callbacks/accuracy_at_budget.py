"""A validation metric that says how good a D2NN is at the budget it will
serve at: accuracy after landing on the budget, each epoch.

`val_loss` is the loss of whatever the controllers route today: it rises
as a budget sends examples down the cheap path, so EarlyStopping on it
stops a D2NN that is getting better at its budget. Landed on the budget
first, every epoch is compared at the same cost.
"""

import keras
import numpy as np

from keras_d2nn.estimators import budget as budget_lib


class AccuracyAtBudget(keras.callbacks.Callback):
    """At the end of each epoch, lands the model on `budget` with the
    validation inputs (`calibrate_budget`), routes them, and adds to the
    logs `val_accuracy_at_budget` and `val_cost_at_budget` (the cost
    reached, a fraction of the full network's). The controllers' trained
    decisions are restored afterwards: training goes on unpriced.

    Put it before the callbacks that read these logs (EarlyStopping,
    ModelCheckpoint): Keras hands every callback the same logs, in
    order. The price is found and measured on the same examples: choose
    the epoch with them, report on a test set.

    Args:
        validation_data: `(inputs, integer labels)`.
        budget: the cost fraction the model will serve at, in (0, 1], at
            least the cost of the graph's cheapest route.
        batch_size: of the routing passes.

    Example:

    ```python
    from keras_d2nn.callbacks import AccuracyAtBudget
    from keras_d2nn.testing import LOSS, routing_data, small_high_low

    model = small_high_low()
    model.compile("adam", LOSS)
    x, y = routing_data(256)
    at_budget = AccuracyAtBudget((x[:128], y[:128]), budget=0.5)
    stop = keras.callbacks.EarlyStopping(
        "val_accuracy_at_budget", mode="max", patience=2)
    history = model.fit(x, y, epochs=2, verbose=0,
                        callbacks=[at_budget, stop])
    history.history["val_accuracy_at_budget"]  # one figure per epoch
    ```
    """

    def __init__(self, validation_data, budget, batch_size=256):
        super().__init__()
        if not (
            isinstance(validation_data, (tuple, list))
            and len(validation_data) == 2
        ):
            raise ValueError(
                "AccuracyAtBudget: `validation_data` should be a pair "
                "(inputs, integer labels). Received: "
                f"{type(validation_data).__name__}"
            )
        self.inputs, labels = validation_data
        self.labels = np.asarray(labels)
        self.budget = budget_lib.check_target_cost(budget)
        self.batch_size = int(batch_size)

    def on_train_begin(self, logs=None):
        cheapest = budget_lib.cheapest_cost(
            self.model.plan, self.model.cost_measure
        )
        if self.budget < cheapest:
            raise ValueError(
                "AccuracyAtBudget: `budget` should be at least the cost of "
                f"the graph's cheapest route, {cheapest:.4g}. Received: "
                f"budget={self.budget}"
            )

    def on_epoch_end(self, epoch, logs=None):
        model = self.model
        controllers = [
            model.plan.nodes[q].layer for q in model.plan.controllers
        ]
        trained = [c.logit_offset.numpy() for c in controllers]
        try:
            model.calibrate_budget(
                self.inputs, target_cost=self.budget, batch_size=self.batch_size
            )
            routes = model.route(
                self.inputs, batch_size=self.batch_size, labels=self.labels
            )
        finally:
            for controller, offset in zip(controllers, trained):
                controller.logit_offset.assign(offset)
        if logs is not None:
            logs["val_accuracy_at_budget"] = float(routes.accuracy)
            logs["val_cost_at_budget"] = float(routes.mean_cost_fraction)
