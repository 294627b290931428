"""A callback that records what a D2NN trains under, epoch by epoch."""

import keras


class RoutingSpy(keras.callbacks.Callback):
    """Records `(epoch, forced routing, cost weight)` at the first batch of
    each epoch that runs, as the schedules left them.

    Example:

    ```python
    from keras_d2nn.testing import RoutingSpy

    spy = RoutingSpy()
    model.fit(images, labels, epochs=2, verbose=0, callbacks=[
        keras_d2nn.schedules.WarmUp(epochs=1),
        keras_d2nn.schedules.CostWeightSchedule(
            keras_d2nn.schedules.linear_ramp(0.0, 0.2, epochs=2)),
        spy])
    # Warm-up on random routing, then the learned routing, as the ramp
    # raises the cost weight:
    spy.seen  # [(0, {"gate": ("random", [0.5, 0.5])}, 0.0), (1, {}, 0.1)]
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
