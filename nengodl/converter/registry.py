"""The converter's registry of layer converters, and `LayerConverter`, their base class.

`CONVERTERS` maps each Keras layer class to the `LayerConverter` subclass that
turns its calls into nengo objects (`Converter.converters` is this dict, and
`Converter.register` adds to it); the entry ``None`` is the fallback that runs a
layer's Keras code in a `TensorNode` (a replacement should subclass
`nengodl.converter.fallback.ConvertFallback`). nengodl's own layer rules (see
`nengodl.converter.layers`) are registered here as well, so a converter
registered for a built-in Keras layer replaces nengodl's.

The converter lookup is by exact class (``type(layer)``), as in NengoDL 3.6: a
subclass of a registered Keras layer needs a registration of its own.
"""

import warnings
from collections import namedtuple

import nengo
import numpy as np

from nengodl.converter.errors import ConversionError, describe

Port = namedtuple("Port", ["obj", "shape", "synapse"])
Port.__doc__ = """A converted tensor: nengo object, shape (no batch axis), synapse on
connections that read it."""

Call = namedtuple("Call", ["node", "in_ports", "out_shapes"])
Call.__doc__ = """One call of a layer being converted: the Keras graph node (None for
calls Keras does not record, such as a layer inside ``TimeDistributed``), the `Port` of
each input tensor and the shape of each output (no batch or time axis)."""

CONVERTERS = {}
"""The registry: Keras layer class (or None, the fallback) -> `LayerConverter` subclass."""


def size(shape):
    """The number of elements of an array of ``shape``.

    Examples
    --------
    >>> size((2, 3)), size(())
    (6, 1)
    """
    return int(np.prod(shape))


def register(keras_layer, registry=None):
    """A class decorator registering a `LayerConverter` for the Keras layer class ``keras_layer``.

    Parameters
    ----------
    keras_layer : type or None
        The Keras layer class (calls of its exact instances use the converter);
        None registers the fallback for layers without a converter.
    registry : dict, optional
        The registry to add to (default: `CONVERTERS`).

    Returns
    -------
    decorator : callable
        Registers the class it is applied to and returns it unchanged. A
        registration replacing an earlier one warns.

    Raises
    ------
    TypeError
        If ``keras_layer`` is neither a class nor None, or the decorated object
        is not a `LayerConverter` subclass.
    """
    registry = CONVERTERS if registry is None else registry
    if keras_layer is not None and not isinstance(keras_layer, type):
        raise TypeError(
            f"register takes a Keras layer class, not {type(keras_layer).__name__} {keras_layer!r}"
        )

    def decorator(converter_class):
        if not (isinstance(converter_class, type) and issubclass(converter_class, LayerConverter)):
            raise TypeError(
                f"{converter_class!r} is not a subclass of "
                "nengodl.converter.LayerConverter and cannot be registered"
            )
        if keras_layer in registry:
            name = "the fallback" if keras_layer is None else keras_layer.__name__
            warnings.warn(
                f"{name} already has a converter ({registry[keras_layer].__name__}); "
                f"{converter_class.__name__} replaces it"
            )
        registry[keras_layer] = converter_class
        return converter_class

    return decorator


def convertible(cls, layer, converter):
    """``(ok, reason)`` from ``cls.convertible(layer, converter)``, which may also
    return a bare bool (as NengoDL 3.6's converters do).

    Parameters
    ----------
    cls : type
        A `LayerConverter` subclass.
    layer : keras.layers.Layer
        The layer to convert.
    converter : Converter
        The converter running the conversion.
    """
    result = cls.convertible(layer, converter)
    if isinstance(result, tuple):
        ok, reason = result
    else:
        ok, reason = result, None
    return bool(ok), None if ok else reason or f"{cls.__name__} cannot convert it"


class LayerConverter:
    """Base class of the converters turning the calls of one Keras layer into nengo objects.

    The `Converter` makes one instance per layer (`Converter.get_converter`) and
    calls `build` for each call of the layer it converts; `build` calls
    `convert`, which subclasses implement: it creates nengo objects (inside the
    converter's network) for the call ``node_id`` and returns the object whose
    output is the layer's output (a list of them for layers with several
    outputs). `get_input_obj`, `input_shape`, `output_shape`, `add_nengo_obj`,
    `add_connection` and `set_trainable` help to build it.

    Shapes are those of one item: no batch axis, and in a ``temporal_model`` no
    time axis either (each nengo step computes one time step). nengo vectors
    hold the values in Keras's order (C order of the shape).

    Parameters
    ----------
    layer : keras.layers.Layer
        The layer converted.
    converter : Converter
        The converter running the conversion.

    Attributes
    ----------
    layer : keras.layers.Layer
        The layer converted.
    converter : Converter
        The converter running the conversion.
    unsupported_args : sequence
        Attributes of the layer that must have their default value for the
        layer to convert (checked by `convertible`): a name (default None) or
        a ``(name, default)`` pair.
    unsupported_training_args : sequence
        As ``unsupported_args``, unless the converter has ``inference_only=True``.
    has_weights : bool or None
        Whether the layer has weights, which a second call of the layer would
        share (an error unless ``split_shared_weights=True``); None (default):
        whether ``layer.weights`` is not empty.
    allow_fallback : bool
        Whether a layer that `convertible` refuses may run in a `TensorNode`
        (with the converter's ``allow_fallback``); if False it is an error.
    per_step : bool or None
        Whether the conversion acts on each time step separately, as the
        layers of a ``temporal_model`` must: True, False (then the layer falls
        back to a TensorNode in temporal models), or None (default): the
        converter checks that the Keras layer does, on random sequences.

    Examples
    --------
    A Keras layer scaling its input, and a converter giving it a nengo form:

    >>> import keras, nengo, nengodl, numpy as np
    >>> class Triple(keras.layers.Layer):
    ...     def call(self, x):
    ...         return 3 * x
    >>> @nengodl.Converter.register(Triple)
    ... class ConvertTriple(nengodl.converter.LayerConverter):
    ...     def convert(self, node_id):
    ...         out = self.add_nengo_obj(node_id)  # a passthrough Node
    ...         self.add_connection(node_id, out, transform=3)
    ...         return out
    >>> inp = keras.Input((2,))
    >>> model = keras.Model(inp, Triple()(inp))
    >>> conv = nengodl.Converter(model, allow_fallback=False)
    >>> type(conv.get_converter(model.layers[1])).__name__
    'ConvertTriple'
    >>> conv.verify()
    True
    >>> del nengodl.Converter.converters[Triple]
    """

    unsupported_args = ()
    unsupported_training_args = ()
    has_weights = None
    allow_fallback = True
    per_step = None

    def __init__(self, layer, converter):
        self.layer = layer
        self.converter = converter
        self._calls = {}
        self._made = {}  # id(target of add_nengo_obj) -> Port of the layer's output

    @classmethod
    def convertible(cls, layer, converter):
        """Whether ``layer`` can be converted by this class, and why not.

        The default checks ``unsupported_args`` (and, without ``inference_only``,
        ``unsupported_training_args``); subclasses can extend it.

        Parameters
        ----------
        layer : keras.layers.Layer
            The layer to convert.
        converter : Converter
            The converter running the conversion.

        Returns
        -------
        convertible : bool
            True if the layer converts natively.
        reason : str or None
            Why not (None if it does); the fallback warning or error gives it.
        """
        args = list(cls.unsupported_args)
        if not converter.inference_only:
            args += list(cls.unsupported_training_args)
        for arg in args:
            name, default = (arg, None) if isinstance(arg, str) else arg
            value = getattr(layer, name, default)
            if not _equal(value, default):
                reason = f"{name}={value!r} is not supported (only {default!r})"
                if arg in cls.unsupported_training_args:
                    reason += " unless inference_only=True"
                return False, reason
        return True, None

    def convert(self, node_id):
        """Build the nengo objects of call ``node_id`` of the layer.

        Parameters
        ----------
        node_id : int
            Which call of the layer (its index among the layer's Keras graph nodes).

        Returns
        -------
        output : nengo object or list of nengo objects
            The object whose output is the layer's output (a `nengo.Node`,
            ``ensemble.neurons``, a `TensorNode`, ...; one per output for layers
            with several outputs).
        """
        raise NotImplementedError(f"{type(self).__name__} must implement convert(node_id)")

    def build(self, node_id, in_ports, out_shapes, node=None):
        """Convert call ``node_id`` of the layer: the converter's entry point.

        Parameters
        ----------
        node_id : int
            Which call of the layer.
        in_ports : list of Port
            The converted inputs of the call.
        out_shapes : list of tuple of int
            The shapes of its outputs.
        node : keras graph node, optional
            The call in the Keras graph.

        Returns
        -------
        ports : list of Port
            The converted outputs.
        """
        self._calls[node_id] = Call(node, tuple(in_ports), tuple(tuple(s) for s in out_shapes))
        return self.output_ports(node_id)

    def output_ports(self, node_id):
        """The `Port` of each output of call ``node_id``: what `convert` returns.

        Raises
        ------
        ConversionError
            If `convert` returns a number of objects other than the layer's
            number of outputs, or an object whose size is not its output's.
        """
        shapes = self.call(node_id).out_shapes
        objs = self.convert(node_id)
        objs = list(objs) if isinstance(objs, (list, tuple)) else [objs]
        if len(objs) != len(shapes):
            raise ConversionError(
                f"{describe(self.layer)}: {type(self).__name__}.convert returned "
                f"{len(objs)} objects for {len(shapes)} outputs"
            )
        return [self._port(node_id, obj, shape) for obj, shape in zip(objs, shapes)]

    def _port(self, node_id, obj, shape):
        made = self._made.get(id(obj))
        n_out = getattr(obj if made is None else made.obj, "size_out", None)
        if n_out != size(shape):
            raise ConversionError(
                f"{describe(self.layer)}: {type(self).__name__}.convert returned {obj!r} "
                f"(size_out={n_out}) for an output of shape {shape} ({size(shape)} elements)"
            )
        if made is not None:
            return made._replace(shape=shape)
        for port in self.call(node_id).in_ports:
            if port.obj is obj:  # the input passed on: keep its synapse
                return port._replace(shape=shape)
        neurons = isinstance(obj, nengo.ensemble.Neurons)
        return Port(obj, shape, self.converter.synapse if neurons else None)

    def call(self, node_id):
        """The `Call` ``node_id`` being converted (its inputs' ports and output shapes).

        Raises
        ------
        ConversionError
            If the converter is not converting that call.
        """
        try:
            return self._calls[node_id]
        except KeyError:
            raise ConversionError(
                f"{describe(self.layer)}: call {node_id} is not being converted "
                f"(calls converted: {sorted(self._calls)})"
            ) from None

    def get_input_obj(self, node_id, tensor_idx=0):
        """The nengo object whose output is input ``tensor_idx`` of call ``node_id``."""
        return self.call(node_id).in_ports[tensor_idx].obj

    def input_shape(self, node_id, full_shape=False):
        """The shape of the input of call ``node_id`` (a list of shapes for several inputs).

        Parameters
        ----------
        node_id : int
            Which call of the layer.
        full_shape : bool
            Include the batch axis (and time axis) as Keras gives them.
        """
        call = self.call(node_id)
        shapes = [p.shape for p in call.in_ports]
        tensors = None if call.node is None else call.node.input_tensors
        return _shapes(shapes, tensors, full_shape)

    def output_shape(self, node_id, full_shape=False):
        """The shape of the output of call ``node_id`` (a list of shapes for several outputs).

        Parameters
        ----------
        node_id : int
            Which call of the layer.
        full_shape : bool
            Include the batch axis (and time axis) as Keras gives them.
        """
        call = self.call(node_id)
        tensors = None if call.node is None else call.node.output_tensors
        return _shapes(call.out_shapes, tensors, full_shape)

    def add_nengo_obj(self, node_id, biases=None, activation=None):
        """The object computing the layer's activation of its input (plus ``biases``).

        Connect the layer's input to the returned object (`add_connection`) and
        return it from `convert`. The activation goes through the converter's
        ``swap_activations`` and ``scale_firing_rates``, as for nengodl's own
        layers: a neuron type gives an Ensemble (the ``neurons`` are returned),
        linear a passthrough `nengo.Node`, an activation without a neuron type
        a Node followed by a TensorNode computing it.

        Parameters
        ----------
        node_id : int
            Which call of the layer (its first output's shape is used).
        biases : array, optional
            Added to the input, one per output element; they train (unless the
            layer has ``trainable=False``).
        activation : str, callable, nengo.neurons.NeuronType or None
            A Keras activation (as the layer's ``activation`` argument) or a
            neuron type; None is linear.

        Returns
        -------
        obj : nengo.Node or nengo.ensemble.Neurons
            Where the layer's input connects; returned by `convert`, it stands
            for the layer's output.
        """
        shape = self.call(node_id).out_shapes[0]
        if biases is not None:
            biases = np.asarray(biases, dtype=np.float64).ravel()
            if biases.size != size(shape):
                raise ConversionError(
                    f"{describe(self.layer)}: {biases.size} biases for an output of shape "
                    f"{shape} ({size(shape)} elements)"
                )
        target, port = self.converter.activation_target(
            self.layer, activation, shape, biases, trainable=self.layer.trainable
        )
        self._made[id(target)] = port
        return target

    def add_connection(self, node_id, obj, input_idx=0, trainable=False, **kwargs):
        """Connect input ``input_idx`` of call ``node_id`` to ``obj``.

        Parameters
        ----------
        node_id : int
            Which call of the layer.
        obj : nengo object
            The connection's ``post``.
        input_idx : int
            Which input of the layer.
        trainable : bool
            Whether the connection's weights train.
        **kwargs
            Passed to `nengo.Connection` (``transform``, ``function``, ...); the
            default ``synapse`` is the converter's ``synapse`` for inputs that
            are neurons, else None.

        Returns
        -------
        conn : nengo.Connection
            The connection.
        """
        port = self.call(node_id).in_ports[input_idx]
        kwargs.setdefault("synapse", port.synapse)
        conn = nengo.Connection(port.obj, obj, **kwargs)
        self.set_trainable(conn, trainable)
        return conn

    def set_trainable(self, obj, trainable):
        """Set ``net.config[obj].trainable`` in the converter's network."""
        self.converter.net.config[obj].trainable = trainable


def _equal(value, default):
    try:
        return bool(value == default)
    except (TypeError, ValueError):  # arrays and the like
        return value is default


def _shapes(shapes, tensors, full_shape):
    """One shape per tensor (a single shape for one tensor), with the batch axes if full."""
    if full_shape:
        if tensors is None:  # a call inside TimeDistributed: one time step
            shapes = [(None, *s) for s in shapes]
        else:
            shapes = [tuple(t.shape) for t in tensors]
    shapes = [tuple(s) for s in shapes]
    return shapes[0] if len(shapes) == 1 else shapes
