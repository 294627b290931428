"""Alternative crops of one image, chosen by one controller, run as one
indexed crop.

The attention D2NN crops one of 25 regions of the canvas: 25 conditional
`Cropping2D` nodes, merged. Run node by node, each crop gathers its
examples, crops them and scatters them back into a full batch, and the
merge sums 25 full batches of crops (at batch 1 in LiteRT: 25 IFs). The
result is the same as cropping each example at its own chosen corner,
which one gather (or, at a static batch of one, one slice) does directly:
the other regions are still never read. `crop_groups` finds such merges
in a plan; the engine runs them with `crop`.
"""

import typing

import keras
import tensorflow as tf


class CropGroup(typing.NamedTuple):
    """A merge of crops of one image, one per action of one controller.

    Attributes:
        controller: the Q-node whose action picks the crop.
        source: the node every crop reads.
        members: the crop nodes (only the merge reads them).
        corners: `(top, left)` of each action's crop, in action order.
        size: `(height, width)` of every crop.
    """

    controller: str
    source: str
    members: tuple[str, ...]
    corners: tuple[tuple[int, int], ...]
    size: tuple[int, int]


def _crop_box(layer, shape):
    """`(top, left, height, width)` of a channels-last `Cropping2D` on an
    input of `shape` (batch first), or None for any other layer."""
    if type(layer) is not keras.layers.Cropping2D:
        return None
    if layer.data_format != "channels_last" or None in shape[1:3]:
        return None
    (top, bottom), (left, right) = layer.cropping
    return top, left, shape[1] - top - bottom, shape[2] - left - right


def crop_groups(plan):
    """`{merge node: CropGroup}` of the merges in `plan` whose parents are
    `Cropping2D` nodes of one input, of one size, each run on one or more
    actions of one controller, together on every action, and read by
    nothing else.

    Example:

    ```python
    from keras_d2nn.execution.indexed_crop import crop_groups

    model = keras_d2nn.architectures.attention(input_shape=(112, 112, 1))
    group = crop_groups(model.plan)["crop"]
    group.controller, len(group.corners), group.size  # look, 25, (48, 48)
    ```
    """
    readers = {}
    for node in plan.order:
        for parent in node.inputs:
            readers.setdefault(parent, []).append(node.name)
    outputs = {name for _, name in plan.outputs}
    groups = {}
    for node in plan.order:
        if node.kind != "merge" or node.layer is not None or node.defaults:
            continue
        group = _group_of(plan, node, readers, outputs)
        if group is not None:
            groups[node.name] = group
    return groups


def _group_of(plan, merge, readers, outputs):
    corners, sources, controllers, sizes = {}, set(), set(), set()
    for name in merge.inputs:
        parent = plan.nodes[name]
        if (
            parent.kind != "f"
            or len(parent.inputs) != 1
            or len(parent.control) != 1
            or parent.defaults
            or readers.get(name) != [merge.name]
            or name in outputs
        ):
            return None
        box = _crop_box(parent.layer, plan.specs[parent.inputs[0]].shape)
        if box is None:
            return None
        ((controller, actions),) = parent.control.items()
        if set(actions) & set(corners):
            return None
        controllers.add(controller)
        sources.add(parent.inputs[0])
        sizes.add(box[2:])
        corners.update({action: box[:2] for action in actions})
    if len(controllers) != 1 or len(sources) != 1 or len(sizes) != 1:
        return None
    (controller,) = controllers
    if sorted(corners) != list(range(len(plan.nodes[controller].actions))):
        return None
    return CropGroup(
        controller=controller,
        source=sources.pop(),
        members=tuple(merge.inputs),
        corners=tuple(corners[a] for a in sorted(corners)),
        size=sizes.pop(),
    )


def crop(images, actions, group):
    """Each example of `images` (batch, height, width, channels) cropped at
    the corner of its action (`group.corners[action]`), `group.size`.

    One gather of the crops' pixels, at any batch size: the other
    regions are never read, and the crops' shape is static (LiteRT's
    SLICE at a computed corner gives a dynamic tensor, which the glimpse
    network after it then reads without XNNPACK). A LiteRT builtin and an
    ONNX `Gather`.

    Example:

    ```python
    from keras_d2nn.execution.indexed_crop import CropGroup, crop

    group = CropGroup("look", "image", (), ((0, 0), (2, 2)), (2, 2))
    images = tf.reshape(tf.range(32.0), (2, 4, 4, 1))
    crop(images, tf.constant([0, 1]), group)[..., 0]
    # [[[0, 1], [4, 5]], [[26, 27], [30, 31]]]
    ```
    """
    height, width = group.size
    corners = tf.constant(group.corners, tf.int32)
    chosen = tf.gather(corners, tf.cast(actions, tf.int32))  # (batch, 2)
    channels = images.shape[-1]
    rows, columns = images.shape[1], images.shape[2]
    example = tf.range(tf.shape(images)[0])[:, None, None]
    row = chosen[:, 0, None, None] + tf.range(height)[None, :, None]
    column = chosen[:, 1, None, None] + tf.range(width)[None, None, :]
    pixel = (example * rows + row) * columns + column  # (batch, h, w)
    flat = tf.reshape(images, [-1, channels])
    return tf.gather(flat, pixel)


def branch_nodes(plan):
    """The conditional nodes of `plan` that run as branches of their own
    (a condition at batch 1, a gather in a batch), not as part of an
    indexed crop: an export of a plan with none keeps no condition.

    Example:

    ```python
    from keras_d2nn.execution.indexed_crop import branch_nodes

    branch_nodes(model.plan)  # high_low: ["high"]
    ```
    """
    cropped = {m for g in crop_groups(plan).values() for m in g.members}
    return [
        node.name
        for node in plan.order
        if node.control and node.name not in cropped
    ]
