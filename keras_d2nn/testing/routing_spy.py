"""A callback that records what a D2NN trains under, epoch by epoch."""

import keras


class RoutingSpy(keras.callbacks.Callback):
    """Records `(epoch, forced routing, cost weight)` at the first batch of
    each epoch that runs, as the schedules left them.

    Example:

    ```python
    spy = RoutingSpy()
    model.fit(x, y, epochs=3,
              callbacks=schedules.d2nn_callbacks(0.1, epochs=3) + [spy])
    # Warm-up on random routing, then the learned routing at the ramp's
    # cost weights:
    spy.seen  # [(0, {"gate": ("random", [0.5, 0.5])}, 0.0),
              #  (1, {}, 0.0), (2, {}, 0.1)]
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
            self.seen.append(
                (
                    self.epoch,
                    dict(self.model.routing),
                    round(self.model.cost_weight, 6),
                )
            )
