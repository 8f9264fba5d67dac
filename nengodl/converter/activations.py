"""Keras activations and the nengo neuron types they become.

An activation reaches the converter as a name (``"relu"``), a Keras function
(``keras.activations.relu``), a TensorFlow function (``tf.nn.relu``), a
``keras.ops`` function or a nengo neuron type. `canonical` reduces the first
four to one Keras function per activation, so that all of them convert alike;
`Swaps` applies the user's ``swap_activations`` around the default map
`DEFAULT_NEURONS`, and `scaled` divides a neuron type's amplitude for
``scale_firing_rates``.
"""

import contextlib
import inspect
import warnings
from collections.abc import Mapping

import keras
import nengo
import tensorflow as tf

from nengodl.converter.errors import ConversionError, describe
from nengodl.neurons import ClippedReLU, HardSigmoid, HardSwish, LeakyReLU, Swish
from nengodl.ops.functions import Softmax

NeuronType = nengo.neurons.NeuronType

ALIASES = {
    tf.nn.relu: keras.activations.relu,
    keras.ops.relu: keras.activations.relu,
    tf.nn.sigmoid: keras.activations.sigmoid,
    keras.ops.sigmoid: keras.activations.sigmoid,
    tf.nn.tanh: keras.activations.tanh,
    keras.ops.tanh: keras.activations.tanh,
    tf.nn.leaky_relu: keras.activations.leaky_relu,
    keras.ops.leaky_relu: keras.activations.leaky_relu,
    tf.nn.relu6: keras.activations.relu6,
    tf.nn.softmax: keras.activations.softmax,
    tf.nn.silu: keras.activations.silu,
    keras.ops.silu: keras.activations.silu,
    keras.ops.hard_silu: keras.activations.hard_silu,
    keras.ops.hard_sigmoid: keras.activations.hard_sigmoid,
    keras.ops.softmax: keras.activations.softmax,
    keras.ops.relu6: keras.activations.relu6,
}

DEFAULT_NEURONS = {
    keras.activations.relu: nengo.RectifiedLinear(),
    keras.activations.sigmoid: nengo.Sigmoid(tau_ref=1),
    keras.activations.tanh: nengo.Tanh(tau_ref=1),
    keras.activations.leaky_relu: LeakyReLU(negative_slope=0.2),
    keras.activations.relu6: ClippedReLU(max_value=6),
    keras.activations.silu: Swish(),
    keras.activations.hard_silu: HardSwish(),
    keras.activations.hard_sigmoid: HardSigmoid(),
}
"""The neuron type of each Keras activation with a rate equal to the activation."""

NODE_FUNCTIONS = {
    keras.activations.softmax: Softmax,
}
"""Activations that are not a neuron's rate (they mix a layer's elements), as the
`nengodl.ops.functions.NodeFunction` of a non-spiking Node that runs natively on
both simulators."""


def canonical(act):
    """One representative of activation ``act``: None (linear), a neuron type or a function.

    Parameters
    ----------
    act : str, callable, nengo.neurons.NeuronType or None
        A Keras activation name or function, a TensorFlow or ``keras.ops``
        function, or a neuron type (returned as it is).

    Returns
    -------
    act : callable, nengo.neurons.NeuronType or None
        None for the linear activation; the Keras function for the names and the
        TensorFlow and ``keras.ops`` forms of ``relu``, ``sigmoid``, ``tanh`` and
        ``leaky_relu``; ``act`` itself otherwise.

    Raises
    ------
    ValueError
        If ``act`` is a name Keras does not know, or neither callable nor a name.

    Examples
    --------
    >>> import keras, tensorflow as tf
    >>> canonical(tf.nn.relu) is canonical("relu") is keras.activations.relu
    True
    >>> canonical(keras.activations.linear) is None
    True
    """
    if act is None or isinstance(act, NeuronType):
        return act
    if isinstance(act, str):
        act = keras.activations.get(act)
    if not callable(act):
        raise ValueError(f"{act!r} is not an activation")
    with contextlib.suppress(TypeError):  # unhashable callables have no alias
        act = ALIASES.get(act, act)
    return None if act is keras.activations.linear else act


def name_of(act):
    """A short name of an activation for messages."""
    if act is None:
        return "linear"
    return str(act) if isinstance(act, NeuronType) else getattr(act, "__name__", repr(act))


class Swaps(Mapping):
    """The ``swap_activations`` of a converter, keyed by canonical activation.

    Keys are Keras activations (any form `canonical` accepts) or neuron types;
    values are neuron types or Keras activations. A Keras key replaces the
    activation before the default map `DEFAULT_NEURONS` applies, a neuron-type
    key replaces the neuron type that results (so ``{tf.nn.relu:
    nengo.RectifiedLinear(), nengo.RectifiedLinear(): nengo.LIF()}`` gives LIF
    neurons). It reads as the mapping given; `unused_keys` are the keys that no
    layer needed. Also `Converter.TrackedDict` (NengoDL 3.6's name).

    Parameters
    ----------
    swap_activations : dict or None
        The mapping given to the converter.

    Raises
    ------
    ConversionError
        If a key or value is neither a Keras activation nor a neuron type, or two
        keys name the same activation.
    """

    def __init__(self, swap_activations):
        if swap_activations is None:
            swap_activations = {}
        if not hasattr(swap_activations, "items"):
            raise ConversionError(
                "swap_activations must be a dict from activations to activations or "
                f"neuron types (got {type(swap_activations).__name__})"
            )
        self.given = dict(swap_activations)
        self._acts = {}  # canonical Keras activation -> (key, value)
        self._neurons = {}  # str(neuron type) -> (key, value)
        self._used = set()
        for key, value in self.given.items():
            value = self._value(key, value)
            if isinstance(key, NeuronType):
                table, index = self._neurons, str(key)
            else:
                try:
                    index = canonical(key)
                except ValueError:
                    raise ConversionError(
                        f"swap_activations key {key!r} is not a Keras activation or "
                        "nengo neuron type"
                    ) from None
                table = self._acts
            if index in table:
                raise ConversionError(
                    f"swap_activations keys {table[index][0]!r} and {key!r} name the "
                    "same activation"
                )
            table[index] = (key, value)

    @staticmethod
    def _value(key, value):
        if isinstance(value, NeuronType):
            return value
        try:
            return canonical(value)
        except ValueError:
            raise ConversionError(
                f"swap_activations[{key!r}] must be a nengo neuron type or a Keras "
                f"activation (got {type(value).__name__} {value!r})"
            ) from None

    def _swap(self, table, index, default):
        try:
            key, value = table[index]
        except (KeyError, TypeError):
            return default
        self._used.add(id(key))
        return value

    def resolve(self, act):
        """What a layer with activation ``act`` computes, after the swaps.

        Returns
        -------
        act : nengo.neurons.NeuronType, callable or None
            The neuron type to use, None for linear, or the Keras activation that
            has no neuron type (it then runs in a `TensorNode`).
        """
        act = canonical(act)
        if not isinstance(act, NeuronType):
            act = self._swap(self._acts, act, act)
        neuron = act if isinstance(act, NeuronType) else DEFAULT_NEURONS.get(act)
        if neuron is None:
            return act
        return self._swap(self._neurons, str(neuron), neuron)

    def __getitem__(self, key):
        return self.given[key]

    def __iter__(self):
        return iter(self.given)

    def __len__(self):
        return len(self.given)

    def unused_keys(self):
        """The keys of ``swap_activations`` that no layer used (a set)."""
        return {key for key in self.given if id(key) not in self._used}

    def warn_unused(self):
        """Warn about `unused_keys` (they are most likely a mistake)."""
        unused = [key for key in self.given if id(key) not in self._used]
        if unused:
            names = ", ".join(name_of(k) if callable(k) else repr(k) for k in unused)
            warnings.warn(
                f"swap_activations contained {names}, but there were no layers in the "
                "model with that activation type"
            )


def scaled(layer, neuron_type, scale):
    """``neuron_type`` with its amplitude divided by ``scale`` (for ``scale_firing_rates``),
    and its parameters in units of the input current (``input_scaled``, such as
    `nengodl.ClippedReLU`'s ``max_value``) multiplied by it.

    Neuron types without an ``amplitude`` are returned unchanged, with a warning:
    their input is still multiplied by ``scale``, so their output changes.

    Examples
    --------
    >>> import keras, nengo
    >>> scaled(keras.layers.Dense(1), nengo.RectifiedLinear(amplitude=2), 4).amplitude
    0.5
    """
    if not hasattr(neuron_type, "amplitude"):
        warnings.warn(
            f"{describe(layer)}: firing rate scaling applied to a neuron type that does "
            f"not support amplitude ({type(neuron_type).__name__}); this will change the "
            "output"
        )
        return neuron_type
    # a spiking wrapper (nengo.RegularSpiking(...)) fires at its base type's rate
    base = getattr(neuron_type, "base_type", neuron_type)
    if not getattr(neuron_type, "homogeneous", True) or not getattr(base, "homogeneous", True):
        warnings.warn(
            f"{describe(layer)}: firing rate scaling applied to {type(neuron_type).__name__}, "
            "whose rate is not proportional to its input (f(s x) != s f(x)); this will "
            "change the output"
        )
    names = list(inspect.signature(type(neuron_type).__init__).parameters)[1:]
    kwargs = {k: getattr(neuron_type, k) for k in names if hasattr(neuron_type, k)}
    kwargs["amplitude"] = neuron_type.amplitude / scale
    # parameters in units of the input current (a ReLU6's ceiling) scale with it
    for name in getattr(neuron_type, "input_scaled", ()):
        if kwargs.get(name) is not None:
            kwargs[name] = kwargs[name] * scale
    return type(neuron_type)(**kwargs)
