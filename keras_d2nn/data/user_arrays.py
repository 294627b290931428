"""A user's own examples from a NumPy file, for the commands that read
data (`verify --data`, `export --data` for int8 calibration).

A `.npy` file holds the inputs; a `.npz` file holds them under `x` and,
optionally, their labels under `y` (as `np.savez("data.npz", x=x, y=y)`
writes). Inputs are checked against the model by the commands
themselves; here only the file and its arrays.
"""

import os
import zipfile

import numpy as np


def load(path, take=None):
    """`(inputs, labels or None)` from `path`, the first `take` examples
    (None: all), or a ValueError saying what was wrong with the file.

    Example:

    ```python
    import numpy as np
    from keras_d2nn.data import user_arrays

    np.savez("/tmp/digits.npz", x=np.zeros((5, 64), "float32"), y=np.arange(5))
    x, y = user_arrays.load("/tmp/digits.npz", take=3)
    x.shape, y.tolist()  # (3, 64), [0, 1, 2]
    ```
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(
            f"--data: no file {path!r}; expected a .npy file of inputs or "
            "a .npz file holding `x` (and `y`, the labels)."
        )
    try:
        # NumPy's default refuses object arrays: loading runs no code.
        loaded = np.load(path)
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as error:
        raise ValueError(
            f"--data: {path!r} is not a NumPy .npy or .npz file "
            f"({type(error).__name__}: {error})."
        ) from None
    if isinstance(loaded, np.ndarray):
        x, y = loaded, None
    else:
        with loaded:
            if "x" not in loaded.files:
                raise ValueError(
                    f"--data: {path!r} holds the arrays {loaded.files}; "
                    "expected the inputs under `x` (and the labels under "
                    '`y`): np.savez("data.npz", x=inputs, y=labels).'
                )
            x = loaded["x"]
            y = loaded["y"] if "y" in loaded.files else None
    if x.ndim == 0 or len(x) == 0:
        raise ValueError(
            f"--data: the inputs of {path!r} hold no example (shape {x.shape})."
        )
    if y is not None and (y.ndim == 0 or len(y) != len(x)):
        raise ValueError(
            f"--data: {path!r} holds {len(x)} inputs and labels of shape "
            f"{y.shape}; expected one label per input."
        )
    if take is not None:
        x = x[:take]
        y = None if y is None else y[:take]
    return x, y
