"""Helpers of the model's reports: batching data, formatting tables."""

import numpy as np
import tensorflow as tf


def _slices(data, batch_size):
    """Batches of arrays, or of dicts or lists of them (several inputs)."""
    if isinstance(data, dict):
        size = len(next(iter(data.values())))
        for start in range(0, size, batch_size):
            yield {k: v[start : start + batch_size] for k, v in data.items()}
        return
    if isinstance(data, (list, tuple)):
        size = len(data[0])
        for start in range(0, size, batch_size):
            yield [v[start : start + batch_size] for v in data]
        return
    for start in range(0, len(data), batch_size):
        yield data[start : start + batch_size]


def batches(data, batch_size):
    """Yields input batches of arrays, dicts, lists or a `tf.data` dataset
    (of inputs or `(x, y)` pairs).

    Example: `for x in batches(images, 256): ...`.
    """
    for x, _ in batches_with_labels(data, None, batch_size):
        yield x


def batches_with_labels(data, labels, batch_size):
    """Yields `(inputs, labels or None)` batches of `data` (as `batches`),
    with the labels of a dataset of `(x, y)` pairs or of `labels`.

    Example: `for x, y in batches_with_labels(images, labels, 256): ...`.
    """
    if isinstance(data, tf.data.Dataset):
        if labels is not None:
            raise ValueError(
                "`labels` go with arrays; a tf.data.Dataset brings its own as "
                "(x, y) pairs."
            )
        for batch in data:
            if isinstance(batch, tuple):
                yield batch[0], batch[1] if len(batch) > 1 else None
            else:
                yield batch, None
        return
    if labels is None:
        for x in _slices(data, batch_size):
            yield x, None
        return
    labels = np.asarray(labels)
    size = len(
        data[next(iter(data))]
        if isinstance(data, dict)
        else data[0]
        if isinstance(data, (list, tuple))
        else data
    )
    if len(labels) != size:
        raise ValueError(
            f"`labels` holds {len(labels)} labels for {size} "
            "examples in `data`."
        )
    for start, x in zip(range(0, size, batch_size), _slices(data, batch_size)):
        yield x, labels[start : start + batch_size]


def format_cost_table(rows, full_flops):
    """The `cost_report` rows as a fixed-width table.

    Example: `print(format_cost_table(rows, model.full_flops))`.
    """
    header = (
        f"{'node':<20} {'kind':<6} {'FLOPs':>14} {'share':>7} "
        f"{'run rate':>9} {'mean FLOPs':>14}"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        share = row["flops"] / full_flops if full_flops else 0.0
        rate = "" if row["run_rate"] is None else f"{row['run_rate']:.3f}"
        mean = "" if row["mean_flops"] is None else f"{row['mean_flops']:,.0f}"
        lines.append(
            f"{row['node']:<20} {row['kind']:<6} {row['flops']:>14,.0f} "
            f"{share:>7.1%} {rate:>9} {mean:>14}"
        )
    return "\n".join(lines)
