"""nengodl's own neuron types: `SoftLIFRate`, `LeakyReLU`, `SpikingLeakyReLU`.

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

    def step(self, dt, J, output):
        """Leaky rectification."""
        output[...] = self.amplitude * np.where(J > 0, J, self.negative_slope * J)


class SpikingLeakyReLU(LeakyReLU):
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

    state = {"voltage": Uniform(low=0, high=1)}  # noqa: RUF012 (nengo's NeuronType.state)
    spiking = True

    def rates(self, x, gain, bias):
        """Rates of the non-spiking `LeakyReLU`."""
        J = self.current(x, gain, bias)
        out = np.zeros_like(J)
        LeakyReLU.step(self, dt=1.0, J=J, output=out)
        return out

    def step(self, dt, J, output, voltage):
        """Integrate and emit signed spikes."""
        voltage += np.where(J > 0, J, self.negative_slope * J) * dt
        n_spikes = np.trunc(voltage)
        output[...] = (self.amplitude / dt) * n_spikes
        voltage -= n_spikes


@neuron_step(SoftLIFRate)
def soft_lif_rate_step(nt, dt, J):
    return soft_lif_rate(nt, J), {}


def leaky(nt, J):
    return nt.amplitude * tf.where(J > 0, J, nt.negative_slope * J)


@neuron_step(LeakyReLU)
def leaky_relu_step(nt, dt, J):
    return leaky(nt, J), {}


@neuron_step(SpikingLeakyReLU)
def spiking_leaky_relu_step(nt, dt, J, voltage):
    voltage = voltage + tf.where(J > 0, J, nt.negative_slope * J) * dt
    n_spikes = tf.sign(voltage) * tf.floor(tf.abs(voltage))  # trunc
    return (nt.amplitude / dt) * n_spikes, {"voltage": voltage - n_spikes}


TRAINING_STEPS[SpikingLeakyReLU] = rate_swap(leaky)
