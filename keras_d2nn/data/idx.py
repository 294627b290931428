"""Reading IDX files, the format of the original (Fashion-)MNIST files."""

import gzip
import pathlib

import numpy as np

# IDX type codes (the third byte of the magic number) we read.
_IDX_DTYPES = {0x08: np.uint8}


def read_idx(path):
    """Reads an IDX file (optionally gzip-compressed) into a NumPy array.

    Example: `labels = read_idx("t10k-labels-idx1-ubyte.gz")`.
    """
    path = pathlib.Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{path} is not an IDX file (bad magic number).")
    dtype = _IDX_DTYPES.get(data[2])
    if dtype is None:
        raise ValueError(f"{path}: unsupported IDX element type {data[2]:#x}.")
    ndim = data[3]
    shape = tuple(
        int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)
    )
    offset = 4 + 4 * ndim
    expected = int(np.prod(shape)) * np.dtype(dtype).itemsize
    if len(data) - offset != expected:
        raise ValueError(
            f"{path} is truncated or corrupt: header says shape {shape} "
            f"({expected} bytes), file holds {len(data) - offset} bytes."
        )
    return np.frombuffer(data, dtype=dtype, offset=offset).reshape(shape)


def find_idx(directory, stem):
    """`directory/stem.gz` or `directory/stem`, whichever exists, or None."""
    for name in (stem + ".gz", stem):
        path = pathlib.Path(directory) / name
        if path.exists():
            return path
    return None
