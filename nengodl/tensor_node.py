"""TensorNode and Layer: TensorFlow and Keras code inside nengo models."""

import warnings

import keras
import nengo
import numpy as np
import tensorflow as tf
from nengo.builder import Builder, Operator, Signal
from nengo.builder.operator import Reset
from nengo.exceptions import ConfigError, SimulationError
from nengo.params import Default, Parameter

from nengodl.config import configure_settings
from nengodl.tensor_node_params import (
    PassTimeParam,
    ShapeInParam,
    ShapeOutParam,
    TensorFuncParam,
)


def infer_shape_out(node):
    """The shape of ``node.tensor_func``'s output, from calling it once.

    The function is called eagerly (as the simulator builds Keras layers) on a
    minibatch of one: ``t = 0`` and zeros of shape ``(1,) + shape_in``.

    Parameters
    ----------
    node : TensorNode
        The node, with its ``tensor_func``, ``shape_in`` and ``pass_time`` set
        (its ``shape_out`` is not read).

    Returns
    -------
    tuple of int
        The output's shape without the minibatch axis.

    Raises
    ------
    SimulationError
        If the function fails or does not return a tensor with a minibatch axis.

    Examples
    --------
    >>> import nengo, nengodl, tensorflow as tf
    >>> with nengo.Network():
    ...     node = nengodl.TensorNode(lambda t: tf.zeros((1, 2, 5)), shape_out=(10,))
    >>> infer_shape_out(node)  # what the function returns, whatever shape_out says
    (2, 5)
    """
    with tf.init_scope():
        x = None if node.shape_in is None else tf.zeros((1,) + node.shape_in)
        batch = None if x is None else 1
        out = _call(node, tf.constant(0.0), x, training=False)
        out = _check_output(node, out, x, batch, expected=None)
    return tuple(int(d) for d in out.shape[1:])


class TensorNode(nengo.Node):
    """A nengo Node whose output is computed by TensorFlow code.

    Parameters
    ----------
    tensor_func : callable or keras.layers.Layer
        Called every simulation step with the simulation time ``t`` (a scalar
        tensor; only with ``pass_time=True``) and the input ``x`` (shape
        ``(minibatch_size,) + shape_in``; only with a ``shape_in``); it returns a
        tensor of shape ``(minibatch_size,) + shape_out``. A function is called as
        ``tensor_func(t, x)``, ``tensor_func(t)`` or ``tensor_func(x)``. A Keras
        layer (or model) gets its inputs as one argument, ``layer([t, x])``,
        ``layer(t)`` or ``layer(x)``, and ``training=`` from the simulator's
        learning phase (True in ``fit``/``train``, False in ``run``/``predict``
        unless ``configure_settings(learning_phase=True)``); it is built eagerly
        before the simulation is traced, and its weights are trainable.
    shape_in : tuple of int, optional
        Shape of the input (without the minibatch axis); None (the default) for
        no input. An int ``n`` means ``(n,)``.
    shape_out : tuple of int, optional
        Shape of the output; inferred by calling ``tensor_func`` (eagerly, on a
        minibatch of one) if None (the default).
    pass_time : bool
        Whether ``t`` is passed to ``tensor_func`` (default True). A node without
        ``shape_in`` must have ``pass_time=True``: its function has nothing else
        to read.
    label : str, optional
        Name of the node.
    size_in, size_out : int, optional
        Flat alternatives to ``shape_in`` / ``shape_out`` (NengoDL 2's form).

    Notes
    -----
    As in NengoDL 3.6, ``tensor_func``, ``shape_in``, ``shape_out`` and
    ``pass_time`` are nengo Parameters of the class (see
    `nengodl.tensor_node_params`): assigning one to a node later is validated
    (``node.shape_out = None`` infers it again), nengo copies and pickles them,
    and once a network's config ``configures(TensorNode)`` it can set defaults
    for ``shape_in``, ``shape_out`` and ``pass_time`` (``tensor_func`` has none).
    ``size_in`` and ``size_out`` follow from the shapes.

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

    Defaults from a network's config:

    >>> with nengo.Network() as net:
    ...     net.config.configures(nengodl.TensorNode)
    ...     net.config[nengodl.TensorNode].pass_time = False
    ...     double = nengodl.TensorNode(lambda x: 2 * x, shape_in=(3,))
    >>> double.pass_time, double.shape_out, nengodl.TensorNode.pass_time.default
    (False, (3,), True)
    """

    tensor_func = TensorFuncParam("tensor_func")
    shape_in = ShapeInParam("shape_in", default=None)
    shape_out = ShapeOutParam("shape_out", infer=infer_shape_out, default=None)
    pass_time = PassTimeParam("pass_time", default=True)
    # never set: nengo's Simulator refuses the node (its operator says to use nengodl)
    output = Parameter("output", default=None, optional=True)

    # copies and unpickling set these first, in this order (shape_out is set by
    # then, so tensor_func is not called again)
    _param_init_order = ("shape_in", "pass_time", "shape_out", "tensor_func")

    def __init__(
        self,
        tensor_func,
        shape_in=Default,
        shape_out=Default,
        pass_time=Default,
        label=Default,
        size_in=None,
        size_out=None,
    ):
        nengo.base.NengoObject.__init__(self, label=label, seed=Default)
        if size_in and (shape_in is Default or shape_in is None):
            shape_in = (size_in,)
        if size_out and (shape_out is Default or shape_out is None):
            shape_out = (size_out,)
        self.shape_in = shape_in
        self.pass_time = pass_time
        self.shape_out = shape_out  # None: inferred when tensor_func is set
        self.tensor_func = tensor_func

    @property
    def size_in(self):
        """Number of input dimensions, flat: ``prod(shape_in)`` (0 without input).

        Examples
        --------
        >>> import nengo, nengodl
        >>> with nengo.Network():
        ...     node = nengodl.TensorNode(lambda x: x, shape_in=(2, 3), pass_time=False)
        >>> node.size_in
        6
        """
        return 0 if self.shape_in is None else int(np.prod(self.shape_in))

    @property
    def size_out(self):
        """Number of output dimensions, flat: ``prod(shape_out)``.

        Examples
        --------
        >>> import nengo, nengodl, tensorflow as tf
        >>> with nengo.Network():
        ...     node = nengodl.TensorNode(lambda t: tf.zeros((1, 2, 2)), shape_out=(2, 2))
        >>> node.size_out
        4
        """
        return 0 if self.shape_out is None else int(np.prod(self.shape_out))

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


def tensor_func_inputs(node, t, x):
    """The arguments ``node.tensor_func`` is called with.

    Parameters
    ----------
    node : TensorNode
        The node.
    t : tf.Tensor
        Simulation time (scalar).
    x : tf.Tensor or None
        Input, shape ``(batch,) + shape_in``.

    Returns
    -------
    list
        ``[t, x]``, ``[t]`` or ``[x]`` for a function (called as ``func(*args)``);
        for a Keras layer one argument: ``[[t, x]]``, ``[t]`` or ``[x]``.

    Examples
    --------
    >>> import keras, nengo, nengodl, tensorflow as tf
    >>> with nengo.Network():
    ...     node = nengodl.TensorNode(keras.layers.Identity(), shape_in=(2,), shape_out=(2,))
    >>> args = tensor_func_inputs(node, tf.constant(0.0), tf.zeros((1, 2)))
    >>> len(args), len(args[0])
    (1, 2)
    """
    args = ([t] if node.pass_time else []) + ([] if x is None else [x])
    if node.is_keras and len(args) > 1:
        return [args]
    return args


def call_tensor_func(node, t, x, batch=None, training=False):
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
    training : bool
        The learning phase, passed to a Keras layer as ``training=`` (Keras
        drops it for layers whose ``call`` has no ``training`` argument).

    Raises
    ------
    SimulationError
        If the function fails, or returns something that is not a tensor of shape
        ``(minibatch_size,) + shape_out``.
    """
    out = _call(node, t, x, training)
    return _check_output(node, out, x, batch, expected=node.shape_out)


def _call(node, t, x, training):
    args = tensor_func_inputs(node, t, x)
    try:
        if node.is_keras:
            return node.tensor_func(*args, training=bool(training))
        return node.tensor_func(*args)
    except Exception as e:
        how = ""
        if node.is_keras and node.pass_time:
            how = (
                f" (a Keras layer with pass_time=True is called as layer("
                f"{'[t, x]' if x is not None else 't'}); set pass_time=False for layer(x))"
            )
        raise SimulationError(
            f"{node}: tensor_func failed on input shape {_shape_of(x)}{how}: "
            f"{type(e).__name__}: {e}"
        ) from e


def _shape_of(x):
    return None if x is None else tuple(x.shape)


def _check_output(node, out, x, batch, expected):
    """``out`` as a tensor of shape ``(batch,) + expected`` (any shape_out if None)."""
    in_shape = _shape_of(x)
    if not (tf.is_tensor(out) or isinstance(out, np.ndarray)):
        raise SimulationError(
            f"{node}: tensor_func must return a tensor (got {type(out).__name__}) "
            f"for input shape {in_shape}"
        )
    out = tf.convert_to_tensor(out)
    shape = tuple(out.shape)
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


def build_keras_layer(node, batch, dtype):
    """Build a TensorNode's Keras layer eagerly, if it is not built yet.

    The layer is called once, outside any `tf.function` being traced, on zeros
    of the shapes the simulation gives it (``t`` and ``(batch,) + shape_in``):
    layers whose ``build`` needs eager execution (``.numpy()``, ``get_weights``,
    cloning a ``keras.Model``) then work in the simulation too.

    Parameters
    ----------
    node : TensorNode
        The node (nothing is done unless its function is an unbuilt Keras layer).
    batch : int
        The minibatch size.
    dtype : tf.DType
        The simulation's floating point type.
    """
    if not node.is_keras or node.tensor_func.built:
        return
    with tf.init_scope():
        t = tf.constant(0.0, dtype)
        x = None if node.shape_in is None else tf.zeros((batch,) + node.shape_in, dtype)
        call_tensor_func(node, t, x, batch, training=False)


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
        # the input connection does not train (as in NengoDL 3): it is set on the
        # config of the network being defined, which then has ``trainable``
        config = nengo.Network.context[-1].config
        try:
            config[conn].trainable = False
        except (AttributeError, ConfigError):
            configure_settings(trainable=None)
            config[conn].trainable = False
        return (obj, conn) if return_conn else obj

    def __str__(self):
        func = self.layer_func
        name = getattr(func, "name", None) or getattr(func, "__name__", None) or func
        return f"Layer({name})"


def tensor_layer(
    input, layer_func, shape_in=None, synapse=None, transform=1, return_conn=False, **layer_args
):
    """Deprecated (as in NengoDL 3): ``Layer(layer_func)(input, ...)`` does the same.

    Parameters
    ----------
    input : NengoObject
        The object that feeds the layer.
    layer_func : callable, keras.layers.Layer or nengo.NeuronType
        As `Layer`'s ``layer_func``.
    shape_in, synapse, transform, return_conn, layer_args
        As in `Layer.__call__`.

    Returns
    -------
    TensorNode or nengo.ensemble.Neurons (and the Connection if ``return_conn``)

    Examples
    --------
    >>> import warnings
    >>> import nengo, nengodl
    >>> with nengo.Network():
    ...     a = nengo.Node([1.0, 2.0])
    ...     with warnings.catch_warnings(record=True) as w:
    ...         warnings.simplefilter("always")
    ...         b = nengodl.tensor_layer(a, lambda x: x * 2)
    >>> b.size_out, w[0].category.__name__
    (2, 'DeprecationWarning')
    """
    warnings.warn(
        "tensor_layer is deprecated; use Layer(layer_func)(input, ...) instead",
        DeprecationWarning,
        stacklevel=2,
    )
    return Layer(layer_func)(
        input,
        transform=transform,
        shape_in=shape_in,
        synapse=synapse,
        return_conn=return_conn,
        **layer_args,
    )
