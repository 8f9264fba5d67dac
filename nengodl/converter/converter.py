"""`Converter`: a Keras model becomes a (spiking) nengo network.

The converter walks the Keras graph from the model's outputs back to its
inputs and builds each layer from plain nengo objects (see
`nengodl.converter.layers`), keeping Keras's channels_last layout on the flat
nengo vectors; layers without a native form run their Keras code in a
`TensorNode`.
"""

import inspect
import warnings
from collections.abc import Mapping

import keras
import nengo
import numpy as np

from nengodl.config import configure_settings, get_setting
from nengodl.converter.layers import RULES, Port, Unsupported, size
from nengodl.tensor_node import TensorNode


class ConversionError(ValueError):
    """A Keras model, layer or converter argument that cannot be converted."""


def describe(layer):
    return f"Layer '{layer.name}' ({type(layer).__name__})"


DEFAULT_NEURONS = {
    keras.activations.relu: nengo.RectifiedLinear(),
    keras.activations.sigmoid: nengo.Sigmoid(tau_ref=1),
    keras.activations.tanh: nengo.Tanh(tau_ref=1),
}
LINEAR = (None, keras.activations.linear)


class KerasMap(Mapping):
    """nengo objects by Keras tensor, by the layer that produced it, or by layer name.

    A layer called several times maps to the objects of its last call; use the
    tensors to reach the others.
    """

    def __init__(self, what):
        self._what = what
        self._tensors = {}  # id(tensor) -> (tensor, value)
        self._layers = {}  # id(layer) -> (layer, value)
        self._names = {}

    def add(self, tensor, layer, value):
        self._tensors[id(tensor)] = (tensor, value)
        self._layers[id(layer)] = (layer, value)
        self._names[layer.name] = value

    def __getitem__(self, key):
        for table in (self._tensors, self._layers):
            if id(key) in table and table[id(key)][0] is key:
                return table[id(key)][1]
        if isinstance(key, str) and key in self._names:
            return self._names[key]
        raise KeyError(
            f"{key!r} is not one of the converted model's {self._what} "
            "(expected a Keras tensor, layer or layer name)"
        )

    def __iter__(self):
        return (t for t, _ in self._tensors.values())

    def __len__(self):
        return len(self._tensors)


class CallOperation(keras.layers.Layer):
    """Runs one Keras graph node (layer or op call) on a flat input vector.

    Used as the ``tensor_func`` of fallback TensorNodes: splits the flat input
    into the node's input tensors, calls the operation with the node's
    recorded arguments and returns the output, cast to the input's dtype.
    """

    def __init__(self, operation, node, in_shapes, **kwargs):
        super().__init__(name=f"call_{operation.name}", **kwargs)
        self.operation = operation
        self._node = node
        self._ids = [id(t) for t in node.input_tensors]
        self._in_shapes = [tuple(s) for s in in_shapes]

    def call(self, x):
        values, start = {}, 0
        for key, shape in zip(self._ids, self._in_shapes):
            part = x[:, start : start + size(shape)]
            values[key] = keras.ops.reshape(part, (-1,) + shape)
            start += size(shape)
        args, kwargs = self._node.arguments.fill_in(values)
        out = self.operation(*args, **kwargs)
        return keras.ops.cast(out, x.dtype)


class Converter:
    """Convert a Keras model into a nengo network.

    Natively supported layers become plain nengo objects (so the network runs
    on ``nengo.Simulator`` too): ``InputLayer``, ``Dense``, ``Conv1D/2D/3D``,
    ``Activation`` and layer activations (``relu``, ``sigmoid``, ``tanh``,
    ``linear``), ``ReLU``, ``LeakyReLU``, ``BatchNormalization`` and
    ``Dropout`` (with ``inference_only=True``), ``Flatten``, ``Reshape``,
    ``Concatenate``, ``Add``, ``Subtract``, ``Average``,
    ``AveragePooling1D/2D/3D``, ``GlobalAveragePooling1D/2D/3D``,
    ``MaxPooling1D/2D/3D`` (with ``max_to_avg_pool=True``) and
    ``ZeroPadding1D/2D/3D``. Nested models are converted layer by layer.
    Everything else runs its Keras code in a `TensorNode`.

    Parameters
    ----------
    model : keras.Model
        A built ``Sequential`` or functional model.
    allow_fallback : bool
        Run layers without a native form as TensorNodes (with a warning);
        if False, such layers raise a `ConversionError` naming the layer and why.
    inference_only : bool
        Fold ``BatchNormalization`` into a fixed scale and offset and remove
        ``Dropout``; the network is then configured not to train.
    max_to_avg_pool : bool
        Replace max pooling by average pooling.
    split_shared_weights : bool
        Allow a layer with weights that is called more than once: each call
        gets its own copy of the weights (which then train independently).
    swap_activations : dict, optional
        Maps Keras activations (functions or names such as ``"relu"``) or the
        nengo neuron types they convert to by default (``nengo.RectifiedLinear()``,
        ``nengo.Sigmoid(tau_ref=1)``, ``nengo.Tanh(tau_ref=1)``) to the nengo
        neuron type to use instead, e.g. ``{"relu": nengo.SpikingRectifiedLinear()}``.
    scale_firing_rates : float or dict, optional
        Multiply the input of each neuron layer by this factor and divide its
        output (the neuron amplitude) by it: for ReLU-like neurons the rate
        output is unchanged while spiking neurons fire faster. A dict maps
        layers to factors (others use 1).
    synapse : float or nengo.synapses.Synapse, optional
        Synapse on every connection (and output probe) reading neuron outputs.

    Attributes
    ----------
    net : nengo.Network
        The converted network.
    inputs : Mapping
        Input `nengo.Node` per model input (Keras tensor, ``Input`` layer or name).
    outputs : Mapping
        `nengo.Probe` per model output (Keras tensor, layer or name).
    layers : Mapping
        The nengo object producing each converted tensor (by tensor, layer or name).

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
        self.model = model
        self.allow_fallback = allow_fallback
        self.inference_only = inference_only
        self.max_to_avg_pool = max_to_avg_pool
        self.split_shared_weights = split_shared_weights
        self.synapse = synapse
        self.swap_activations = self._swaps(swap_activations)
        self.scale_firing_rates = scale_firing_rates
        self.inputs = KerasMap("inputs")
        self.outputs = KerasMap("outputs")
        self.layers = KerasMap("layers")
        self._one = None
        self._converted = set()
        self.net = nengo.Network(label=model.name)
        with self.net:
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

    @staticmethod
    def _swaps(swap_activations):
        swaps = {}
        for key, value in (swap_activations or {}).items():
            if not isinstance(value, nengo.neurons.NeuronType):
                raise ConversionError(
                    f"swap_activations[{key!r}] must be a nengo neuron type "
                    f"(got {type(value).__name__})"
                )
            if isinstance(key, nengo.neurons.NeuronType):
                swaps[str(key)] = value
                continue
            try:
                swaps[keras.activations.get(key)] = value
            except (ValueError, TypeError):
                raise ConversionError(
                    f"swap_activations key {key!r} is not a Keras activation or nengo neuron type"
                ) from None
        return swaps

    @staticmethod
    def _shape(tensor, layer):
        shape = tuple(tensor.shape[1:])
        if any(d is None for d in shape):
            raise ConversionError(
                f"{describe(layer)}: output shape {tuple(tensor.shape)} must be fully "
                "defined apart from the batch axis"
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
        if isinstance(layer, keras.Model):
            outs = self._convert_model(layer, in_ports)
        else:
            outs = self._convert_layer(layer, node, in_ports, out_shapes)
        for t, port in zip(node.output_tensors, outs):
            ports[id(t)] = port
            self.layers.add(t, layer, port.obj)
        return ports[id(tensor)]

    def _convert_model(self, model, in_ports):
        """Convert a model used as a layer, with its own tensors."""
        inner = {id(t): p for t, p in zip(model.inputs, in_ports)}
        return [self._port(t, inner) for t in model.outputs]

    def _convert_layer(self, layer, node, in_ports, out_shapes):
        rule = RULES.get(type(layer))
        reason = f"no native conversion for {type(layer).__name__}"
        if rule is not None:
            shared = layer.weights and id(layer) in self._converted
            if shared and not self.split_shared_weights:
                raise ConversionError(
                    f"{describe(layer)} is called more than once with shared "
                    "weights; set split_shared_weights=True to give each call "
                    "its own copy (they then train independently)"
                )
            self._converted.add(id(layer))
            try:
                return rule(self, layer, in_ports, out_shapes)
            except Unsupported as e:
                reason = str(e)
        if len(out_shapes) != 1:
            raise ConversionError(
                f"{describe(layer)}: {reason}, and layers with several outputs "
                "cannot run as TensorNodes"
            )
        if not self.allow_fallback:
            raise ConversionError(
                f"{describe(layer)}: {reason} (set allow_fallback=True to run it in a TensorNode)"
            )
        warnings.warn(f"{describe(layer)}: {reason}; running it in a TensorNode")
        func = CallOperation(layer, node, [p.shape for p in in_ports])
        tn = TensorNode(
            func,
            shape_in=(sum(size(p.shape) for p in in_ports),),
            shape_out=out_shapes[0],
            pass_time=False,
            label=layer.name,
        )
        start = 0
        for p in in_ports:
            n = size(p.shape)
            view = tn if n == tn.size_in else tn[start : start + n]
            nengo.Connection(p.obj, view, synapse=p.synapse)
            start += n
        return [Port(tn, out_shapes[0], None)]

    # ---- helpers for the layer rules ----

    def connect(self, port, post, transform=1):
        """Connect ``port`` to ``post`` (with the port's synapse)."""
        return nengo.Connection(port.obj, post, transform=transform, synapse=port.synapse)

    def add_bias(self, post, bias):
        """Add the constant vector ``bias`` to ``post`` (a trainable connection)."""
        if self._one is None:
            self._one = nengo.Node([1.0], label="one")
        nengo.Connection(self._one, post, transform=bias[:, None], synapse=None)

    def linear_layer(self, layer, port, transform, shape, bias, activation=LINEAR):
        """``activation(transform @ port + bias)``, with the layer's own activation
        unless ``activation`` is given (None for linear)."""
        act = getattr(layer, "activation", None) if activation is LINEAR else activation
        target, out = self.activation_target(layer, act, shape, bias)
        self.connect(port, target, transform)
        return out

    def sum_layer(self, layer, ports, transforms, shape):
        """Sum of ``transform @ port`` over the inputs."""
        node = nengo.Node(size_in=size(shape), label=layer.name)
        for port, transform in zip(ports, transforms):
            self.connect(port, node, transform)
        return Port(node, shape, None)

    def apply_activation(self, layer, act, port, shape):
        """``act(port)`` for activation layers."""
        target, out = self.activation_target(layer, act, shape, None)
        self.connect(port, target)
        return out

    def activation_target(self, layer, act, shape, bias):
        """Objects computing ``act(x + bias)`` for ``x`` fed into ``target``.

        Returns
        -------
        target : nengo object
            Where the layer's (linear) input connects.
        port : Port
            The layer's output.
        """
        n = size(shape)
        nt = None if act in LINEAR else self.neuron_type(layer, act)
        if nt is None:
            node = nengo.Node(size_in=n, label=layer.name)
            if bias is not None:
                self.add_bias(node, bias)
            if act in LINEAR:
                return node, Port(node, shape, None)
            return node, self._activation_node(layer, act, node, shape)
        scale = self.scale_for(layer)
        if scale != 1:
            nt = self._scaled(layer, nt, scale)
        ens = nengo.Ensemble(
            n,
            1,
            neuron_type=nt,
            gain=nengo.dists.Choice([scale]),
            bias=nengo.dists.Choice([0]) if bias is None else scale * bias,
            label=layer.name,
        )
        return ens.neurons, Port(ens.neurons, shape, self.synapse)

    def _activation_node(self, layer, act, node, shape):
        reason = f"activation {getattr(act, '__name__', act)!r} has no nengo neuron type"
        if not self.allow_fallback:
            raise ConversionError(
                f"{describe(layer)}: {reason} (set allow_fallback=True to run it in a "
                "TensorNode, or map it with swap_activations)"
            )
        warnings.warn(f"{describe(layer)}: {reason}; running it in a TensorNode")
        tn = TensorNode(
            keras.layers.Activation(act),
            shape_in=shape,
            shape_out=shape,
            pass_time=False,
            label=f"{layer.name}.activation",
        )
        nengo.Connection(node, tn, synapse=None)
        return Port(tn, shape, None)

    def neuron_type(self, layer, act):
        """The nengo neuron type for Keras activation ``act`` (None if none)."""
        if isinstance(act, nengo.neurons.NeuronType):
            default = act
        else:
            if act in self.swap_activations:
                return self.swap_activations[act]
            default = DEFAULT_NEURONS.get(act)
        if default is not None and str(default) in self.swap_activations:
            return self.swap_activations[str(default)]
        return default

    def scale_for(self, layer):
        """The ``scale_firing_rates`` factor of ``layer``."""
        scale = self.scale_firing_rates
        if isinstance(scale, Mapping):
            scale = scale.get(layer, scale.get(layer.name, 1))
        scale = 1 if scale is None else scale
        if not np.isscalar(scale) or not scale > 0:
            raise ConversionError(
                f"{describe(layer)}: scale_firing_rates must be a positive number (got {scale!r})"
            )
        return float(scale)

    def _scaled(self, layer, nt, scale):
        """``nt`` with its amplitude divided by ``scale``."""
        if not hasattr(nt, "amplitude"):
            raise ConversionError(
                f"{describe(layer)}: scale_firing_rates needs a neuron type with an "
                f"amplitude ({nt} has none)"
            )
        names = list(inspect.signature(type(nt).__init__).parameters)[1:]
        kwargs = {k: getattr(nt, k) for k in names if hasattr(nt, k)}
        kwargs["amplitude"] = nt.amplitude / scale
        return type(nt)(**kwargs)

    # ---- checking ----

    def verify(self, training=False, inputs=None, atol=1e-5, rtol=1e-4):
        """Check that the converted network gives the Keras model's output.

        Runs one step of `nengodl.Simulator` (with a minibatch of the inputs) and
        compares every output probe with ``model.predict``. Spiking neurons only
        approximate their rates over time, so they need ``training=True``.

        Parameters
        ----------
        training : bool
            Run in training mode, where spiking neurons run as their rate
            counterparts (``SpikingRectifiedLinear`` as ``RectifiedLinear``, ...).
        inputs : array or list of arrays, optional
            Model inputs, ``(batch,) + input_shape`` each (default: two random
            items, uniform in [-1, 1]).
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
            or if the network has synapses, or spiking neurons without ``training``.
        """
        from nengodl.simulator import Simulator

        spiking = any(e.neuron_type.spiking for e in self.net.all_ensembles)
        if self.synapse is not None or (spiking and not training):
            raise ValueError(
                "verify needs rate neurons (or training=True) and synapse=None: the "
                f"converted network has {'synapses' if self.synapse else 'spiking neurons'}"
            )
        keras_inputs = list(self.inputs)
        if inputs is None:
            rng = np.random.RandomState(0)
            inputs = [rng.uniform(-1, 1, size=(2,) + tuple(t.shape[1:])) for t in keras_inputs]
        if not isinstance(inputs, (list, tuple)):
            inputs = [inputs]
        inputs = [np.asarray(x, dtype=np.float32) for x in inputs]
        expected = self.model.predict(inputs if len(inputs) > 1 else inputs[0], verbose=0)
        if not isinstance(expected, (list, tuple)):
            expected = [expected]
        batch = len(inputs[0])
        data = {self.inputs[t]: x.reshape(batch, 1, -1) for t, x in zip(keras_inputs, inputs)}
        previous = get_setting(self.net, "learning_phase")
        with self.net:
            configure_settings(learning_phase=bool(training))
        try:
            with Simulator(self.net, minibatch_size=batch, progress_bar=False) as sim:
                sim.run_steps(1, data=data)
        finally:
            with self.net:
                configure_settings(learning_phase=previous)
        for t, y in zip(self.outputs, expected):
            got = sim.data[self.outputs[t]][:, -1]
            y = np.asarray(y).reshape(batch, -1)
            if not np.allclose(got, y, atol=atol, rtol=rtol):
                raise ValueError(
                    f"Output '{self.outputs[t].label}' differs from the Keras model "
                    f"(max abs difference {np.max(np.abs(got - y)):.3g})"
                )
        return True
