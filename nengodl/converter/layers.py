"""How each natively supported Keras layer becomes nengo objects.

A rule ``rule(cv, layer, in_ports, out_shapes)`` gets the `Converter` ``cv``,
the Keras layer, one `Port` per input tensor and the output shapes (without
the batch axis), builds nengo objects inside ``cv.net`` and returns one `Port`
per output. A rule raises `Unsupported` (with the reason) for configurations it
cannot express in nengo; the converter then falls back to a TensorNode or
reports the error.
"""

from collections import namedtuple

import keras
import nengo
import numpy as np

from nengodl.converter import sparse as sp
from nengodl.neurons import LeakyReLU

Port = namedtuple("Port", ["obj", "shape", "synapse"])
Port.__doc__ = """A converted tensor: nengo object, shape (no batch axis), synapse on
connections that read it."""

RULES = {}


class Unsupported(Exception):
    """A layer (or one of its arguments) that has no native nengo form."""


def rule(*classes):
    """Register the decorated function as the rule for Keras layer ``classes``."""

    def wrapper(func):
        for cls in classes:
            RULES[cls] = func
        return func

    return wrapper


def to_numpy(variable):
    """A Keras variable as a float64 numpy array."""
    value = variable.numpy() if hasattr(variable, "numpy") else variable
    return np.asarray(keras.ops.convert_to_numpy(value), dtype=np.float64)


def size(shape):
    return int(np.prod(shape))


def check_channels_last(layer):
    fmt = getattr(layer, "data_format", "channels_last")
    if fmt != "channels_last":
        raise Unsupported(f"data_format={fmt!r} (only 'channels_last' is supported natively)")


def check_padding(layer, allowed=("valid", "same")):
    if layer.padding not in allowed:
        raise Unsupported(
            f"padding={layer.padding!r} (only {' and '.join(map(repr, allowed))} "
            "are supported natively)"
        )


@rule(keras.layers.InputLayer)
def identity(cv, layer, ins, out_shapes):
    """Layers that leave the flat channels_last vector unchanged."""
    if isinstance(layer, keras.layers.Flatten):
        check_channels_last(layer)
    return [ins[0]._replace(shape=out_shapes[0])]


@rule(keras.layers.Flatten, keras.layers.Reshape)
def reshape(cv, layer, ins, out_shapes):
    return identity(cv, layer, ins, out_shapes)


@rule(keras.layers.Dropout)
def dropout(cv, layer, ins, out_shapes):
    if not cv.inference_only:
        raise Unsupported(
            "Dropout is only removed with inference_only=True "
            "(the converted network would train without it)"
        )
    return identity(cv, layer, ins, out_shapes)


@rule(keras.layers.Activation)
def activation(cv, layer, ins, out_shapes):
    return [cv.apply_activation(layer, layer.activation, ins[0], out_shapes[0])]


@rule(keras.layers.ReLU)
def relu(cv, layer, ins, out_shapes):
    if layer.max_value is not None or float(layer.threshold) != 0:
        raise Unsupported(
            f"max_value={layer.max_value} and threshold={layer.threshold} "
            "(only max_value=None, threshold=0 are supported natively)"
        )
    slope = float(layer.negative_slope)
    act = keras.activations.relu if slope == 0 else LeakyReLU(negative_slope=slope)
    return [cv.apply_activation(layer, act, ins[0], out_shapes[0])]


@rule(keras.layers.LeakyReLU)
def leaky_relu(cv, layer, ins, out_shapes):
    act = LeakyReLU(negative_slope=float(layer.negative_slope))
    return [cv.apply_activation(layer, act, ins[0], out_shapes[0])]


def check_out_shape(layer, out_shape, out_shapes):
    """Fall back (`Unsupported`) where the native conversion's output shape is not Keras's."""
    if tuple(out_shape) != tuple(out_shapes[0]):
        raise Unsupported(
            f"the native conversion of {layer.name} gives shape {tuple(out_shape)}, "
            f"Keras {tuple(out_shapes[0])}"
        )


def check_plain(layer):
    if getattr(layer, "lora_enabled", False):
        raise Unsupported("LoRA-enabled layers are not supported natively")
    if getattr(layer, "quantization_mode", None):
        raise Unsupported(f"quantization_mode={layer.quantization_mode!r}")


@rule(keras.layers.Dense)
def dense(cv, layer, ins, out_shapes):
    check_plain(layer)
    kernel = to_numpy(layer.kernel)
    prefix = size(ins[0].shape[:-1])
    transform = kernel.T if prefix == 1 else np.kron(np.eye(prefix), kernel.T)
    bias = np.tile(to_numpy(layer.bias), prefix) if layer.use_bias else None
    return [cv.linear_layer(layer, ins[0], transform, out_shapes[0], bias)]


@rule(keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)
def convolution(cv, layer, ins, out_shapes):
    check_plain(layer)
    check_channels_last(layer)
    check_padding(layer, ("valid", "same", "causal"))
    kernel = to_numpy(layer.kernel)
    in_shape = ins[0].shape
    plain = layer.rank in (1, 2) and layer.groups == 1 and layer.padding != "causal"
    plain = plain and all(d == 1 for d in layer.dilation_rate)
    if plain:
        transform = nengo.Convolution(
            layer.filters,
            in_shape,
            kernel_size=tuple(layer.kernel_size),
            strides=tuple(layer.strides),
            padding=layer.padding,
            channels_last=True,
            init=kernel,
        )
        out_shape = transform.output_shape.shape
    else:
        out_shape, transform = sp.conv(
            in_shape,
            kernel,
            tuple(layer.strides),
            layer.padding,
            tuple(layer.dilation_rate),
            layer.groups,
        )
    check_out_shape(layer, out_shape, out_shapes)
    n_locs = size(out_shape[:-1])
    bias = np.tile(to_numpy(layer.bias), n_locs) if layer.use_bias else None
    return [cv.linear_layer(layer, ins[0], transform, out_shapes[0], bias)]


@rule(keras.layers.BatchNormalization)
def batch_norm(cv, layer, ins, out_shapes):
    if not cv.inference_only:
        raise Unsupported(
            "BatchNormalization is only folded into a fixed scale and offset with "
            "inference_only=True (it behaves differently while training)"
        )
    shape = ins[0].shape
    axes = [layer.axis] if np.isscalar(layer.axis) else list(layer.axis)
    axes = [a - 1 if a > 0 else a + len(shape) for a in axes]  # drop batch axis
    if len(axes) != 1:
        raise Unsupported(f"axis={layer.axis} (only a single axis is supported)")
    mean = to_numpy(layer.moving_mean)
    var = to_numpy(layer.moving_variance)
    gamma = to_numpy(layer.gamma) if layer.scale else np.ones_like(mean)
    beta = to_numpy(layer.beta) if layer.center else np.zeros_like(mean)
    scale = gamma / np.sqrt(var + layer.epsilon)
    offset = beta - mean * scale
    bshape = [1] * len(shape)
    bshape[axes[0]] = -1
    scale = np.broadcast_to(scale.reshape(bshape), shape).ravel()
    offset = np.broadcast_to(offset.reshape(bshape), shape).ravel()
    return [cv.linear_layer(layer, ins[0], scale, shape, offset, activation=None)]


def pooling(cv, layer, ins, out_shapes):
    check_channels_last(layer)
    check_padding(layer)
    out_shape, transform = sp.avg_pool(
        ins[0].shape, tuple(layer.pool_size), tuple(layer.strides), layer.padding
    )
    check_out_shape(layer, out_shape, out_shapes)
    return [cv.linear_layer(layer, ins[0], transform, out_shape, None, activation=None)]


@rule(
    keras.layers.AveragePooling1D,
    keras.layers.AveragePooling2D,
    keras.layers.AveragePooling3D,
)
def average_pooling(cv, layer, ins, out_shapes):
    return pooling(cv, layer, ins, out_shapes)


@rule(keras.layers.MaxPooling1D, keras.layers.MaxPooling2D, keras.layers.MaxPooling3D)
def max_pooling(cv, layer, ins, out_shapes):
    if not cv.max_to_avg_pool:
        raise Unsupported(
            "max pooling has no native nengo form; set max_to_avg_pool=True to "
            "replace it with average pooling"
        )
    return pooling(cv, layer, ins, out_shapes)


@rule(
    keras.layers.GlobalAveragePooling1D,
    keras.layers.GlobalAveragePooling2D,
    keras.layers.GlobalAveragePooling3D,
)
def global_average_pooling(cv, layer, ins, out_shapes):
    check_channels_last(layer)
    in_shape = ins[0].shape
    channels, n_locs = in_shape[-1], size(in_shape[:-1])
    cols = np.arange(size(in_shape))
    transform = sp.sparse((channels, len(cols)), cols % channels, cols, 1.0 / n_locs)
    return [cv.linear_layer(layer, ins[0], transform, out_shapes[0], None, activation=None)]


@rule(keras.layers.ZeroPadding1D, keras.layers.ZeroPadding2D, keras.layers.ZeroPadding3D)
def zero_padding(cv, layer, ins, out_shapes):
    check_channels_last(layer)
    pads = layer.padding
    if isinstance(layer, keras.layers.ZeroPadding1D):
        pads = [pads]
    out_shape, transform = sp.zero_pad(ins[0].shape, [tuple(p) for p in pads])
    check_out_shape(layer, out_shape, out_shapes)
    return [cv.linear_layer(layer, ins[0], transform, out_shape, None, activation=None)]


@rule(keras.layers.Concatenate)
def concatenate(cv, layer, ins, out_shapes):
    ndim = len(ins[0].shape)
    axis = layer.axis - 1 if layer.axis > 0 else layer.axis + ndim
    positions = sp.concat_positions([p.shape for p in ins], axis)
    n = size(out_shapes[0])
    transforms = [sp.selection(pos, n) for pos in positions]
    return [cv.sum_layer(layer, ins, transforms, out_shapes[0])]


@rule(keras.layers.Add, keras.layers.Subtract, keras.layers.Average)
def add(cv, layer, ins, out_shapes):
    shapes = {tuple(p.shape) for p in ins}
    if len(shapes) != 1:
        raise Unsupported(f"inputs of different shapes {sorted(shapes)} (no broadcasting)")
    if isinstance(layer, keras.layers.Subtract):
        transforms = [1, -1]
    elif isinstance(layer, keras.layers.Average):
        transforms = [1.0 / len(ins)] * len(ins)
    else:
        transforms = [1] * len(ins)
    return [cv.sum_layer(layer, ins, transforms, out_shapes[0])]
