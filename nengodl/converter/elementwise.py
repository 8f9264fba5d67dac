"""Rules for Keras's elementwise layers: sums and products of branches
(``Add``, ``Subtract``, ``Average``, ``Multiply``, with numpy broadcasting) and
affine maps (``Rescaling``, ``Normalization``).

Sums and affine maps are linear, so they are connections with fixed transforms
into a Node. A product of two branches has no linear form: it is a non-spiking
Node computing the product exactly (`nengodl.ops.functions.Product`, native in
nengodl and numpy on nengo.Simulator); a spiking network keeps it as such.
"""

import keras
import nengo
import numpy as np
from keras.src.ops import numpy as knp  # the classes of keras.ops arithmetic in a graph

from nengodl.converter import sparse as sp
from nengodl.converter.errors import Unsupported
from nengodl.converter.layers import rule, to_numpy
from nengodl.converter.registry import LayerConverter, Port, register, size
from nengodl.ops.functions import Product


def broadcast(in_shape, out_shape, weight=1):
    """The fixed transform repeating an input of ``in_shape`` to ``out_shape``
    (numpy's broadcasting) times ``weight``, or ``weight`` where the shapes are equal."""
    in_shape, out_shape = tuple(in_shape), tuple(out_shape)
    if in_shape == out_shape:
        return weight
    padded = (1,) * (len(out_shape) - len(in_shape)) + in_shape
    index = np.broadcast_to(np.arange(size(in_shape)).reshape(padded), out_shape).ravel()
    return sp.sparse((len(index), size(in_shape)), np.arange(len(index)), index, weight)


def out_shape_of(layer, ins, out_shapes):
    try:
        shape = np.broadcast_shapes(*[tuple(p.shape) for p in ins])
    except ValueError:
        shapes = [tuple(p.shape) for p in ins]
        raise Unsupported(f"inputs of shapes {shapes} do not broadcast") from None
    if tuple(shape) != tuple(out_shapes[0]):
        raise Unsupported(f"the inputs broadcast to {shape}, Keras gives {out_shapes[0]}")
    return tuple(shape)


@rule(keras.layers.Add, keras.layers.Subtract, keras.layers.Average)
def add(cv, layer, ins, out_shapes):
    shape = out_shape_of(layer, ins, out_shapes)
    if isinstance(layer, keras.layers.Subtract):
        weights = [1, -1]
    elif isinstance(layer, keras.layers.Average):
        weights = [1.0 / len(ins)] * len(ins)
    else:
        weights = [1] * len(ins)
    transforms = [broadcast(port.shape, shape, w) for port, w in zip(ins, weights)]
    return [cv.sum_layer(layer, ins, transforms, shape)]


@rule(keras.layers.Multiply)
def multiply(cv, layer, ins, out_shapes):
    shape = out_shape_of(layer, ins, out_shapes)
    product = Product([tuple(p.shape) for p in ins])
    node = nengo.Node(product, size_in=sum(product.sizes), label=layer.name)
    offset = 0
    for port, n in zip(ins, product.sizes):
        cv.connect(port, node, sp.selection(np.arange(offset, offset + n), node.size_in))
        offset += n
    return [Port(node, shape, None)]


def affine(cv, layer, port, scale, offset):
    """``x * scale + offset``, each broadcast to the port's shape."""
    shape = tuple(port.shape)
    scale = np.broadcast_to(np.asarray(scale, dtype=np.float64), shape).ravel()
    offset = np.broadcast_to(np.asarray(offset, dtype=np.float64), shape).ravel()
    bias = offset if np.any(offset) else None
    return cv.linear_layer(layer, port, scale, shape, bias, activation=None)


@rule(keras.layers.Rescaling)
def rescaling(cv, layer, ins, out_shapes):
    shape = tuple(ins[0].shape)
    scale, offset = np.asarray(layer.scale), np.asarray(layer.offset)
    for name, value in (("scale", scale), ("offset", offset)):
        if value.ndim > 0 and np.broadcast_shapes(value.shape, shape) != shape:
            raise Unsupported(f"{name} of shape {value.shape} for inputs {shape}")
    return [affine(cv, layer, ins[0], scale, offset)]


@rule(keras.layers.Normalization)
def normalization(cv, layer, ins, out_shapes):
    mean = to_numpy(layer.mean)
    std = np.maximum(np.sqrt(to_numpy(layer.variance)), keras.backend.epsilon())
    # the statistics have the inputs' rank with the batch axis (size 1) in front
    mean, std = mean.reshape(mean.shape[1:]), std.reshape(std.shape[1:])
    if layer.invert:
        return [affine(cv, layer, ins[0], std, mean)]
    return [affine(cv, layer, ins[0], 1 / std, -mean / std)]


class ConvertArithmetic(LayerConverter):
    """``+``, ``-``, ``*`` and ``/`` (``keras.ops`` arithmetic) in a functional
    model, as in MobileNetV3's ``hard_sigmoid``: with a constant operand an
    affine map, between two tensors a sum (as ``Add``) or a product (as
    ``Multiply``)."""

    has_weights = False
    per_step = True

    def output_ports(self, node_id):
        call = self.call(node_id)
        op, cv, ins = self.layer, self.converter, list(call.in_ports)
        kind = ARITHMETIC[type(op)]
        args = () if call.node is None else call.node.arguments.args
        if len(args) != 2 or call.node.arguments.kwargs:
            raise Unsupported(f"{kind} of {len(args)} arguments")
        is_tensor = [isinstance(a, keras.KerasTensor) for a in args]
        if all(is_tensor):
            if kind == "multiply":
                return multiply(cv, op, ins, list(call.out_shapes))
            if kind == "divide":
                raise Unsupported("a division of two tensors has no native form")
            shape = out_shape_of(op, ins, call.out_shapes)
            weights = [1, -1] if kind == "subtract" else [1, 1]
            transforms = [broadcast(p.shape, shape, w) for p, w in zip(ins, weights)]
            return [cv.sum_layer(op, ins, transforms, shape)]
        (port,) = ins
        const = np.asarray(args[is_tensor.index(False)], dtype=np.float64)
        if np.broadcast_shapes(const.shape, tuple(port.shape)) != tuple(port.shape):
            raise Unsupported(f"a constant of shape {const.shape} for inputs {port.shape}")
        first = is_tensor[0]
        if kind == "add":
            scale, offset = 1, const
        elif kind == "subtract":
            scale, offset = (1, -const) if first else (-1, const)
        elif kind == "multiply":
            scale, offset = const, 0
        elif first:  # x / c
            scale, offset = 1 / const, 0
        else:
            raise Unsupported("a constant divided by a tensor has no native form")
        return [affine(cv, op, port, scale, offset)]

    def convert(self, node_id):
        """The nengo object of the operation's output for call ``node_id``."""
        return self.output_ports(node_id)[0].obj


# the operation classes that keras.ops arithmetic adds to a functional model
ARITHMETIC = {
    knp.Add: "add",
    knp.Subtract: "subtract",
    knp.Multiply: "multiply",
    knp.TrueDivide: "divide",
    knp.Divide: "divide",
}
for _cls in ARITHMETIC:
    register(_cls)(ConvertArithmetic)
