"""nengodl's own neuron types: `SoftLIFRate`, `LeakyReLU`, `SpikingLeakyReLU`,
`ClippedReLU`, `SpikingClippedReLU`, and the rate types of smooth Keras
activations: `Swish`, `HardSwish`, `HardSigmoid`.

Each has a numpy ``step`` (so nengo's own simulator runs them too) and a
TensorFlow step registered with nengodl's neuron builder.
"""

import numpy as np
import tensorflow as tf
from nengo.dists import Uniform
from nengo.neurons import LIFRate, RectifiedLinear
from nengo.params import NumberParam

from nengodl.ops.neurons import TRAINING_STEPS, neuron_step, rate_swap, soft_lif_rate


class SoftLIFRate(LIFRate):
    """LIF rate neuron with a smoothed threshold (differentiable everywhere).

    ``j = sigma * log(1 + exp((J - 1) / sigma))`` replaces the rectified current
    ``max(J - 1, 0)`` of `nengo.LIFRate`; as ``sigma -> 0`` it becomes LIFRate.

    Parameters
    ----------
    sigma : float
        Amount of smoothing.
    tau_rc, tau_ref, amplitude : float
        As in `nengo.LIFRate`.
    initial_state : dict, optional
        As in `nengo.LIFRate`.

    Examples
    --------
    Below the threshold current ``J = 1`` LIFRate is silent; SoftLIFRate rises
    smoothly there, and above it the two agree:

    >>> import numpy as np, nengo, nengodl
    >>> J = np.array([0.5, 1.0, 1.5, 3.0])
    >>> soft, hard = np.zeros(4), np.zeros(4)
    >>> nengodl.SoftLIFRate(sigma=0.2).step(0.001, J, soft)
    >>> nengo.LIFRate().step(0.001, J, hard)
    >>> hard.round(1)
    array([ 0. ,  0. , 41.7, 98.9])
    >>> soft.round(1)
    array([11.7, 22.7, 42.4, 98.9])

    Use it in a model like any nengo neuron type, or let training use it for
    LIF neurons with ``nengodl.configure_settings(lif_smoothing=sigma)``.
    """

    sigma = NumberParam("sigma", low=0, low_open=True)

    def __init__(self, sigma=1.0, tau_rc=0.02, tau_ref=0.002, amplitude=1, initial_state=None):
        super().__init__(
            tau_rc=tau_rc, tau_ref=tau_ref, amplitude=amplitude, initial_state=initial_state
        )
        self.sigma = sigma

    def rates(self, x, gain, bias):
        """Smoothed LIF rates for inputs ``x`` (nengo's LIFRate.rates would give
        LIF rates, so decoders would be solved for the wrong response curve).

        Examples
        --------
        >>> import numpy as np, nengodl
        >>> nengodl.SoftLIFRate(sigma=0.2).rates(np.array([0.0]), 1.0, 1.0).round(1)
        array([[22.7]])
        """
        J = self.current(x, gain, bias)
        out = np.zeros_like(J)
        self.step(dt=1, J=J, output=out)
        return out

    def step(self, dt, J, output):
        """Smoothed LIF rates."""
        js = (J - 1) / self.sigma
        j = self.sigma * np.where(js > 30, js, np.log1p(np.exp(np.minimum(js, 30))))
        # far below the threshold j underflows (and 1 / j overflows): there
        # log1p(1 / j) is -log(j) = -log(sigma) - js to the dtype's precision
        cut = -np.log(np.finfo(np.result_type(js, np.float32)).eps)
        with np.errstate(divide="ignore", over="ignore"):
            q = np.where(js > -cut, np.log1p(1 / j), -np.log(self.sigma) - js)
        output[:] = self.amplitude / (self.tau_ref + self.tau_rc * q)


class LeakyReLU(RectifiedLinear):
    """Rectified linear neuron with slope ``negative_slope`` below zero.

    Parameters
    ----------
    negative_slope : float
        Slope for negative inputs.
    amplitude : float
        Output scale.
    initial_state : dict, optional
        As in `nengo.RectifiedLinear`.

    Examples
    --------
    >>> import numpy as np, nengodl
    >>> nengodl.LeakyReLU(negative_slope=0.1).rates(np.array([-2.0, 0.0, 3.0]), gain=1, bias=0)
    array([[-0.2],
           [ 0. ],
           [ 3. ]])
    """

    negative_slope = NumberParam("negative_slope", low=0)
    negative = True

    def __init__(self, negative_slope=0.3, amplitude=1, initial_state=None):
        super().__init__(amplitude=amplitude, initial_state=initial_state)
        self.negative_slope = negative_slope

    def activation(self, J):
        """The activation (before ``amplitude``) of currents ``J`` (numpy)."""
        return np.where(J > 0, J, self.negative_slope * J)

    def step(self, dt, J, output):
        """Leaky rectification."""
        output[...] = self.amplitude * self.activation(J)


class SignedSpiking:
    """Mixin making a rate type with an ``activation(J)`` spike: the voltage
    integrates the rate and each whole unit crossed (up or down) emits a spike
    of ``+-amplitude / dt``; `rates` are the rate type's."""

    state = {"voltage": Uniform(low=0, high=1)}  # noqa: RUF012 (nengo's NeuronType.state)
    spiking = True

    def rates(self, x, gain, bias):
        """Rates of the non-spiking type."""
        return self.amplitude * self.activation(self.current(x, gain, bias))

    def step(self, dt, J, output, voltage):
        """Integrate and emit signed spikes."""
        voltage += self.activation(J) * dt
        n_spikes = np.trunc(voltage)
        output[...] = (self.amplitude / dt) * n_spikes
        voltage -= n_spikes


class SpikingLeakyReLU(SignedSpiking, LeakyReLU):
    """Spiking version of `LeakyReLU`: positive and negative spikes.

    The voltage integrates the leaky-rectified input; each whole unit crossed
    (up or down) emits a spike of ``+-amplitude / dt``. While training, it runs
    as `LeakyReLU`.

    Parameters
    ----------
    negative_slope : float
        Slope for negative inputs.
    amplitude : float
        Scale of the spikes (each spike is ``amplitude / dt``).
    initial_state : dict, optional
        Initial ``voltage`` (default: uniform in [0, 1)).

    Examples
    --------
    Over one second the number of spikes equals the rate of the non-spiking
    `LeakyReLU`: 64 spikes for ``J = 64``, and ``0.25 * 128 = 32`` negative
    spikes for ``J = -128``:

    >>> import numpy as np, nengodl
    >>> neuron = nengodl.SpikingLeakyReLU(negative_slope=0.25)
    >>> dt = 2.0 ** -10
    >>> J = np.array([64.0, -128.0])
    >>> voltage, output, n_spikes = np.zeros(2), np.zeros(2), np.zeros(2)
    >>> for _ in range(1024):
    ...     neuron.step(dt, J, output, voltage)
    ...     n_spikes += output * dt
    >>> n_spikes
    array([ 64., -32.])
    """


class ClippedReLU(RectifiedLinear):
    """Keras's ``ReLU(max_value, negative_slope, threshold)`` as a rate neuron.

    The rate is ``max_value`` from ``J >= max_value``, ``J`` from ``threshold``
    up to ``max_value``, and ``negative_slope * (J - threshold)`` below
    ``threshold``, times ``amplitude``; ``ClippedReLU(max_value=6)`` is ReLU6
    (MobileNet's activation). ``max_value`` and ``threshold`` are currents, so
    a converter's ``scale_firing_rates`` multiplies them with the input.

    Parameters
    ----------
    max_value : float or None
        Highest rate (before ``amplitude``); None: no ceiling.
    threshold : float
        Current below which the negative slope applies.
    negative_slope : float
        Slope below ``threshold``.
    amplitude : float
        Output scale.
    initial_state : dict, optional
        As in `nengo.RectifiedLinear`.

    Examples
    --------
    >>> import numpy as np, nengodl
    >>> nengodl.ClippedReLU(max_value=6).rates(np.array([-1.0, 2.0, 9.0]), gain=1, bias=0)
    array([[0.],
           [2.],
           [6.]])
    """

    max_value = NumberParam("max_value", low=0, low_open=True, optional=True)
    threshold = NumberParam("threshold")
    negative_slope = NumberParam("negative_slope", low=0)
    #: parameters in units of the input current (see `nengodl.Converter`'s
    #: ``scale_firing_rates``)
    input_scaled = ("max_value", "threshold")

    def __init__(
        self, max_value=None, threshold=0.0, negative_slope=0.0, amplitude=1, initial_state=None
    ):
        super().__init__(amplitude=amplitude, initial_state=initial_state)
        # floats, so that equal types print alike (swap_activations matches by print)
        self.max_value = None if max_value is None else float(max_value)
        self.threshold = float(threshold)
        self.negative_slope = float(negative_slope)

    @property
    def negative(self):
        """Whether rates can be negative (with a negative slope)."""
        return self.negative_slope > 0

    def activation(self, J):
        """The activation (before ``amplitude``) of currents ``J`` (numpy)."""
        high = np.inf if self.max_value is None else self.max_value
        low = self.negative_slope * (J - self.threshold) if self.negative_slope else 0.0
        return np.where(self.threshold <= J, np.minimum(J, high), low)

    def step(self, dt, J, output):
        """Clipped rectification."""
        output[...] = self.amplitude * self.activation(J)


class SpikingClippedReLU(SignedSpiking, ClippedReLU):
    """Spiking version of `ClippedReLU`: its voltage integrates the clipped rate
    and each whole unit crossed (up or down) emits a spike of ``+-amplitude /
    dt``, so that its spike count over time equals the rate's integral. While
    training, it runs as `ClippedReLU`.

    Parameters
    ----------
    max_value, threshold, negative_slope, amplitude : float
        As in `ClippedReLU`.
    initial_state : dict, optional
        Initial ``voltage`` (default: uniform in [0, 1)).

    Examples
    --------
    A ReLU6 neuron driven at ``J = 10`` fires at its ceiling, 6 spikes a
    second (``amplitude = 1``):

    >>> import numpy as np, nengodl
    >>> neuron = nengodl.SpikingClippedReLU(max_value=6)
    >>> dt = 2.0 ** -10
    >>> voltage, output, count = np.zeros(2), np.zeros(2), np.zeros(2)
    >>> for _ in range(1024):
    ...     neuron.step(dt, np.array([10.0, 3.0]), output, voltage)
    ...     count += output * dt
    >>> count
    array([6., 3.])
    """


class KerasRate(RectifiedLinear):
    """A rate neuron type whose rate is a Keras activation of its input current,
    times ``amplitude`` (a base class: see `Swish`, `HardSwish`, `HardSigmoid`).

    Their spiking counterpart is ``nengo.RegularSpiking(rate_type)``: it
    integrates the rate and emits a spike per whole unit (a negative rate, as
    swish's below zero, gives negative spikes), and trains as the rate type.
    A converter's ``scale_firing_rates`` keeps their output only where the
    activation is homogeneous (``f(s x) = s f(x)``), which these are not: the
    converter warns.

    Parameters
    ----------
    amplitude : float
        Output scale.
    initial_state : dict, optional
        As in `nengo.RectifiedLinear`.
    """

    negative = True
    homogeneous = False

    def activation(self, J):
        """The activation of currents ``J`` (numpy)."""
        raise NotImplementedError

    def step(self, dt, J, output):
        """The activation, times ``amplitude``."""
        output[...] = self.amplitude * self.activation(J)


class Swish(KerasRate):
    """``J * sigmoid(J)``: Keras's ``silu`` (``swish``), EfficientNet's activation.

    Examples
    --------
    >>> import numpy as np, nengodl
    >>> nengodl.Swish().rates(np.array([-1.0, 0.0, 2.0]), gain=1, bias=0).round(4)
    array([[-0.2689],
           [ 0.    ],
           [ 1.7616]])
    """

    def activation(self, J):
        return J / (1 + np.exp(-J))


class HardSwish(KerasRate):
    """``J * relu6(J + 3) / 6``: Keras's ``hard_silu`` (``hard_swish``),
    MobileNetV3's activation.

    Examples
    --------
    >>> import numpy as np, nengodl
    >>> nengodl.HardSwish().rates(np.array([-4.0, -1.0, 4.0]), gain=1, bias=0).round(4)
    array([[-0.    ],
           [-0.3333],
           [ 4.    ]])
    """

    def activation(self, J):
        return J * np.clip(J + 3, 0, 6) / 6


class HardSigmoid(KerasRate):
    """``relu6(J + 3) / 6``: Keras's ``hard_sigmoid``.

    Examples
    --------
    >>> import numpy as np, nengodl
    >>> nengodl.HardSigmoid().rates(np.array([-4.0, 0.0, 1.5]), gain=1, bias=0)
    array([[0.  ],
           [0.5 ],
           [0.75]])
    """

    negative = False

    def activation(self, J):
        return np.clip(J + 3, 0, 6) / 6


@neuron_step(SoftLIFRate)
def soft_lif_rate_step(nt, dt, J):
    return soft_lif_rate(nt, J), {}


def leaky(nt, J):
    return nt.amplitude * tf.where(J > 0, J, nt.negative_slope * J)


@neuron_step(LeakyReLU)
def leaky_relu_step(nt, dt, J):
    return leaky(nt, J), {}


def signed_spikes(nt, dt, rate, voltage):
    """`SignedSpiking`'s step in TensorFlow, for a rate (before ``amplitude``)."""
    voltage = voltage + rate * dt
    n_spikes = tf.sign(voltage) * tf.floor(tf.abs(voltage))  # trunc
    return (nt.amplitude / dt) * n_spikes, {"voltage": voltage - n_spikes}


@neuron_step(SpikingLeakyReLU)
def spiking_leaky_relu_step(nt, dt, J, voltage):
    return signed_spikes(nt, dt, tf.where(J > 0, J, nt.negative_slope * J), voltage)


TRAINING_STEPS[SpikingLeakyReLU] = rate_swap(leaky)


def clipped(nt, J):
    """`ClippedReLU`'s activation of ``J`` (TensorFlow), before ``amplitude``."""
    out = J if nt.max_value is None else tf.minimum(J, tf.cast(nt.max_value, J.dtype))
    if nt.negative_slope == 0:
        return tf.where(nt.threshold <= J, out, tf.zeros_like(J))
    return tf.where(nt.threshold <= J, out, nt.negative_slope * (J - nt.threshold))


@neuron_step(ClippedReLU)
def clipped_relu_step(nt, dt, J):
    return nt.amplitude * clipped(nt, J), {}


@neuron_step(SpikingClippedReLU)
def spiking_clipped_relu_step(nt, dt, J, voltage):
    return signed_spikes(nt, dt, clipped(nt, J), voltage)


TRAINING_STEPS[SpikingClippedReLU] = rate_swap(lambda nt, J: nt.amplitude * clipped(nt, J))


KERAS_RATES = {
    Swish: lambda J: J * tf.sigmoid(J),
    HardSwish: lambda J: J * tf.clip_by_value(J + 3, 0, 6) / 6,
    HardSigmoid: lambda J: tf.clip_by_value(J + 3, 0, 6) / 6,
}
for _type, _fn in KERAS_RATES.items():
    neuron_step(_type)(lambda nt, dt, J, fn=_fn: (nt.amplitude * fn(J), {}))
