"""Builder for `nengodl.tensor_node.SimTensorNode`: TensorFlow code in the loop."""

import tensorflow as tf

from nengodl.ops.registry import OpBuilder, register
from nengodl.signals import reshape
from nengodl.tensor_node import SimTensorNode, build_keras_layer, call_tensor_func


@register(SimTensorNode)
class TensorNodeBuilder(OpBuilder):
    """``output = tensor_func(t, input)`` with a leading minibatch axis.

    A Keras layer gets ``training=`` from the step's learning phase, and is built
    eagerly (`build_keras_layer`) the first time the step is traced.
    """

    items_independent = False  # user code may mix minibatch items

    def __call__(self, ctx):
        op = self.op
        node = op.node
        build_keras_layer(node, ctx.minibatch_size, ctx.dtype)
        t = tf.cast(ctx.read(op.time), ctx.dtype)
        if ctx.is_batched(op.time):
            t = t[0]
        x = None
        if op.input is not None:
            x = reshape(ctx.read(op.input, batched=True), (ctx.minibatch_size,) + node.shape_in)
            x = tf.cast(x, ctx.dtype)
        out = call_tensor_func(node, t, x, ctx.minibatch_size, training=ctx.training)
        ctx.set(op.output, reshape(out, (ctx.minibatch_size, node.size_out)))
