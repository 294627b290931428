"""Checks of the builders' common arguments, before any layer is made.

A wrong `input_shape` would otherwise surface as an error from deep inside
a Keras layer ("expected min_ndim=4, found ndim=2"), naming no argument.
"""


def image_shape(builder, input_shape):
    """`input_shape` as a `(height, width, channels)` tuple, or a
    ValueError naming the builder and what it received.

    Example: `image_shape("cascade", (28, 28, 1))  # (28, 28, 1)`.
    """
    try:
        shape = tuple(int(d) for d in input_shape)
    except (TypeError, ValueError):
        shape = None
    if shape is None or len(shape) != 3 or min(shape) < 1:
        raise ValueError(
            f"{builder}: `input_shape` should be an image shape (height, "
            f"width, channels) of positive ints; its default networks are "
            f"convolutional. Received: input_shape={input_shape!r}"
        )
    return shape


def class_count(builder, num_classes):
    """`num_classes` as an int >= 2, or a ValueError naming the builder.

    Example: `class_count("chain", 10)  # 10`.
    """
    if (
        isinstance(num_classes, bool)
        or not isinstance(num_classes, int)
        or num_classes < 2
    ):
        raise ValueError(
            f"{builder}: `num_classes` should be an int >= 2. Received: "
            f"num_classes={num_classes!r}"
        )
    return num_classes
