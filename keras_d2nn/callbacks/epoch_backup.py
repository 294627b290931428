"""A backup of training at each epoch's end that a killed run resumes
from, and that is never half written.

Keras's `BackupAndRestore` writes its weights and then its metadata: a
kill between the two, or a lost metadata file, resumed from the wrong
epoch without a word, and a truncated metadata file gave a
JSONDecodeError (issue 29). Here each backup is one folder (weights,
with the optimizer's and the random streams' state, plus `state.json`
with the weights' SHA-256) moved into place by one rename, so the state
always describes the weights beside it; a backup that does not (edited,
damaged, of other settings) is refused with one line.
"""

import hashlib
import json
import pathlib

import keras
import tensorflow as tf

from keras_d2nn import storage

WEIGHTS = "backup.weights.h5"
STATE = "state.json"
# How many iterators of a `tf.data.Dataset` Keras 3.15's `fit` makes per
# epoch (measured: each draws the next shuffle order); a test checks it.
ITERATORS_PER_EPOCH = 2


class BackupUnusable(ValueError):
    """A backup folder that cannot be resumed from (said in one line)."""


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_backup(directory, fingerprint=None):
    """The state of the backup in `directory` (None if there is none):
    `{"fit": i, "epoch": e, "histories": [...], "weights_sha256": ...,
    "fingerprint": ...}`, checked against its weights and against
    `fingerprint` (the settings of the run that resumes). A backup moved
    aside by a kill between the two renames of its update is moved back
    first.

    Example:

    ```python
    from keras_d2nn.callbacks.epoch_backup import read_backup

    read_backup("runs/.default.backup")  # None: no backup there
    ```
    """
    latest = pathlib.Path(directory) / "latest"
    storage.recover_run_folder(latest)
    if not latest.exists():
        return None
    where = f"the training backup {latest}"
    try:
        state = json.loads((latest / STATE).read_text(encoding="utf-8"))
        digest = _sha256(latest / WEIGHTS)
    except (OSError, ValueError) as error:
        raise BackupUnusable(
            f"{where} is damaged ({type(error).__name__}: {error}); remove "
            "it to train from the start."
        ) from None
    if digest != state.get("weights_sha256"):
        raise BackupUnusable(
            f"{where} holds weights that its state.json does not describe "
            "(SHA-256 differs); remove it to train from the start."
        )
    if fingerprint is not None and state.get("fingerprint") != fingerprint:
        raise BackupUnusable(
            f"{where} is of a run with other settings; rerun with the same "
            "settings to resume it, or remove it to train from the start."
        )
    return state


class EpochBackup(keras.callbacks.Callback):
    """Backs up the model at the end of every epoch into `directory`, and
    resumes from that backup at the start of training.

    The weights are saved with the optimizer's state and the controllers'
    random streams, so that a resumed run continues as the uninterrupted
    one would. One object follows several `fit` calls (the phases of
    `fit_two_phase`): a phase the backup is past is skipped, the phase it
    is in resumes after its last whole epoch.

    Args:
        directory: the backup folder (created; the caller removes it once
            the run's outputs are saved).
        fingerprint: anything JSON-serializable naming the run's settings:
            a backup of other settings is refused.

    Example:

    ```python
    from keras_d2nn.callbacks.epoch_backup import EpochBackup

    backup = EpochBackup("runs/.default.backup", fingerprint={"seed": 0})
    model.fit(images, labels, epochs=3, callbacks=[backup])
    # killed during epoch 3? The same call resumes after epoch 2.
    ```
    """

    def __init__(self, directory, fingerprint=None):
        super().__init__()
        self.directory = pathlib.Path(directory)
        self.fingerprint = fingerprint
        self.state = read_backup(self.directory, fingerprint)
        self._fit = -1
        # Each fit's logs per epoch: the History a resumed fit returns
        # holds the epochs before the kill too, as the uninterrupted one.
        self._histories = [] if self.state is None else self.state["histories"]

    def epochs_done(self, fit):
        """How many epochs of the `fit`-th `fit` call the backup holds
        (None: all of them, the backup is of a later call).

        Example:

        ```python
        from keras_d2nn.callbacks import EpochBackup

        EpochBackup("runs/.default.backup").epochs_done(0)  # 0: no backup
        ```
        """
        if self.state is None or self.state["fit"] < fit:
            return 0
        if self.state["fit"] > fit:
            return None  # all of them
        return self.state["epoch"]

    def on_train_begin(self, logs=None):
        self._fit += 1
        if len(self._histories) <= self._fit:
            self._histories.append({})
        # Keras reads this after `on_train_begin` and never resets it:
        # left set, the next `fit` of the model would start there too.
        self.model._initial_epoch = None
        if self.state is None or self.state["fit"] < self._fit:
            return
        if self.state["fit"] > self._fit:
            # A phase the backup is past: no epoch of it runs again.
            self.model._initial_epoch = self.params["epochs"]
            return
        optimizer = self.model.optimizer
        if optimizer is not None and not optimizer.built:
            optimizer.build(self.model.trainable_variables)
        self.model.load_weights(self.directory / "latest" / WEIGHTS)
        # Keras's own BackupAndRestore resumes through this attribute.
        self.model._initial_epoch = self.state["epoch"]

    def on_train_end(self, logs=None):
        self.model._initial_epoch = None
        history = self.model.history
        if history is not None:
            logs = self._histories[self._fit]
            history.history = {k: list(v) for k, v in logs.items()}
            history.epoch = list(range(len(next(iter(logs.values()), []))))

    def skip_shuffles(self, dataset, fit, epochs):
        """Draws, without reading, the orders of the epochs of the
        `fit`-th call (of `epochs`) that the backup holds from `dataset`
        (reshuffled each epoch), so that the resumed epochs see the
        orders the uninterrupted run saw. `fit_two_phase(backup=...)`
        calls it before each phase.

        Example:

        ```python
        import tensorflow as tf
        from keras_d2nn.callbacks import EpochBackup

        data = tf.data.Dataset.range(8).shuffle(8, seed=0).batch(4)
        EpochBackup("runs/.default.backup").skip_shuffles(data, 0, 3)
        ```
        """
        if not isinstance(dataset, tf.data.Dataset):
            return  # arrays: Keras shuffles them with the global seed
        done = self.epochs_done(fit)
        for _ in range(
            ITERATORS_PER_EPOCH * (epochs if done is None else done)
        ):
            iter(dataset)

    def on_epoch_end(self, epoch, logs=None):
        for key, value in (logs or {}).items():
            self._histories[self._fit].setdefault(key, []).append(float(value))
        self.directory.mkdir(parents=True, exist_ok=True)
        with storage.atomic_output(self.directory / "latest") as folder:
            folder.mkdir()
            self.model.save_weights(folder / WEIGHTS)
            state = {
                "fit": self._fit,
                "epoch": epoch + 1,
                "weights_sha256": _sha256(folder / WEIGHTS),
                "fingerprint": self.fingerprint,
                "histories": self._histories,
            }
            (folder / STATE).write_text(json.dumps(state), encoding="utf-8")
        self.state = state
