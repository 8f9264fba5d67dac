"""Builder for nengo's convolution transforms (`nengo.Convolution`)."""

import tensorflow as tf
from nengo.builder.transforms import ConvInc

from nengodl.ops.registry import OpBuilder, register
from nengodl.signals import reshape


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
    Grouped convolutions run on the host (nengo's operator).
    """

    @classmethod
    def supports(cls, op):
        return op.conv.dimensions in (1, 2, 3) and op.conv.groups == 1

    def __call__(self, ctx):
        op = self.op
        conv = op.conv
        rank = conv.dimensions
        x = reshape(ctx.read(op.X, batched=True), (ctx.minibatch_size,) + conv.input_shape.shape)
        x = channels_to_last(x, conv.channels_last, rank)
        w = ctx.read(op.W)

        def apply(x, w):
            return tf.nn.convolution(
                x, tf.cast(w, x.dtype), strides=conv.strides, padding=conv.padding.upper()
            )

        if ctx.is_batched(op.W):
            y = tf.concat([apply(x[i : i + 1], w[i]) for i in range(ctx.minibatch_size)], axis=0)
        else:
            y = apply(x, w)
        y = channels_to_first(y, conv.channels_last, rank)
        ctx.inc(op.Y, reshape(y, (ctx.minibatch_size,) + op.Y.shape))
