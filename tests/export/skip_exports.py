"""What the tests that exports really skip share: every export, ONNX at
batch 1 included, loaded, and a runner feeding batch-1 exports one
example at a time."""

import numpy as np

from keras_d2nn import export
from keras_d2nn.testing import write_every_export

# SavedModel and ONNX at any batch, LiteRT at batch 1 (one tf.cond per
# conditional node) and at any batch (gather/scatter), and ONNX at batch 1.
FORMATS = ("saved_model", "litert", "litert_batched", "onnx")
ALL = FORMATS + ("onnx_batch_one",)


def load_every_export(model, directory):
    """`{format: loaded export}` for every name of `ALL`."""
    paths = write_every_export(model, directory, FORMATS)
    paths["onnx_batch_one"] = export.export_onnx(
        model, directory / "one.onnx", batch_size=1
    )
    return {name: export.load_exported(p) for name, p in paths.items()}


def run(exported, x):
    """The export's outputs on `x`, one example at a time where it was
    exported for batches of one."""
    if exported.batch_size != 1:
        return exported(x)
    parts = [exported(x[i : i + 1]) for i in range(len(x))]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
