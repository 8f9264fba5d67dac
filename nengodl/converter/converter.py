"""`Converter`: a Keras model becomes a (spiking) nengo network.

The converter walks the Keras graph from the model's outputs back to its
inputs and builds each layer from plain nengo objects (see
`nengodl.converter.layers`), keeping Keras's layout on the flat nengo vectors;
layers without a native form run their Keras code in a `TensorNode` (see
`nengodl.converter.fallback`).
"""

import keras
import nengo
import numpy as np

from nengodl.config import configure_settings, refuse_training
from nengodl.converter import (  # noqa: F401 (register nengodl's layer rules)
    elementwise,
    layers,
)
from nengodl.converter.activations import Swaps
from nengodl.converter.building import NetworkBuilding
from nengodl.converter.errors import ConversionError, Unsupported, describe
from nengodl.converter.fallback import acts_per_step
from nengodl.converter.maps import KerasMap
from nengodl.converter.registry import CONVERTERS, Port, convertible, register, size

__all__ = ["ConversionError", "Converter"]


class Converter(NetworkBuilding):
    """Convert a Keras model into a nengo network.

    Natively supported layers become plain nengo objects (so the network runs
    on ``nengo.Simulator`` too): ``InputLayer``, ``Dense``, ``Conv1D/2D/3D``,
    ``Activation`` and layer activations (``relu``, ``sigmoid``, ``tanh``,
    ``leaky_relu``, ``linear``, as names, Keras, ``keras.ops`` or ``tf.nn``
    functions), ``ReLU``, ``LeakyReLU``, ``BatchNormalization`` (with
    ``inference_only=True`` or ``trainable=False``), ``Dropout`` (with
    ``inference_only=True``), ``Flatten``, ``Reshape``, ``Concatenate``,
    ``Add``, ``Subtract``, ``Average``, ``AveragePooling1D/2D/3D``,
    ``GlobalAveragePooling1D/2D/3D``, ``MaxPooling1D/2D/3D`` and
    ``GlobalMaxPooling1D/2D/3D`` (a non-spiking Node computing the maximum, or
    average pooling with ``max_to_avg_pool=True``),
    ``ZeroPadding1D/2D/3D`` and, in temporal models, ``TimeDistributed``.
    Nested models are converted layer by layer. Everything else runs its Keras
    code in a `TensorNode`.

    Each layer class's conversion is a `LayerConverter` subclass in the
    registry `Converter.converters` (keyed by Keras layer class, the fallback
    under None); `Converter.register` adds one for another layer class (or
    replaces nengodl's), as in NengoDL 3.6.

    Parameters
    ----------
    model : keras.Model
        A built ``Sequential`` or functional model.
    allow_fallback : bool
        Run layers without a native form as TensorNodes (with a warning);
        if False, such layers raise a `ConversionError` naming the layer and why.
    inference_only : bool
        Fold ``BatchNormalization`` into a fixed scale and offset, remove
        ``Dropout`` and drop weight regularizers and constraints (inference is
        unchanged); the network is then configured not to train. Without it, a
        model with regularizers converts, but training it is refused
        (training would leave the regularization loss out).
    max_to_avg_pool : bool
        Replace (global) max pooling by (global) average pooling. This changes
        the model's output: retrain it, or check its accuracy. Otherwise max
        pooling is a non-spiking Node computing the maximum (Keras's output, on
        nengo.Simulator too, but not neurons: for a network of neurons and
        linear transforms only, as neuromorphic hardware runs, set it True).
    split_shared_weights : bool
        Allow a layer with weights that is called more than once: each call
        gets its own copy of the weights (which then train independently).
    swap_activations : dict, optional
        Replaces activations: keys are Keras activations (names, Keras or
        ``tf.nn`` functions) or the neuron types they convert to by default
        (``nengo.RectifiedLinear()``, ``nengo.Sigmoid(tau_ref=1)``,
        ``nengo.Tanh(tau_ref=1)``, ``nengodl.LeakyReLU(negative_slope=0.2)``);
        values are neuron types or Keras activations, e.g.
        ``{"relu": nengo.SpikingRectifiedLinear()}`` or
        ``{tf.nn.sigmoid: tf.nn.relu}``. Keys no layer uses give a warning.
    scale_firing_rates : float or dict, optional
        Multiply the input of each neuron layer by this factor and divide its
        output (the neuron amplitude) by it: for ReLU-like neurons the rate
        output is unchanged while spiking neurons fire faster. A dict maps
        layers (or layer names) to factors (others use 1). Neuron types without
        an amplitude keep their output scale (with a warning: the output changes).
    synapse : float or nengo.synapses.Synapse, optional
        Synapse on every connection (and output probe) reading neuron outputs.
    temporal_model : bool
        The model's tensors have a time axis after the batch axis,
        ``(batch, n_steps, ...)``, which becomes nengo's time: each nengo step
        computes one time step. The time axis may be None. All layers must act
        on each time step separately (such as ``Dense``, activations and
        ``TimeDistributed``); others raise a `ConversionError`.

    Attributes
    ----------
    model : keras.Model
        The converted model.
    net : nengo.Network
        The converted network.
    inputs : Mapping
        Input `nengo.Node` per model input (Keras tensor, ``Input`` layer or name).
    outputs : Mapping
        `nengo.Probe` per model output (Keras tensor, layer or name).
    layers : Mapping
        The nengo object producing each converted tensor (by tensor, layer or name).
    swap_activations : Mapping
        The ``swap_activations`` given; ``swap_activations.unused_keys()`` are the
        keys no layer used.
    converters : dict
        The registry (class attribute): Keras layer class -> `LayerConverter`
        subclass converting it (None -> the TensorNode fallback).
    KerasTensorDict : type
        The class of ``inputs``, ``outputs`` and ``layers``
        (`nengodl.converter.maps.KerasMap`; NengoDL 3.6's name).
    TrackedDict : type
        The class of ``swap_activations`` (`nengodl.converter.activations.Swaps`;
        NengoDL 3.6's name).

    Examples
    --------
    >>> import keras, nengo, nengodl, numpy as np
    >>> inp = keras.Input((3,))
    >>> out = keras.layers.Dense(2, activation="relu")(inp)
    >>> model = keras.Model(inp, out)
    >>> conv = nengodl.Converter(model)
    >>> conv.verify(inputs=np.ones((2, 3)))
    True
    >>> with nengo.Simulator(conv.net, progress_bar=False) as sim:
    ...     sim.step()
    >>> sim.data[conv.outputs[out]].shape
    (1, 2)
    """

    converters = CONVERTERS
    KerasTensorDict = KerasMap
    TrackedDict = Swaps

    def __init__(
        self,
        model,
        allow_fallback=True,
        inference_only=False,
        max_to_avg_pool=False,
        split_shared_weights=False,
        swap_activations=None,
        scale_firing_rates=None,
        synapse=None,
        temporal_model=False,
    ):
        if not isinstance(model, keras.Model):
            raise ConversionError(f"model must be a keras.Model (got {type(model).__name__})")
        try:
            model_inputs, model_outputs = model.inputs, model.outputs
        except (AttributeError, ValueError):
            model_inputs = model_outputs = None
        if not model_inputs or not model_outputs:
            raise ConversionError(
                f"Model '{model.name}' has no defined inputs and outputs; build it "
                "with keras.Input (or model.build(input_shape)) before converting"
            )
        super().__init__(temporal_model)
        self.model = model
        self.allow_fallback = allow_fallback
        self.inference_only = inference_only
        self.max_to_avg_pool = max_to_avg_pool
        self.split_shared_weights = split_shared_weights
        self.synapse = synapse
        self.temporal_model = bool(temporal_model)
        self.swap_activations = Swaps(swap_activations)
        self.scale_firing_rates = scale_firing_rates
        self.inputs = KerasMap("inputs")
        self.outputs = KerasMap("outputs")
        self.layers = KerasMap("layers")
        self._converted = set()
        self._layer_converters = {}  # id(layer) -> its LayerConverter
        self._regularized = []  # layers whose regularizers training would leave out
        self.net = nengo.Network(label=model.name)
        with self.net:
            configure_settings(trainable=None)
            if inference_only:
                configure_settings(inference_only=True)
            ports = {}
            for t in model_inputs:
                layer = t._keras_history.operation
                shape = self._shape(t, layer)
                node = nengo.Node(np.zeros(size(shape)), label=layer.name)
                ports[id(t)] = Port(node, shape, None)
                self.inputs.add(t, layer, node)
                self.layers.add(t, layer, node)
            for t in model_outputs:
                port = self._port(t, ports)
                layer = t._keras_history.operation
                probe = nengo.Probe(port.obj, synapse=port.synapse, label=layer.name)
                self.outputs.add(t, layer, probe)
        self.swap_activations.warn_unused()
        if self._regularized:
            refuse_training(
                self.net,
                f"the converted Keras model's {'; '.join(self._regularized)}: training "
                "would leave the regularization loss out (remove the regularizers to train "
                "it; it simulates as Keras predicts)",
            )

    def _shape(self, tensor, layer):
        """The shape of one item (and one time step, in temporal models) of ``tensor``."""
        full = tuple(tensor.shape)
        lead = self.lead_axes
        shape = full[lead:]
        if len(full) < lead or any(d is None for d in shape):
            hint = ""
            if not self.temporal_model and len(full) > 1 and full[1] is None:
                hint = (
                    "; if the first axis after the batch is a variable number of time "
                    "steps, set temporal_model=True"
                )
            what = "the batch and time axes" if self.temporal_model else "the batch axis"
            raise ConversionError(
                f"{describe(layer)}: output shape {full} must be fully defined apart "
                f"from {what}{hint}"
            )
        return tuple(int(d) for d in shape)

    # ---- graph walk ----

    def _port(self, tensor, ports):
        """The `Port` of a Keras tensor, converting the layers it depends on."""
        if id(tensor) in ports:
            return ports[id(tensor)]
        layer, node_index, _ = tensor._keras_history
        if isinstance(layer, keras.layers.InputLayer):
            raise ConversionError(
                f"{describe(layer)} is used but is not one of the model's inputs"
            )
        node = layer._inbound_nodes[node_index]
        in_ports = [self._port(t, ports) for t in node.input_tensors]
        out_shapes = [self._shape(t, layer) for t in node.output_tensors]
        if isinstance(layer, keras.Model) and type(layer) not in self.converters:
            outs = self._convert_model(layer, in_ports)
        else:
            outs = self._convert_layer(layer, node_index, node, in_ports, out_shapes)
        for t, port in zip(node.output_tensors, outs):
            ports[id(t)] = port
            self.layers.add(t, layer, port.obj)
        return ports[id(tensor)]

    def _convert_model(self, model, in_ports):
        """Convert a model used as a layer, with its own tensors."""
        inner = {id(t): p for t, p in zip(model.inputs, in_ports)}
        return [self._port(t, inner) for t in model.outputs]

    def _convert_layer(self, layer, node_index, node, in_ports, out_shapes):
        self.check_regularizers(layer)
        cls, reason = self._registered(layer)
        if reason is None and self.temporal_model:
            reason = self._time_steps_problem(cls, layer, node, in_ports)
        if reason is None:
            weights = cls.has_weights if cls.has_weights is not None else bool(layer.weights)
            if weights and id(layer) in self._converted and not self.split_shared_weights:
                raise ConversionError(
                    f"{describe(layer)} is called more than once with shared "
                    "weights; set split_shared_weights=True to give each call "
                    "its own copy (they then train independently)"
                )
            self._converted.add(id(layer))
            converter = self._layer_converters.get(id(layer))
            if type(converter) is not cls:
                converter = self._layer_converters[id(layer)] = cls(layer, self)
            try:
                return converter.build(node_index, in_ports, out_shapes, node=node)
            except Unsupported as e:
                reason = str(e)
        converter = self._fallback_converter(layer, reason, cls)
        self._layer_converters[id(layer)] = converter
        return converter.build(node_index, in_ports, out_shapes, node=node)

    def _registered(self, layer):
        """``(converter class or None, reason)``: the layer's registered converter, and
        why it does not convert the layer (None if it does)."""
        cls = self.converters.get(type(layer))
        if cls is None:
            return None, f"no native conversion for {type(layer).__name__}"
        return cls, convertible(cls, layer, self)[1]

    def _time_steps_problem(self, cls, layer, node, in_ports):
        """Why ``cls`` cannot convert this call of ``layer`` in a temporal model (or None)."""
        tensors = list(node.input_tensors) + list(node.output_tensors)
        times = {t.shape[1] for t in tensors}
        per_step = cls.per_step
        if per_step is None:
            fixed = times - {None}
            n_steps = max(fixed) if fixed else 3
            shapes = [p.shape for p in in_ports]
            per_step = len(fixed) <= 1 and acts_per_step(layer, node, shapes, n_steps)
        if not per_step:
            return f"{type(layer).__name__} combines time steps in a temporal model"
        if len(times) > 1:
            return f"it changes the time axis ({sorted(times, key=str)})"
        return None

    def _fallback_converter(self, layer, reason, cls=None):
        refused_by = cls if cls is not None and not cls.allow_fallback else None
        return self.converters[None](layer, self, reason=reason, refused_by=refused_by)

    # ---- the registry ----

    @classmethod
    def register(cls, keras_layer):
        """A class decorator registering a `LayerConverter` for a Keras layer class.

        Calls of layers of exactly that class then convert with the decorated
        class (its `LayerConverter.convert`); registering a class that already
        has a converter (one of nengodl's, or an earlier registration) replaces
        it, with a warning.

        Parameters
        ----------
        keras_layer : type or None
            The Keras layer class (None: the fallback for layers without a
            converter).

        Returns
        -------
        decorator : callable
            Registers the `LayerConverter` subclass it decorates and returns it.

        See `LayerConverter` for an example.
        """
        return register(keras_layer, cls.converters)

    def get_converter(self, layer):
        """The `LayerConverter` instance converting ``layer``.

        For a layer of the converted model, the instance that converted it
        (the fallback, a ``converters[None]`` instance, if it runs in a
        TensorNode). For other layers, an instance of the registered converter
        if it accepts the layer (`LayerConverter.convertible`), else of the
        fallback; the same instance on each call.

        Parameters
        ----------
        layer : keras.layers.Layer
            The layer.

        Returns
        -------
        converter : LayerConverter
            Its converter.

        Raises
        ------
        ConversionError
            If the layer would need the fallback, and ``allow_fallback`` is
            False (or its registered converter does not allow the fallback).
        """
        converter = self._layer_converters.get(id(layer))
        if converter is None:
            cls, reason = self._registered(layer)
            if reason is None:
                converter = cls(layer, self)
            else:
                converter = self._fallback_converter(layer, reason, cls)
                converter.check_allowed()
            self._layer_converters[id(layer)] = converter
        return converter

    def check_regularizers(self, layer):
        """Note layers with regularizers: nengodl's training would leave them out,
        so training the converted network is refused (`refuse_training`), while
        simulating it is not (regularizers do not change the model's output).

        With ``inference_only=True`` they are dropped (nothing trains).
        """
        if self.inference_only:
            return
        names = [k for k, v in vars(layer).items() if k.endswith("_regularizer") and v]
        if getattr(layer, "activity_regularizer", None) is not None:
            names.append("activity_regularizer")
        if not names:  # regularizers given to add_weight by custom layers
            names = [
                f"a regularizer on weight '{w.path}'"
                for w in getattr(layer, "weights", [])
                if getattr(w, "regularizer", None) is not None
            ]
        if names:
            self._regularized.append(f"{describe(layer)} has {', '.join(sorted(set(names)))}")

    # ---- checking ----

    def verify(self, training=False, inputs=None, atol=1e-5, rtol=1e-4):
        """Check that the converted network gives the Keras model's output.

        Runs `nengodl.Simulator` (one step, or the sequence of a temporal model,
        with a minibatch of the inputs) and compares every output probe with
        the Keras model. Spiking neurons only approximate their rates over
        time, so they need ``training=True``.

        Parameters
        ----------
        training : bool
            Run in training mode, where spiking neurons run as their rate
            counterparts (``SpikingRectifiedLinear`` as ``RectifiedLinear``, ...),
            and check that training changes both alike: the nengo network must
            have as many trainable parameters as the Keras model, and after
            three SGD steps (learning rate 0.1, mean squared error to targets of
            ones) on both, their outputs must still agree. The Keras model and
            the converted network are left as they were.
        inputs : array or list of arrays, optional
            Model inputs, ``(batch,) + input_shape`` each (default: two random
            items, uniform in [-1, 1]; 10 time steps for temporal models whose
            time axis is None).
        atol, rtol : float
            Tolerances of the comparison.

        Returns
        -------
        ok : bool
            True (a mismatch raises an error).

        Raises
        ------
        ValueError
            If an output differs (naming the output and the largest difference),
            if the numbers of trainable parameters differ (``training=True``), or
            if the network has synapses, or spiking neurons without ``training``.
        """
        from nengodl.converter.verify import verify

        return verify(self, training=training, inputs=inputs, atol=atol, rtol=rtol)
