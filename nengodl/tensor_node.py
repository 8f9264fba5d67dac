"""TensorNode and Layer: TensorFlow and Keras code inside nengo models."""

import keras
import nengo
import numpy as np
import tensorflow as tf
from nengo.builder import Builder, Operator, Signal
from nengo.builder.operator import Reset
from nengo.exceptions import SimulationError, ValidationError
from nengo.params import Default, Parameter


def _shape(shape, name, node_label):
    if shape is None:
        return None
    if isinstance(shape, (int, np.integer)):
        shape = (int(shape),)
    try:
        shape = tuple(int(d) for d in shape)
    except TypeError:
        raise ValidationError(
            f"{node_label}: {name} must be a tuple of ints (got {shape!r})", attr=name
        ) from None
    if any(d < 1 for d in shape):
        raise ValidationError(
            f"{node_label}: {name} must have positive dimensions (got {shape})", attr=name
        )
    return shape


class TensorNode(nengo.Node):
    """A nengo Node whose output is computed by TensorFlow code.

    Parameters
    ----------
    tensor_func : callable or keras.layers.Layer
        Called every simulation step as ``tensor_func(t, x)`` (or ``tensor_func(x)``
        with ``pass_time=False``), where ``t`` is the simulation time (a scalar
        tensor) and ``x`` the input, shape ``(minibatch_size,) + shape_in``; it
        returns a tensor of shape ``(minibatch_size,) + shape_out``. A Keras layer or
        model is built once and its weights are trainable.
    shape_in : tuple of int, optional
        Shape of the input (without the minibatch axis); None for no input.
    shape_out : tuple of int, optional
        Shape of the output; inferred by calling ``tensor_func`` if None.
    pass_time : bool
        Whether ``t`` is passed to ``tensor_func``.
    label : str, optional
        Name of the node.
    size_in, size_out : int, optional
        Flat alternatives to ``shape_in`` / ``shape_out`` (the seed tutorial's form).

    Examples
    --------
    >>> import nengo, nengodl, tensorflow as tf
    >>> with nengo.Network() as net:
    ...     a = nengo.Node([0.5])
    ...     exp = nengodl.TensorNode(lambda t, x: tf.exp(x), size_in=1)
    ...     _ = nengo.Connection(a, exp, synapse=None)
    ...     p = nengo.Probe(exp)
    >>> with nengodl.Simulator(net, progress_bar=False) as sim:
    ...     sim.run_steps(2)
    >>> round(float(sim.data[p][-1, 0]), 4)
    1.6487
    """

    output = Parameter("output", default=None, optional=True)

    def __init__(
        self,
        tensor_func,
        shape_in=None,
        shape_out=None,
        pass_time=True,
        label=None,
        size_in=None,
        size_out=None,
    ):
        nengo.base.NengoObject.__init__(self, label=label, seed=Default)
        name = f"TensorNode '{label}'" if label else "TensorNode"
        if not callable(tensor_func):
            raise ValidationError(
                f"{name}: tensor_func must be callable or a Keras layer "
                f"(got {type(tensor_func).__name__})",
                attr="tensor_func",
            )
        if shape_in is None and size_in:
            shape_in = (size_in,)
        if shape_out is None and size_out:
            shape_out = (size_out,)
        self.tensor_func = tensor_func
        self.pass_time = bool(pass_time)
        self.shape_in = _shape(shape_in, "shape_in", name)
        self.size_in = 0 if self.shape_in is None else int(np.prod(self.shape_in))
        shape_out = _shape(shape_out, "shape_out", name)
        if shape_out is None:
            shape_out = self._infer_shape_out(name)
        self.shape_out = shape_out
        self.size_out = int(np.prod(shape_out))

    def _infer_shape_out(self, name):
        x = None if self.shape_in is None else tf.zeros((1,) + self.shape_in)
        out = call_tensor_func(self, tf.constant(0.0), x, None if x is None else 1)
        return tuple(int(d) for d in out.shape[1:])

    @property
    def is_keras(self):
        """Whether ``tensor_func`` is a Keras layer (or model), whose weights train.

        Examples
        --------
        >>> import keras, nengo, nengodl, tensorflow as tf
        >>> with nengo.Network():
        ...     dense = nengodl.TensorNode(keras.layers.Dense(2), shape_in=(3,), pass_time=False)
        ...     exp = nengodl.TensorNode(lambda t, x: tf.exp(x), size_in=1)
        >>> dense.is_keras, exp.is_keras
        (True, False)
        """
        return isinstance(self.tensor_func, keras.layers.Layer)

    def __repr__(self):
        return (
            f"<TensorNode {self.label or ''} shape_in={self.shape_in} shape_out={self.shape_out}>"
        )


def call_tensor_func(node, t, x, batch=None):
    """Call ``node.tensor_func``, checking what it returns.

    Parameters
    ----------
    node : TensorNode
        The node.
    t : tf.Tensor
        Simulation time (scalar).
    x : tf.Tensor or None
        Input, shape ``(batch,) + shape_in``.
    batch : int, optional
        The minibatch size, if known. A node without input may return its
        output without the minibatch axis; it is then broadcast.

    Raises
    ------
    SimulationError
        If the function fails, or returns something that is not a tensor of shape
        ``(minibatch_size,) + shape_out``.
    """
    args = [] if not node.pass_time else [t]
    if x is not None:
        args.append(x)
    in_shape = None if x is None else tuple(x.shape)
    try:
        out = node.tensor_func(*args)
    except Exception as e:
        raise SimulationError(
            f"{node}: tensor_func failed on input shape {in_shape}: {type(e).__name__}: {e}"
        ) from e
    if not (tf.is_tensor(out) or isinstance(out, np.ndarray)):
        raise SimulationError(
            f"{node}: tensor_func must return a tensor (got {type(out).__name__}) "
            f"for input shape {in_shape}"
        )
    out = tf.convert_to_tensor(out)
    shape = tuple(out.shape)
    expected = getattr(node, "shape_out", None)
    if expected is None:
        if len(shape) < 2 or (batch is not None and shape[0] != batch):
            raise SimulationError(
                f"{node}: tensor_func output shape {shape} must be "
                f"(minibatch_size,) + shape_out for input shape {in_shape}"
            )
        return out
    if x is None and shape == expected and batch is not None:
        return tf.broadcast_to(out, (batch,) + expected)
    if shape[1:] != expected or (batch is not None and shape[0] != batch):
        raise SimulationError(
            f"{node}: tensor_func output shape {shape} does not match "
            f"(minibatch_size,) + shape_out = ({batch},) + {expected} "
            f"for input shape {in_shape}"
        )
    return out


class SimTensorNode(Operator):
    """Operator calling a `TensorNode`'s function: ``output = f(t, input)``.

    Only nengodl can run it; nengo's own simulator raises an error.
    """

    def __init__(self, node, time, input, output, tag=None):
        super().__init__(tag=tag)
        self.node = node
        self.sets = [output]
        self.incs = []
        self.reads = [time] + ([] if input is None else [input])
        self.updates = []

    @property
    def time(self):
        return self.reads[0]

    @property
    def input(self):
        return self.reads[1] if len(self.reads) > 1 else None

    @property
    def output(self):
        return self.sets[0]

    def make_step(self, signals, dt, rng):
        raise SimulationError(
            f"{self.node} contains TensorFlow code: run it with nengodl.Simulator"
        )


@Builder.register(TensorNode)
def build_tensor_node(model, node):
    """Build a `TensorNode`: input and output signals and a `SimTensorNode`."""
    if node.size_in > 0:
        sig_in = Signal(shape=(node.size_in,), name=f"{node}.in")
        model.add_op(Reset(sig_in))
    else:
        sig_in = None
    sig_out = Signal(shape=(node.size_out,), name=f"{node}.out")
    model.sig[node]["in"] = sig_in
    model.sig[node]["out"] = sig_out
    model.params[node] = None
    model.add_op(SimTensorNode(node, model.time, sig_in, sig_out, tag=str(node)))


class Layer:
    """Keras-style syntax for adding layers to a nengo model.

    ``Layer(layer_func)(input, ...)`` creates a `TensorNode` (for a callable or
    Keras layer) or an Ensemble's neurons (for a `nengo.NeuronType`), connects
    ``input`` to it, and returns the new object, so that layers chain.

    Parameters
    ----------
    layer_func : callable, keras.layers.Layer or nengo.NeuronType
        What the layer computes.

    Examples
    --------
    >>> import nengo, nengodl, keras
    >>> with nengo.Network() as net:
    ...     inp = nengo.Node(np.zeros(4))
    ...     x = nengodl.Layer(keras.layers.Dense(3))(inp)
    ...     x = nengodl.Layer(nengo.RectifiedLinear())(x)
    >>> x.size_out
    3
    """

    def __init__(self, layer_func):
        self.layer_func = layer_func

    def __call__(
        self,
        input,
        transform=1,
        shape_in=None,
        synapse=None,
        return_conn=False,
        **layer_args,
    ):
        """Create the layer and connect ``input`` to it.

        Parameters
        ----------
        input : NengoObject
            The object that feeds the layer.
        transform : array_like or nengo Transform
            Transform on the connection from ``input``.
        shape_in : tuple of int, optional
            Shape of the layer's input (default ``(input.size_out,)``).
        synapse : Synapse or float, optional
            Synapse on the connection from ``input``.
        return_conn : bool
            Also return the connection.
        layer_args
            Passed to `nengo.Ensemble` (neuron types) or `TensorNode`.

        Returns
        -------
        obj : Neurons or TensorNode
            The new layer.
        conn : nengo.Connection
            Only if ``return_conn``.
        """
        size_in = getattr(transform, "size_out", None)
        if size_in is None:
            t = np.asarray(transform)
            size_in = input.size_out if t.ndim < 2 else t.shape[0]
        if isinstance(self.layer_func, nengo.neurons.NeuronType):
            n = int(np.prod(shape_in)) if shape_in is not None else size_in
            ens = nengo.Ensemble(n, 1, neuron_type=self.layer_func, **layer_args)
            obj = ens.neurons
        else:
            if shape_in is None:
                shape_in = (size_in,)
            obj = TensorNode(self.layer_func, shape_in=shape_in, pass_time=False, **layer_args)
        conn = nengo.Connection(input, obj, transform=transform, synapse=synapse)
        return (obj, conn) if return_conn else obj

    def __str__(self):
        name = getattr(self.layer_func, "name", None) or type(self.layer_func).__name__
        return f"Layer({name})"
