"""`NetworkBuilding`: the `Converter` methods that layer rules call to add nengo
objects (connections, biases, activations) to the converted network."""

import contextlib
import warnings
from collections.abc import Mapping

import keras
import nengo
import numpy as np

from nengodl.converter import sparse as sp
from nengodl.converter.activations import (
    NODE_FUNCTIONS,
    NeuronType,
    canonical,
    name_of,
    scaled,
)
from nengodl.converter.errors import ConversionError, Unsupported, describe
from nengodl.converter.registry import Port, size
from nengodl.tensor_node import TensorNode

LAYER = object()  # "the layer's own activation" (default of `linear_layer`)


class NetworkBuilding:
    """What layer rules build with: a base class of `Converter`.

    It works on the converter's ``net``, ``swap_activations``, ``synapse``,
    ``scale_firing_rates`` and ``allow_fallback`` (see `Converter`), and keeps
    the state it needs itself: the time axes of the layers being converted and
    the constant Node that biases read.
    """

    def __init__(self, temporal_model):
        self._time_axes = int(temporal_model)  # 0 inside TimeDistributed
        self._one = None  # the Node of constant 1 that biases read (made when needed)

    @property
    def lead_axes(self):
        """Axes of a Keras tensor before the shape of a port: the batch axis and,
        in temporal models (outside ``TimeDistributed``), the time axis."""
        return 1 + self._time_axes

    def port_axis(self, axis, ndim):
        """Keras ``axis`` (counting the batch and time axes) as an axis of a port's shape.

        Raises `Unsupported` for the batch axis and the time axis of temporal models.
        """
        lead = self.lead_axes
        full = axis + ndim + lead if axis < 0 else axis
        if not lead <= full < ndim + lead:
            what = "batch or time" if self._time_axes else "batch"
            raise Unsupported(f"axis={axis} is the {what} axis")
        return full - lead

    @contextlib.contextmanager
    def one_step(self):
        """Convert layers that see one time step (inside ``TimeDistributed``)."""
        saved, self._time_axes = self._time_axes, 0
        try:
            yield
        finally:
            self._time_axes = saved

    def connect(self, port, post, transform=1, trainable=False):
        """Connect ``port`` to ``post`` (with the port's synapse)."""
        conn = nengo.Connection(port.obj, post, transform=transform, synapse=port.synapse)
        if not trainable:
            self.net.config[conn].trainable = False
        return conn

    def add_bias(self, post, values, index=None, trainable=True, label="bias"):
        """Add the constant ``values[index]`` to ``post`` (``values`` are the parameters).

        Parameters
        ----------
        post : nengo object
            Where the bias goes.
        values : ndarray
            The bias parameters (what trains).
        index : ndarray, optional
            Which parameter each element of ``post`` gets (a parameter shared by
            several elements, such as a convolution's per-channel bias, then
            goes through a Node of its own); default: one per element.
        trainable : bool
            Whether the parameters train.
        label : str
            Label of the created objects.
        """
        if self._one is None:
            self._one = nengo.Node([1.0], label="one")
        target = post
        if index is not None and not np.array_equal(index, np.arange(len(values))):
            target = nengo.Node(size_in=len(values), label=label)
            matrix = sp.sparse((post.size_in, len(values)), np.arange(len(index)), index, 1.0)
            self.connect(Port(target, (len(values),), None), post, matrix)
        conn = nengo.Connection(self._one, target, transform=values[:, None], synapse=None)
        if not trainable:
            self.net.config[conn].trainable = False

    def linear_layer(
        self,
        layer,
        port,
        transform,
        shape,
        bias=None,
        bias_index=None,
        activation=LAYER,
        trainable=False,
    ):
        """``activation(transform @ port + bias[bias_index])``.

        ``activation`` defaults to the layer's own activation (with the
        converter's swaps applied); None means linear. ``trainable`` says
        whether the transform and bias are parameters that train (never for
        layers with ``trainable=False``).
        """
        act = getattr(layer, "activation", None) if activation is LAYER else activation
        trainable = trainable and layer.trainable
        target, out = self.activation_target(
            layer, act, shape, bias, bias_index, swap=activation is LAYER, trainable=trainable
        )
        self.connect(port, target, transform, trainable=trainable)
        return out

    def sum_layer(self, layer, ports, transforms, shape):
        """Sum of ``transform @ port`` over the inputs (fixed transforms)."""
        node = nengo.Node(size_in=size(shape), label=layer.name)
        for port, transform in zip(ports, transforms):
            self.connect(port, node, transform)
        return Port(node, shape, None)

    def apply_activation(self, layer, act, port, shape):
        """``act(port)`` for activation layers (with the converter's swaps)."""
        target, out = self.activation_target(layer, act, shape)
        self.connect(port, target)
        return out

    def activation_target(
        self, layer, act, shape, bias=None, bias_index=None, swap=True, trainable=False
    ):
        """Objects computing ``act(x + bias[bias_index])`` for ``x`` fed into ``target``.

        Returns
        -------
        target : nengo object
            Where the layer's (linear) input connects.
        port : Port
            The layer's output.
        """
        n = size(shape)
        final = self.swap_activations.resolve(act) if swap else canonical(act)
        if not isinstance(final, NeuronType):
            node = nengo.Node(size_in=n, label=layer.name)
            if bias is not None:
                self.add_bias(node, bias, bias_index, trainable, f"{layer.name}.bias")
            if final is None:
                return node, Port(node, shape, None)
            return node, self._activation_node(layer, final, node, shape)
        scale = self.scale_for(layer)
        neuron_type = final if scale == 1 else scaled(layer, final, scale)
        # the bias comes through a connection, multiplied by the gain (the scale)
        # as the layer's other inputs are: the network's parameters then mean the
        # same, and sit in the same places, at every scale and synapse, so that
        # parameters saved from one variant load into another
        ens = nengo.Ensemble(
            n,
            1,
            neuron_type=neuron_type,
            gain=nengo.dists.Choice([scale]),
            bias=nengo.dists.Choice([0]),
            # its decoded side is unused: nengo's defaults would sample an
            # encoder per neuron and two evaluation points per neuron (seconds
            # for a layer of 10^5 units), where 1-D decoding needs few
            encoders=nengo.dists.Choice([[1]]),
            n_eval_points=750,
            label=layer.name,
        )
        self.net.config[ens].trainable = False  # encoders: unused
        self.net.config[ens.neurons].trainable = False  # biases: zero, see above
        if bias is not None:
            self.add_bias(ens.neurons, bias, bias_index, trainable, f"{layer.name}.bias")
        return ens.neurons, Port(ens.neurons, shape, self.synapse)

    def _activation_node(self, layer, act, node, shape):
        function = NODE_FUNCTIONS.get(act)
        if function is not None:  # a non-spiking Node that runs natively in both simulators
            out = nengo.Node(
                function(shape), size_in=size(shape), label=f"{layer.name}.activation"
            )
            self.connect(Port(node, shape, None), out)
            return Port(out, shape, None)
        reason = f"activation {name_of(act)!r} has no nengo neuron type"
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
        self.connect(Port(node, shape, None), tn)
        return Port(tn, shape, None)

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
