"""How each natively supported Keras layer becomes nengo objects.

A rule ``rule(cv, layer, in_ports, out_shapes)`` gets the `Converter` ``cv``,
the Keras layer, one `Port` per input tensor and the output shapes (without
the batch axis, and without the time axis of a ``temporal_model``), builds
nengo objects inside ``cv.net`` and returns one `Port` per output. A rule
raises `Unsupported` (with the reason) for configurations it cannot express in
nengo; the converter then falls back to a TensorNode or reports the error.

The `rule` decorator registers each rule in the converter's registry
(`nengodl.converter.registry.CONVERTERS`, which is `Converter.converters`) as
a `RuleConverter` subclass named after it (``dense`` becomes ``ConvertDense``),
one class for all the Keras layer classes the rule converts.

Rules registered with ``per_step=False`` (convolutions, pooling, padding)
combine neighbouring positions along every axis, which in a temporal model
includes the time axis; the converter does not use them for temporal models.
"""

import keras
import nengo
import numpy as np

from nengodl.converter import sparse as sp
from nengodl.converter.errors import Unsupported
from nengodl.converter.registry import LayerConverter, Port, convertible, register, size
from nengodl.neurons import ClippedReLU, LeakyReLU
from nengodl.ops.functions import MaxPool


class RuleConverter(LayerConverter):
    """A registry entry running one of this module's rules (its class attribute ``rule``).

    Its `build` returns the rule's ports; `convert` (for code calling it
    directly, as on any `LayerConverter`) returns the rule's output objects.
    """

    rule = None

    def output_ports(self, node_id):
        """The rule's `Port` for each output of call ``node_id``."""
        call = self.call(node_id)
        return self.rule(self.converter, self.layer, list(call.in_ports), list(call.out_shapes))

    def convert(self, node_id):
        """The nengo object(s) of the rule's output(s) for call ``node_id``."""
        ports = self.output_ports(node_id)
        return ports[0].obj if len(ports) == 1 else [p.obj for p in ports]


def rule(*classes, per_step=True):
    """Register the decorated function as the rule for Keras layer ``classes``.

    ``per_step=False`` marks rules whose layers mix positions along all axes
    (and so the time steps of a temporal model). The function is returned
    unchanged, with the registered `RuleConverter` subclass as its
    ``converter`` attribute.
    """

    def wrapper(func):
        name = "Convert" + "".join(w.capitalize() for w in func.__name__.split("_"))
        names = ", ".join(f"``{cls.__name__}``" for cls in classes)
        converter = type(
            name,
            (RuleConverter,),
            {
                "rule": staticmethod(func),
                "per_step": per_step,
                "__doc__": f"Converts {names} (the rule ``{func.__name__}``).",
                "__module__": __name__,
            },
        )
        for cls in classes:
            register(cls)(converter)
        func.converter = converter
        return func

    return wrapper


def to_numpy(variable, transpose=False):
    """A Keras variable as a C-contiguous float64 numpy array of the variable's
    declared shape (its axes reversed where ``transpose``, by the backend).

    (Keras 3's ``Constant`` initializer can store a value of another shape with
    the same size, such as ``(1, 1)`` for a ``(1,)`` bias.)
    """
    value = variable.numpy() if hasattr(variable, "numpy") else variable
    value = keras.ops.convert_to_numpy(value)
    shape = tuple(getattr(variable, "shape", value.shape))
    value = value.reshape(shape) if value.size == size(shape) else value
    if transpose:  # the backend's transpose: numpy's is slow on large matrices
        value = keras.ops.convert_to_numpy(keras.ops.transpose(value))
    return np.ascontiguousarray(value, dtype=np.float64)


def is_channels_first(layer):
    """Whether ``layer`` reads its inputs channels first."""
    return getattr(layer, "data_format", "channels_last") == "channels_first"


def channels_last(shape, first):
    """``shape`` with the channel axis moved last when ``first``."""
    return tuple(shape[1:]) + (shape[0],) if first else tuple(shape)


def channels_first(shape):
    """A channels_last ``shape`` with the channel axis moved first."""
    return (shape[-1],) + tuple(shape[:-1])


def spatial_transform(layer, in_shape, build):
    """The sparse matrix of a spatial layer, in the layer's ``data_format``.

    ``build(channels_last_in_shape)`` returns ``(out_shape, transform)`` in the
    channels_last layout; for channels_first layers both are re-indexed.
    """
    first = is_channels_first(layer)
    in_cl = channels_last(in_shape, first)
    out_cl, transform = build(in_cl)
    if not first:
        return tuple(out_cl), transform
    return channels_first(out_cl), sp.channels_first(transform, in_cl, out_cl)


def channel_index(shape, first):
    """The channel of each element of a flat array of ``shape``."""
    channels = shape[0] if first else shape[-1]
    n_locs = size(shape) // channels
    return (
        np.repeat(np.arange(channels), n_locs) if first else np.tile(np.arange(channels), n_locs)
    )


def check_padding(layer, allowed=("valid", "same")):
    if layer.padding not in allowed:
        raise Unsupported(
            f"padding={layer.padding!r} (only {' and '.join(map(repr, allowed))} "
            "are supported natively)"
        )


def check_out_shape(layer, out_shape, out_shapes):
    """Fall back (`Unsupported`) where the native conversion's output shape is not Keras's."""
    if tuple(out_shape) != tuple(out_shapes[0]):
        raise Unsupported(
            f"the native conversion of {layer.name} gives shape {tuple(out_shape)}, "
            f"Keras {tuple(out_shapes[0])}"
        )


def check_plain(cv, layer):
    """Refuse (`Unsupported`) LoRA, quantization and, unless ``inference_only``, constraints."""
    if getattr(layer, "lora_enabled", False):
        raise Unsupported("LoRA-enabled layers are not supported natively")
    if getattr(layer, "quantization_mode", None):
        raise Unsupported(f"quantization_mode={layer.quantization_mode!r}")
    if not cv.inference_only:
        for w in layer.weights:
            if getattr(w, "constraint", None) is not None:
                raise Unsupported(
                    f"weight '{w.path}' has a constraint ({type(w.constraint).__name__}), "
                    "which the native conversion would not apply while training "
                    "(unless inference_only=True)"
                )


def check_same_size(ins, out_shapes):
    """Refuse (`Unsupported`) reshapes that move elements between time steps."""
    if size(ins[0].shape) != size(out_shapes[0]):
        raise Unsupported(
            f"it turns {size(ins[0].shape)} elements per time step into "
            f"{size(out_shapes[0])} (it reshapes across time steps)"
        )


@rule(keras.layers.InputLayer)
def identity(cv, layer, ins, out_shapes):
    """Layers that leave the flat vector of each step unchanged."""
    check_same_size(ins, out_shapes)
    return [ins[0]._replace(shape=out_shapes[0])]


@rule(keras.layers.Flatten, keras.layers.Reshape)
def reshape(cv, layer, ins, out_shapes):
    """Nothing, or (``Flatten`` with ``data_format="channels_first"``) the
    permutation that moves the channels last."""
    check_same_size(ins, out_shapes)
    if is_channels_first(layer) and len(ins[0].shape) > 1:
        in_shape = ins[0].shape
        order = sp.channels_last_order(channels_last(in_shape, True))
        transform = sp.selection(np.argsort(order), size(in_shape))
        return [cv.sum_layer(layer, ins, [transform], out_shapes[0])]
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
    slope, threshold = float(layer.negative_slope), float(layer.threshold)
    max_value = None if layer.max_value is None else float(layer.max_value)
    if max_value is None and threshold == 0:
        act = keras.activations.relu if slope == 0 else LeakyReLU(negative_slope=slope)
    elif max_value == 6 and threshold == 0 and slope == 0:
        act = keras.activations.relu6  # so that swaps of relu6 apply
    else:
        act = ClippedReLU(max_value=max_value, threshold=threshold, negative_slope=slope)
    return [cv.apply_activation(layer, act, ins[0], out_shapes[0])]


@rule(keras.layers.Softmax)
def softmax(cv, layer, ins, out_shapes):
    axis = layer.axis if np.isscalar(layer.axis) else tuple(layer.axis)
    last = len(out_shapes[0])  # Keras counts the batch axis, which out_shapes leave out
    if axis not in (-1, last, (-1,), (last,)):
        raise Unsupported(f"axis={layer.axis} (only the last axis natively)")
    return [cv.apply_activation(layer, keras.activations.softmax, ins[0], out_shapes[0])]


@rule(keras.layers.LeakyReLU)
def leaky_relu(cv, layer, ins, out_shapes):
    act = LeakyReLU(negative_slope=float(layer.negative_slope))
    return [cv.apply_activation(layer, act, ins[0], out_shapes[0])]


@rule(keras.layers.Dense)
def dense(cv, layer, ins, out_shapes):
    """A dense transform; on inputs of rank > 1, a kernel-size-1 convolution over the
    leading axes, so that the kernel stays one shared (trainable) weight matrix."""
    check_plain(cv, layer)
    in_shape = ins[0].shape
    prefix = size(in_shape[:-1])
    if prefix == 1:  # nengo's (out, in) matrix, C-contiguous: nengo copies it once more
        transform = to_numpy(layer.kernel, transpose=True)
    else:
        kernel = to_numpy(layer.kernel)
        transform = nengo.Convolution(
            layer.units,
            (prefix, in_shape[-1]),
            kernel_size=(1,),
            strides=(1,),
            channels_last=True,
            init=kernel[None],
        )
    bias = to_numpy(layer.bias) if layer.use_bias else None
    index = channel_index(out_shapes[0], False)
    return [cv.linear_layer(layer, ins[0], transform, out_shapes[0], bias, index, trainable=True)]


@rule(keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D, per_step=False)
def convolution(cv, layer, ins, out_shapes):
    check_plain(cv, layer)
    check_padding(layer, ("valid", "same", "causal"))
    kernel = to_numpy(layer.kernel)
    first = is_channels_first(layer)
    in_shape = ins[0].shape
    plain = layer.rank in (1, 2) and layer.padding != "causal"
    plain = plain and all(d == 1 for d in layer.dilation_rate)
    if plain:
        transform = nengo.Convolution(
            layer.filters,
            in_shape,
            kernel_size=tuple(layer.kernel_size),
            strides=tuple(layer.strides),
            padding=layer.padding,
            channels_last=not first,
            init=kernel,
            groups=layer.groups,
        )
        out_shape = transform.output_shape.shape
    else:
        out_shape, transform = spatial_transform(
            layer,
            in_shape,
            lambda shape: sp.conv(
                shape,
                kernel,
                tuple(layer.strides),
                layer.padding,
                tuple(layer.dilation_rate),
                layer.groups,
            ),
        )
    check_out_shape(layer, out_shape, out_shapes)
    bias = to_numpy(layer.bias) if layer.use_bias else None
    index = channel_index(out_shapes[0], first)
    return [cv.linear_layer(layer, ins[0], transform, out_shapes[0], bias, index, trainable=True)]


def depthwise(layer, in_shape, kernel):
    """A depthwise ``kernel`` (``(*kernel_size, channels, depth_multiplier)``) as a
    `nengo.Convolution` with one group per input channel (output channel
    ``c * depth_multiplier + j`` from input channel ``c``, as in Keras)."""
    if any(d != 1 for d in layer.dilation_rate):
        raise Unsupported(f"dilation_rate={tuple(layer.dilation_rate)} (only 1 natively)")
    check_padding(layer)
    channels, multiplier = kernel.shape[-2:]
    return nengo.Convolution(
        channels * multiplier,
        in_shape,
        kernel_size=tuple(layer.kernel_size),
        strides=tuple(layer.strides),
        padding=layer.padding,
        channels_last=not is_channels_first(layer),
        init=kernel.reshape(kernel.shape[:-2] + (1, channels * multiplier)),
        groups=channels,
    )


@rule(keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D, per_step=False)
def depthwise_convolution(cv, layer, ins, out_shapes):
    check_plain(cv, layer)
    transform = depthwise(layer, ins[0].shape, to_numpy(layer.kernel))
    check_out_shape(layer, transform.output_shape.shape, out_shapes)
    bias = to_numpy(layer.bias) if layer.use_bias else None
    index = channel_index(out_shapes[0], is_channels_first(layer))
    return [cv.linear_layer(layer, ins[0], transform, out_shapes[0], bias, index, trainable=True)]


@rule(keras.layers.SeparableConv1D, keras.layers.SeparableConv2D, per_step=False)
def separable_convolution(cv, layer, ins, out_shapes):
    """The depthwise convolution into a Node, then the pointwise (kernel size 1)
    convolution with the bias and activation (both kernels train)."""
    check_plain(cv, layer)
    first = is_channels_first(layer)
    spatial = depthwise(layer, ins[0].shape, to_numpy(layer.depthwise_kernel))
    mid_shape = spatial.output_shape.shape
    pointwise = to_numpy(layer.pointwise_kernel)
    mixing = nengo.Convolution(
        pointwise.shape[-1],
        mid_shape,
        kernel_size=(1,) * layer.rank,
        strides=(1,) * layer.rank,
        channels_last=not first,
        init=pointwise,
    )
    check_out_shape(layer, mixing.output_shape.shape, out_shapes)
    mid = cv.linear_layer(layer, ins[0], spatial, mid_shape, activation=None, trainable=True)
    bias = to_numpy(layer.bias) if layer.use_bias else None
    index = channel_index(out_shapes[0], first)
    return [cv.linear_layer(layer, mid, mixing, out_shapes[0], bias, index, trainable=True)]


@rule(keras.layers.BatchNormalization)
def batch_norm(cv, layer, ins, out_shapes):
    """A fixed scale and offset (the moving statistics), when the layer cannot train."""
    if not cv.inference_only and layer.trainable:
        raise Unsupported(
            "BatchNormalization is only folded into a fixed scale and offset with "
            "inference_only=True or layer.trainable=False (it behaves differently "
            "while training)"
        )
    shape = ins[0].shape
    axes = [layer.axis] if np.isscalar(layer.axis) else list(layer.axis)
    if len(axes) != 1:
        raise Unsupported(f"axis={layer.axis} (only a single axis is supported)")
    axis = cv.port_axis(axes[0], len(shape))
    mean = to_numpy(layer.moving_mean)
    var = to_numpy(layer.moving_variance)
    gamma = to_numpy(layer.gamma) if layer.scale else np.ones_like(mean)
    beta = to_numpy(layer.beta) if layer.center else np.zeros_like(mean)
    scale = gamma / np.sqrt(var + layer.epsilon)
    offset = beta - mean * scale
    bshape = [1] * len(shape)
    bshape[axis] = -1
    scale = np.broadcast_to(scale.reshape(bshape), shape).ravel()
    offset = np.broadcast_to(offset.reshape(bshape), shape).ravel()
    return [cv.linear_layer(layer, ins[0], scale, shape, offset, activation=None)]


def pooling(cv, layer, ins, out_shapes):
    check_padding(layer)
    out_shape, transform = spatial_transform(
        layer,
        ins[0].shape,
        lambda shape: sp.avg_pool(
            shape, tuple(layer.pool_size), tuple(layer.strides), layer.padding
        ),
    )
    check_out_shape(layer, out_shape, out_shapes)
    return [cv.linear_layer(layer, ins[0], transform, out_shape, activation=None)]


def max_pool_node(cv, layer, port, out_shapes, pool_size=None, strides=None, padding="valid"):
    """A non-spiking Node computing the maximum (`MaxPool`: native in nengodl's loop
    and on nengo.Simulator)."""
    pool = MaxPool(port.shape, pool_size, strides, padding, is_channels_first(layer))
    # (a global pooling's output keeps a position per spatial axis: the same values)
    check_out_shape(layer, pool.out_shape if pool_size else out_shapes[0], out_shapes)
    node = nengo.Node(pool, size_in=size(port.shape), label=layer.name)
    cv.connect(port, node)
    return Port(node, out_shapes[0], None)


@rule(
    keras.layers.AveragePooling1D,
    keras.layers.AveragePooling2D,
    keras.layers.AveragePooling3D,
    per_step=False,
)
def average_pooling(cv, layer, ins, out_shapes):
    return pooling(cv, layer, ins, out_shapes)


@rule(
    keras.layers.MaxPooling1D,
    keras.layers.MaxPooling2D,
    keras.layers.MaxPooling3D,
    per_step=False,
)
def max_pooling(cv, layer, ins, out_shapes):
    """Average pooling with ``max_to_avg_pool=True`` (neurons and linear transforms
    only; a different output), else the maximum in a Node."""
    if cv.max_to_avg_pool:
        return pooling(cv, layer, ins, out_shapes)
    check_padding(layer)
    pool = tuple(layer.pool_size)
    return [
        max_pool_node(cv, layer, ins[0], out_shapes, pool, tuple(layer.strides), layer.padding)
    ]


def global_pool_matrix(in_shape):
    """``(out_shape, transform)``: channels_last means over all positions."""
    channels = in_shape[-1]
    cols = np.arange(size(in_shape))
    transform = sp.sparse((channels, len(cols)), cols % channels, cols, channels / len(cols))
    return (1,) * (len(in_shape) - 1) + (channels,), transform


@rule(
    keras.layers.GlobalAveragePooling1D,
    keras.layers.GlobalAveragePooling2D,
    keras.layers.GlobalAveragePooling3D,
    per_step=False,
)
def global_average_pooling(cv, layer, ins, out_shapes):
    _, transform = spatial_transform(layer, ins[0].shape, global_pool_matrix)
    return [cv.linear_layer(layer, ins[0], transform, out_shapes[0], activation=None)]


@rule(
    keras.layers.GlobalMaxPooling1D,
    keras.layers.GlobalMaxPooling2D,
    keras.layers.GlobalMaxPooling3D,
    per_step=False,
)
def global_max_pooling(cv, layer, ins, out_shapes):
    if cv.max_to_avg_pool:
        return global_average_pooling(cv, layer, ins, out_shapes)
    return [max_pool_node(cv, layer, ins[0], out_shapes)]


@rule(
    keras.layers.ZeroPadding1D,
    keras.layers.ZeroPadding2D,
    keras.layers.ZeroPadding3D,
    per_step=False,
)
def zero_padding(cv, layer, ins, out_shapes):
    pads = layer.padding
    if isinstance(layer, keras.layers.ZeroPadding1D):
        pads = [pads]
    pads = [tuple(p) for p in pads]
    out_shape, transform = spatial_transform(
        layer, ins[0].shape, lambda shape: sp.zero_pad(shape, pads)
    )
    check_out_shape(layer, out_shape, out_shapes)
    return [cv.linear_layer(layer, ins[0], transform, out_shape, activation=None)]


@rule(keras.layers.Concatenate)
def concatenate(cv, layer, ins, out_shapes):
    axis = cv.port_axis(layer.axis, len(ins[0].shape))
    positions = sp.concat_positions([p.shape for p in ins], axis)
    n = size(out_shapes[0])
    transforms = [sp.selection(pos, n) for pos in positions]
    return [cv.sum_layer(layer, ins, transforms, out_shapes[0])]


@rule(keras.layers.TimeDistributed)
def time_distributed(cv, layer, ins, out_shapes):
    """The wrapped layer, converted for one time step (nengo steps through time)."""
    if not cv.temporal_model:
        raise Unsupported("TimeDistributed is converted natively only with temporal_model=True")
    inner = layer.layer
    converter = cv.converters.get(type(inner))
    if converter is None:
        raise Unsupported(f"no native conversion for the wrapped {type(inner).__name__}")
    ok, reason = convertible(converter, inner, cv)
    if not ok:
        raise Unsupported(f"the wrapped {type(inner).__name__}: {reason}")
    cv.check_regularizers(inner)
    with cv.one_step():
        return converter(inner, cv).build(0, ins, out_shapes)
