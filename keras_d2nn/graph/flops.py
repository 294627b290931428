"""FLOP counting for Keras layers, per example.

Convention (documented in the README): a multiply-add is 2 FLOPs; a bias add
or an element-wise activation is 1 FLOP per output element; batch
normalisation counts 2 FLOPs per element (scale and shift, as folded at
inference); a pooling window costs one FLOP per element it reads. Layers
that only move data (Flatten, Reshape, Dropout, Concatenate, ...) cost 0.
Sequential and functional models are walked layer by layer, recursively.

A layer may define `compute_flops(input_spec) -> float` to report its own
cost (the library's `Controller` does). A layer with weights that is not in
the table raises `UncountableLayerError`: give its node an explicit `cost=`.
"""

from __future__ import annotations

import math

import keras
from keras import layers as L

_ELEMENTWISE_ACTIVATIONS = (
    L.Activation,
    L.ReLU,
    L.LeakyReLU,
    L.ELU,
    L.PReLU,
    L.Softmax,
)
_CONV = (L.Conv1D, L.Conv2D, L.Conv3D)
_DEPTHWISE = (L.DepthwiseConv1D, L.DepthwiseConv2D)
_SEPARABLE = (L.SeparableConv1D, L.SeparableConv2D)
_POOL = (
    L.MaxPooling1D,
    L.MaxPooling2D,
    L.MaxPooling3D,
    L.AveragePooling1D,
    L.AveragePooling2D,
    L.AveragePooling3D,
)
_GLOBAL_POOL = (
    L.GlobalMaxPooling1D,
    L.GlobalMaxPooling2D,
    L.GlobalMaxPooling3D,
    L.GlobalAveragePooling1D,
    L.GlobalAveragePooling2D,
    L.GlobalAveragePooling3D,
)
_NORMALISATION = (L.BatchNormalization, L.Rescaling, L.Normalization)
_MERGING = (L.Add, L.Subtract, L.Multiply, L.Average, L.Maximum, L.Minimum)
_FREE_WITH_WEIGHTS = (L.Embedding,)


class UncountableLayerError(ValueError):
    """Raised for a layer whose FLOPs the counter does not know."""


def _elements(shape):
    """Elements per example of a shape whose first dimension is the batch."""
    dims = shape[1:]
    if any(d is None for d in dims):
        raise ValueError(
            f"FLOPs need static shapes; got {tuple(shape)} with an unknown "
            "non-batch dimension."
        )
    return math.prod(dims)


def _activation_flops(layer, output_shape):
    activation = getattr(layer, "activation", None)
    if activation is None or activation is keras.activations.linear:
        return 0
    return _elements(output_shape)


def _bias_flops(layer, output_shape):
    return _elements(output_shape) if getattr(layer, "use_bias", False) else 0


def _spatial_out(output_shape, layer):
    """Output positions per example and channel, for channels_last/first."""
    channels_first = getattr(layer, "data_format", None) == "channels_first"
    spatial = output_shape[2:] if channels_first else output_shape[1:-1]
    return math.prod(spatial)


def _channels(shape, layer):
    channels_first = getattr(layer, "data_format", None) == "channels_first"
    return shape[1] if channels_first else shape[-1]


def _table_flops(layer, input_shape, output_shape):
    """FLOPs of one call of a leaf layer, or None if the layer is unknown."""
    if isinstance(layer, L.Dense):
        positions = _elements(output_shape) // layer.units
        macs = input_shape[-1] * layer.units * positions
        return (
            2 * macs
            + _bias_flops(layer, output_shape)
            + _activation_flops(layer, output_shape)
        )
    if isinstance(layer, _SEPARABLE):
        positions = _spatial_out(output_shape, layer)
        c_in = _channels(input_shape, layer)
        depthwise = math.prod(layer.kernel_size) * c_in * layer.depth_multiplier
        pointwise = c_in * layer.depth_multiplier * layer.filters
        return (
            2 * (depthwise + pointwise) * positions
            + _bias_flops(layer, output_shape)
            + _activation_flops(layer, output_shape)
        )
    if isinstance(layer, _DEPTHWISE):
        macs = math.prod(layer.kernel_size) * _elements(output_shape)
        return (
            2 * macs
            + _bias_flops(layer, output_shape)
            + _activation_flops(layer, output_shape)
        )
    if isinstance(layer, _CONV):
        c_in = _channels(input_shape, layer)
        kernel = math.prod(layer.kernel_size) * (c_in // layer.groups)
        macs = kernel * _elements(output_shape)
        return (
            2 * macs
            + _bias_flops(layer, output_shape)
            + _activation_flops(layer, output_shape)
        )
    if isinstance(layer, _POOL):
        return math.prod(layer.pool_size) * _elements(output_shape)
    if isinstance(layer, _GLOBAL_POOL):
        return _elements(input_shape)
    if isinstance(layer, _NORMALISATION):
        return 2 * _elements(output_shape)
    if isinstance(layer, _ELEMENTWISE_ACTIVATIONS):
        return _elements(output_shape)
    if isinstance(layer, _MERGING):
        return None  # needs the number of inputs; handled by the caller
    if isinstance(layer, _FREE_WITH_WEIGHTS) or not layer.weights:
        return 0
    return None


def _is_functional(layer):
    return isinstance(layer, keras.Model) and hasattr(layer, "_nodes_by_depth")


def layer_flops(
    layer: keras.Layer,
    inputs: keras.KerasTensor | list[keras.KerasTensor],
    node_name: str | None = None,
) -> float:
    """FLOPs per example of calling `layer` on symbolic `inputs`.

    Args:
        layer: a built Keras layer or model.
        inputs: a `keras.KerasTensor` (or a list of them) with the batch
            dimension first.
        node_name: used in error messages.

    Returns:
        A float: FLOPs per example.

    Example:

    ```python
    x = keras.KerasTensor((None, 8))
    keras_d2nn.layer_flops(keras.layers.Dense(4), x)  # 68.0: 2*8*4 + 4
    ```
    """
    if hasattr(layer, "compute_flops"):
        return float(layer.compute_flops(inputs))
    if isinstance(layer, keras.Sequential):
        total, x = 0.0, inputs
        for sublayer in layer.layers:
            total += layer_flops(sublayer, x, node_name)
            x = sublayer.compute_output_spec(x)
        return total
    if _is_functional(layer):
        return _functional_flops(layer, inputs, node_name)
    output = layer.compute_output_spec(inputs)
    if isinstance(layer, _MERGING):
        return (len(inputs) - 1) * _elements(output.shape)
    if isinstance(inputs, (list, tuple)):
        # Multi-input layers outside the merging family: weightless ones
        # (Concatenate, Dot-free reshuffles) move data only.
        flops = None if layer.weights else 0
    else:
        flops = _table_flops(layer, tuple(inputs.shape), tuple(output.shape))
    if flops is None:
        where = f" in node '{node_name}'" if node_name else ""
        raise UncountableLayerError(
            f"Cannot count the FLOPs of layer '{layer.name}' "
            f"({type(layer).__name__}){where}: it has weights and is not in "
            "the FLOP table. Give the node an explicit cost, e.g. "
            "graph.f_node(..., cost=123456)."
        )
    return float(flops)


def _functional_flops(model, inputs, node_name):
    """Walks a functional model's own graph, counting each layer call."""
    total = 0.0

    def count_call(operation, *args, **kwargs):
        nonlocal total
        call_inputs = args[0] if len(args) == 1 else list(args)
        if isinstance(operation, keras.layers.Layer):
            total += layer_flops(operation, call_inputs, node_name)
        return operation.compute_output_spec(*args, **kwargs)

    flat = inputs if isinstance(inputs, (list, tuple)) else [inputs]
    model._run_through_graph(flat, call_fn=count_call)
    return total
