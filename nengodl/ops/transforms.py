"""Builder for nengo's convolution transforms (`nengo.Convolution`)."""

import tensorflow as tf
from nengo.builder.transforms import ConvInc

from nengodl.ops.registry import OpBuilder, register
from nengodl.views import reshape


def channels_to_last(x, channels_last, rank):
    """Move the channel axis of ``(batch, ...)`` images to the end."""
    if channels_last:
        return x
    return tf.transpose(x, [0] + list(range(2, rank + 2)) + [1])


def channels_to_first(x, channels_last, rank):
    """Undo `channels_to_last`."""
    if channels_last:
        return x
    return tf.transpose(x, [0, rank + 1] + list(range(1, rank + 1)))


@register(ConvInc)
class ConvIncBuilder(OpBuilder):
    """``Y += conv(X, W)`` for 1-D, 2-D and 3-D convolutions (TensorFlow's semantics,
    which are nengo's: cross-correlation, ``same``/``valid`` padding, strides).

    nengo's own simulator stops at 2-D; a 3-D ``nengo.Convolution`` runs here only.
    Grouped convolutions (``groups > 1``) run as TensorFlow's depthwise
    convolution where each group has one input channel (depthwise layers), else
    as one convolution per group.
    """

    @classmethod
    def supports(cls, op):
        return op.conv.dimensions in (1, 2, 3) and (op.conv.groups == 1 or op.conv.dimensions <= 2)

    def __call__(self, ctx):
        op = self.op
        conv = op.conv
        rank = conv.dimensions
        x = reshape(ctx.read(op.X, batched=True), (ctx.minibatch_size,) + conv.input_shape.shape)
        x = channels_to_last(x, conv.channels_last, rank)
        w = ctx.read(op.W)

        def apply(x, w):
            return grouped_convolution(x, tf.cast(w, x.dtype), conv)

        if ctx.is_batched(op.W):
            y = tf.concat([apply(x[i : i + 1], w[i]) for i in range(ctx.minibatch_size)], axis=0)
        else:
            y = apply(x, w)
        y = channels_to_first(y, conv.channels_last, rank)
        ctx.inc(op.Y, reshape(y, (ctx.minibatch_size,) + op.Y.shape))


def grouped_convolution(x, w, conv):
    """``conv`` (a `nengo.Convolution`) of channels-last ``x`` with kernel ``w``,
    ``(*kernel_size, in_channels // groups, n_filters)``, in any number of groups."""
    groups, padding = conv.groups, conv.padding.upper()
    if groups == 1:
        return tf.nn.convolution(x, w, strides=conv.strides, padding=padding)
    in_channels = conv.input_shape.n_channels
    if groups == in_channels and conv.dimensions <= 2:
        # one input channel per group: depthwise, (*k, 1, C * m) -> (*k, C, m)
        kernel = tf.reshape(w, tuple(conv.kernel_size) + (in_channels, conv.n_filters // groups))
        strides = tuple(conv.strides)
        if conv.dimensions == 1:  # as 2-D, with a height of 1
            x, kernel, strides = x[:, None], kernel[None], (1,) + strides
        y = tf.nn.depthwise_conv2d(x, kernel, strides=(1,) + strides + (1,), padding=padding)
        return y[:, 0] if conv.dimensions == 1 else y
    xs = tf.split(x, groups, axis=-1)
    ws = tf.split(w, groups, axis=-1)
    return tf.concat(
        [tf.nn.convolution(a, b, strides=conv.strides, padding=padding) for a, b in zip(xs, ws)],
        axis=-1,
    )
