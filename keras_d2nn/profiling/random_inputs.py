"""Random arrays to time a layer or a model on: timing does not depend on
the values, only on shapes and dtypes."""

from __future__ import annotations

from typing import Any

import numpy as np


def random_array(spec: Any, batch_size: int, rng, uniform: bool = False):
    """An array of `spec`'s shape (its batch dimension set to
    `batch_size`) and dtype: standard normal, or uniform in [0, 1) with
    `uniform` (pixels); zeros for integer dtypes (indices, labels).

    Example: `random_array(model.plan.specs["image"], 8, rng, uniform=True)`.
    """
    shape = (batch_size, *spec.shape[1:])
    dtype = np.dtype(spec.dtype)
    if not np.issubdtype(dtype, np.floating):
        return np.zeros(shape, dtype)
    sample = rng.random(shape) if uniform else rng.standard_normal(shape)
    return sample.astype(dtype)
