"""TensorBoard logging of what a D2NN decides, next to loss and accuracy."""

from __future__ import annotations

import os
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from keras_d2nn.inspection import batches


class RoutingTensorBoard(keras.callbacks.Callback):
    """Writes a D2NN's routing to TensorBoard after every epoch.

    Use it with `keras.callbacks.TensorBoard(log_dir)` and the same
    `log_dir`. Keras's callback already writes every value of the epoch
    logs, so next to `epoch_loss` and `epoch_accuracy` it shows
    `epoch_cost` (mean executed FLOPs / full FLOPs) and each action's rate,
    `epoch_<controller>_<action>`, for training and validation. This
    callback adds what is not in the logs:

    - `epoch_cost_weight` (run `train`): the cost weight of the epoch, also
      when no `CostWeightSchedule` logs it;
    - with `data` (run `validation`), per controller, histograms of its
      confidence (the probability of the action it took) and of the
      actions taken, and a histogram of the executed FLOPs per example.

    Args:
        log_dir: the directory given to `keras.callbacks.TensorBoard`.
        data: optional inputs (array, dict or list, or a `tf.data`
            dataset) to route after each epoch for the histograms, e.g. a
            slice of the validation set.
        max_examples: at most this many examples of `data` are routed (of
            a dataset, its first batch).
        histogram_freq: every how many epochs the histograms are written.

    Example:

    ```python
    model.fit(images, labels, epochs=1, verbose=0, callbacks=[
        keras.callbacks.TensorBoard("logs"),
        keras_d2nn.RoutingTensorBoard("logs", data=test_images)])
    # tensorboard --logdir logs
    ```
    """

    def __init__(
        self,
        log_dir: str | os.PathLike[str],
        data: (
            np.ndarray
            | Mapping[str, np.ndarray]
            | Sequence[np.ndarray]
            | tf.data.Dataset
            | None
        ) = None,
        max_examples: int = 1000,
        histogram_freq: int = 1,
    ) -> None:
        super().__init__()
        if histogram_freq < 1 or max_examples < 1:
            raise ValueError(
                "`histogram_freq` and `max_examples` should be >= 1. "
                f"Received: histogram_freq={histogram_freq}, "
                f"max_examples={max_examples}"
            )
        self.log_dir = str(log_dir)
        self.data = data
        self.max_examples = int(max_examples)
        self.histogram_freq = int(histogram_freq)
        self._writers: dict[str, tf.summary.SummaryWriter] = {}

    def _writer(self, run):
        if run not in self._writers:
            self._writers[run] = tf.summary.create_file_writer(
                os.path.join(self.log_dir, run)
            )
        return self._writers[run]

    def _confidences(self):
        """Per controller, the confidence and action where it decided."""
        model = self.model
        sample = next(batches.batches(self.data, self.max_examples))
        trace = model.trace(sample, training=False, statistics=False)
        found = {}
        for q in model.plan.controllers:
            decided = trace.decisions[q].numpy()
            ran = decided >= 0
            probabilities = (
                model.plan.nodes[q]
                .layer.action_probabilities(trace.logits[q][ran])
                .numpy()
            )
            chosen = decided[ran]
            found[q] = (probabilities[np.arange(len(chosen)), chosen], chosen)
        return found, trace.executed_flops.numpy()

    def on_epoch_end(
        self, epoch: int, logs: dict[str, Any] | None = None
    ) -> None:
        if "cost_weight" not in (logs or {}):
            with self._writer("train").as_default(step=epoch):
                tf.summary.scalar("epoch_cost_weight", self.model.cost_weight)
        if self.data is None or (epoch + 1) % self.histogram_freq:
            return
        found, flops = self._confidences()
        with self._writer("validation").as_default(step=epoch):
            for q, (confidence, actions) in found.items():
                tf.summary.histogram(f"{q}_confidence", confidence)
                tf.summary.histogram(f"{q}_action", actions.astype("float32"))
            tf.summary.histogram("executed_flops", flops)

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        for writer in self._writers.values():
            writer.flush()
