"""Builder for `nengodl.tensor_node.SimTensorNode`: TensorFlow code in the loop."""

import contextlib
import threading

import keras
import tensorflow as tf

from nengodl.ops.registry import OpBuilder, register
from nengodl.tensor_node import SimTensorNode, build_keras_layer, call_tensor_func
from nengodl.views import reshape


@register(SimTensorNode)
class TensorNodeBuilder(OpBuilder):
    """``output = tensor_func(t, input)`` with a leading minibatch axis.

    A Keras layer gets ``training=`` from the step's learning phase, and is built
    eagerly (`build_keras_layer`) the first time the step is traced. While the
    function runs, Keras's ``floatx`` is the simulation's dtype (`keras_floatx`).
    """

    items_independent = False  # user code may mix minibatch items

    def __call__(self, ctx):
        op = self.op
        node = op.node
        with keras_floatx(ctx.dtype):
            out = self._call(ctx)
        ctx.set(op.output, reshape(out, (ctx.minibatch_size, node.size_out)))

    def _call(self, ctx):
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
        return call_tensor_func(node, t, x, ctx.minibatch_size, training=ctx.training)


_FLOATX_LOCK = threading.RLock()


@contextlib.contextmanager
def keras_floatx(dtype):
    """Keras's default float type set to ``dtype`` inside the block, as it was after.

    Parameters
    ----------
    dtype : tf.DType
        The simulation's floating point type.
    """
    with _FLOATX_LOCK:  # Keras's floatx is the process's
        before = keras.config.floatx()
        keras.config.set_floatx(dtype.name)
        try:
            yield
        finally:
            keras.config.set_floatx(before)
