"""Saving the state of a layer's random streams with its weights.

Keras 3.15 leaves `SeedGenerator` states out of `save_weights` and of
`.keras` files, so `BackupAndRestore` and `ModelCheckpoint` resume a
D2NN with its controllers' sampling streams back at their start: a
resumed run then samples other actions than an uninterrupted one. The
mixin stores each named generator's state next to the layer's own
variables (files without it still load).
"""


class SavesSeedState:
    """Mixin for a Keras layer: `SEED_ATTRIBUTES` names its generators.

    Example:

    ```python
    class Sampler(SavesSeedState, keras.layers.Layer):
        SEED_ATTRIBUTES = ("seed_generator",)
    ```
    """

    SEED_ATTRIBUTES = ()

    def _seed_keys(self):
        return {
            f"seed_state_{name}": getattr(self, name)
            for name in self.SEED_ATTRIBUTES
        }

    def save_own_variables(self, store):
        super().save_own_variables(store)
        for key, generator in self._seed_keys().items():
            store[key] = generator.state

    def load_own_variables(self, store):
        keys = self._seed_keys()
        super().load_own_variables(
            {k: store[k] for k in store.keys() if k not in keys}
        )
        present = set(store.keys())
        for key, generator in keys.items():
            if key in present:
                generator.state.assign(store[key])
