"""A callback that records what a D2NN trains under, epoch by epoch."""

import keras


class RoutingSpy(keras.callbacks.Callback):
    """Records `(epoch, forced routing, cost weight)` at the first batch of
    each epoch that runs, as the schedules left them.

    Example:

    ```python
    spy = RoutingSpy()
    model.fit(x, y, epochs=2, callbacks=schedule.callbacks() + [spy])
    spy.seen  # [(0, {"gate": ...}, 0.0), (1, {}, 0.1)]
    ```
    """

    def __init__(self):
        super().__init__()
        self.seen = []
        self.epoch = None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if batch == 0:
            self.seen.append((self.epoch, dict(self.model.routing),
                              round(self.model.cost_weight, 6)))
