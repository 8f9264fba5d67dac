"""Node functions that run natively: `NodeFunction` and its builder.

A `nengo.Node` whose output is a `NodeFunction` runs its numpy ``__call__`` on
``nengo.Simulator`` (as any Node function) and its TensorFlow ``tf_call`` inside
nengodl's compiled loop, where a plain Python function would run on the host
(once per minibatch item, with XLA off). The converter uses them for Keras
activations that are not the rate of a neuron, such as an output ``softmax``, and for
the product of two branches (``Multiply``, as in squeeze-and-excite blocks).
"""

import numpy as np
import tensorflow as tf
from nengo.builder.operator import SimPyFunc

from nengodl.ops.registry import OpBuilder, register
from nengodl.views import reshape


class NodeFunction:
    """A Node function ``f(t, x)`` with a TensorFlow form (see the module's docstring).

    Subclasses give ``numpy(x)`` and ``tensorflow(x)`` of ``x`` shaped
    ``shape`` (with a leading minibatch axis for ``tensorflow``); the Node sees
    them on the flat vector.

    Parameters
    ----------
    shape : tuple of int
        The shape of the Node's input (and output), flattened in C order.
    """

    def __init__(self, shape):
        self.shape = tuple(int(d) for d in shape)

    def __call__(self, t, x):
        return self.numpy(np.asarray(x).reshape(self.shape)).ravel()

    def tf_call(self, x):
        """``tensorflow`` of a ``(batch, size)`` tensor, flat again."""
        y = self.tensorflow(tf.reshape(x, (-1,) + self.shape))
        return tf.reshape(y, (-1, int(np.prod(self.shape))))

    def numpy(self, x):
        raise NotImplementedError

    def tensorflow(self, x):
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}(shape={self.shape})"

    def __eq__(self, other):
        return type(other) is type(self) and other.shape == self.shape

    def __hash__(self):
        return hash((type(self), self.shape))


class Softmax(NodeFunction):
    """Softmax over the last axis (Keras's ``softmax`` activation).

    Examples
    --------
    >>> Softmax((2, 2))(0.0, np.log([1.0, 3.0, 1.0, 1.0])).round(2)
    array([0.25, 0.75, 0.5 , 0.5 ])
    """

    def numpy(self, x):
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)

    def tensorflow(self, x):
        return tf.nn.softmax(x, axis=-1)


class Product(NodeFunction):
    """The elementwise product of several inputs, broadcast as numpy does (Keras's
    ``Multiply``); the Node's input is the inputs flattened one after another.

    Parameters
    ----------
    shapes : list of tuple of int
        The inputs' shapes.

    Examples
    --------
    >>> Product([(2, 2), (2, 1)])(0.0, np.array([1.0, 2.0, 3.0, 4.0, 10.0, -1.0]))
    array([10., 20., -3., -4.])
    """

    def __init__(self, shapes):
        self.shapes = [tuple(int(d) for d in shape) for shape in shapes]
        super().__init__(np.broadcast_shapes(*self.shapes))
        self.sizes = [int(np.prod(shape)) for shape in self.shapes]

    def __call__(self, t, x):
        parts = np.split(np.asarray(x), np.cumsum(self.sizes)[:-1])
        out = np.ones(self.shape)
        for part, shape in zip(parts, self.shapes):
            out = out * part.reshape(shape)
        return out.ravel()

    def tf_call(self, x):
        parts = tf.split(x, self.sizes, axis=1)
        out = None
        for part, shape in zip(parts, self.shapes):
            part = tf.reshape(part, (-1,) + shape)
            out = part if out is None else out * part
        out = tf.broadcast_to(out, tf.concat([tf.shape(out)[:1], self.shape], axis=0))
        return tf.reshape(out, (-1, int(np.prod(self.shape))))

    def __repr__(self):
        return f"Product(shapes={self.shapes})"

    def __eq__(self, other):
        return type(other) is type(self) and other.shapes == self.shapes

    def __hash__(self):
        return hash((type(self), tuple(self.shapes)))


class MaxPool(NodeFunction):
    """Max pooling (Keras's ``MaxPooling1D/2D/3D``, and with ``pool_size=None`` its
    ``GlobalMaxPooling``), over the spatial axes of one item.

    Parameters
    ----------
    in_shape : tuple of int
        The input's shape: spatial axes, then channels (or channels first).
    pool_size, strides : tuple of int, optional
        Per spatial axis; ``pool_size=None`` takes the maximum over all positions
        (the output keeps one position per spatial axis).
    padding : str
        ``"valid"`` or ``"same"`` (as Keras: the windows past the edges see only
        the input's values).
    channels_first : bool
        The channels come first.

    Examples
    --------
    >>> pool = MaxPool((4, 1), pool_size=(2,), strides=(2,))
    >>> pool.out_shape, pool(0.0, np.array([1.0, 3.0, -2.0, -5.0]))
    ((2, 1), array([ 3., -2.]))
    """

    def __init__(
        self, in_shape, pool_size=None, strides=None, padding="valid", channels_first=False
    ):
        super().__init__(in_shape)
        self.channels_first = bool(channels_first)
        spatial = self.shape[1:] if channels_first else self.shape[:-1]
        self.pool_size = None if pool_size is None else tuple(int(p) for p in pool_size)
        self.strides = self.pool_size if strides is None else tuple(int(s) for s in strides)
        self.padding = padding
        if self.pool_size is None:
            out = (1,) * len(spatial)
        elif padding == "same":
            out = tuple(-(-n // s) for n, s in zip(spatial, self.strides))
        else:
            out = tuple((n - p) // s + 1 for n, p, s in zip(spatial, self.pool_size, self.strides))
        channels = self.shape[0] if channels_first else self.shape[-1]
        self.out_shape = (channels, *out) if channels_first else (*out, channels)

    def _last(self, x, batch):
        """``x`` with the channels last (``batch``: a leading minibatch axis)."""
        if not self.channels_first:
            return x
        axes = list(range(x.ndim if hasattr(x, "ndim") else len(x.shape)))
        order = axes[:batch] + axes[batch + 1 :] + [batch]
        return np.transpose(x, order) if isinstance(x, np.ndarray) else tf.transpose(x, order)

    def _first(self, x, batch):
        if not self.channels_first:
            return x
        axes = list(range(x.ndim if hasattr(x, "ndim") else len(x.shape)))
        order = axes[:batch] + [axes[-1]] + axes[batch:-1]
        return np.transpose(x, order) if isinstance(x, np.ndarray) else tf.transpose(x, order)

    def __call__(self, t, x):
        x = self._last(np.asarray(x, dtype=np.float64).reshape(self.shape), 0)
        n_spatial = x.ndim - 1
        if self.pool_size is None:
            y = x.max(axis=tuple(range(n_spatial)), keepdims=True)
        else:
            if self.padding == "same":
                pads = []
                for n, p, s in zip(x.shape, self.pool_size, self.strides):
                    total = max((-(-n // s) - 1) * s + p - n, 0)
                    pads.append((total // 2, total - total // 2))
                x = np.pad(x, pads + [(0, 0)], constant_values=-np.inf)
            windows = np.lib.stride_tricks.sliding_window_view(
                x, self.pool_size, axis=tuple(range(n_spatial))
            )
            windows = windows[tuple(slice(None, None, s) for s in self.strides)]
            y = windows.max(axis=tuple(range(-n_spatial, 0)))
        return self._first(y, 0).ravel()

    def tf_call(self, x):
        x = self._last(tf.reshape(x, (-1,) + self.shape), 1)
        n_spatial = len(x.shape) - 2
        if self.pool_size is None:
            y = tf.reduce_max(x, axis=list(range(1, n_spatial + 1)), keepdims=True)
        else:
            y = tf.nn.max_pool(x, self.pool_size, self.strides, self.padding.upper())
        return tf.reshape(self._first(y, 1), (-1, int(np.prod(self.out_shape))))

    def __repr__(self):
        return (
            f"MaxPool(in_shape={self.shape}, pool_size={self.pool_size}, "
            f"strides={self.strides}, padding={self.padding!r}, "
            f"channels_first={self.channels_first})"
        )

    def _key(self):
        return (self.shape, self.pool_size, self.strides, self.padding, self.channels_first)

    def __eq__(self, other):
        return type(other) is type(self) and other._key() == self._key()

    def __hash__(self):
        return hash((type(self), self._key()))


@register(SimPyFunc)
class NodeFunctionBuilder(OpBuilder):
    """A Node whose output is a `NodeFunction`, run natively."""

    reads_time = False

    @classmethod
    def supports(cls, op):
        return isinstance(op.fn, NodeFunction) and op.x is not None and op.output is not None

    def __call__(self, ctx):
        op = self.op
        x = reshape(ctx.read(op.x, batched=True), (ctx.minibatch_size, op.x.size))
        y = op.fn.tf_call(x)
        ctx.set(op.output, reshape(tf.cast(y, x.dtype), (ctx.minibatch_size,) + op.output.shape))
