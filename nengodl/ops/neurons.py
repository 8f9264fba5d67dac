"""Builders for `nengo.builder.neurons.SimNeurons` with native neuron types.

Each neuron type has a step function ``f(neuron_type, dt, J, **state)``
returning ``(output, new_state)``, the TensorFlow counterpart of
``NeuronType.step``. Types without one run on the host.
"""

import functools
import math

import nengo
import numpy as np
import tensorflow as tf
from nengo.builder.neurons import SimNeurons

from nengodl.ops.registry import OpBuilder, register

NEURON_STEPS = {}


def neuron_step(neuron_type):
    """Decorator registering a TensorFlow step function for ``neuron_type``."""

    def wrapper(func):
        NEURON_STEPS[neuron_type] = func
        return func

    return wrapper


@neuron_step(nengo.RectifiedLinear)
def relu_step(nt, dt, J):
    return nt.amplitude * tf.maximum(J, 0), {}


@neuron_step(nengo.SpikingRectifiedLinear)
def spiking_relu_step(nt, dt, J, voltage):
    voltage = voltage + tf.maximum(J, 0) * dt
    n_spikes = tf.floor(voltage)
    return (nt.amplitude / dt) * n_spikes, {"voltage": voltage - n_spikes}


@neuron_step(nengo.Sigmoid)
def sigmoid_step(nt, dt, J):
    return (1.0 / nt.tau_ref) * tf.sigmoid(J), {}


@neuron_step(nengo.Tanh)
def tanh_step(nt, dt, J):
    return (1.0 / nt.tau_ref) * tf.tanh(J), {}


def widened(rate_fn):
    """``rate_fn(nt, J)`` computed in float32 where ``J`` is float16, whose range
    (up to 65504) ``1 / (J - 1)`` and its gradient leave just above the threshold."""

    @functools.wraps(rate_fn)
    def wrapper(nt, J, *args, **kwargs):
        if J.dtype != tf.float16:
            return rate_fn(nt, J, *args, **kwargs)
        return tf.cast(rate_fn(nt, tf.cast(J, tf.float32), *args, **kwargs), tf.float16)

    return wrapper


@widened
def lif_rate(nt, J):
    """LIF rate response, zero where ``J <= 1``."""
    j = J - 1
    positive = j > 0
    safe_j = tf.where(positive, j, tf.ones_like(j))
    rate = nt.amplitude / (nt.tau_ref + nt.tau_rc * tf.math.log1p(1.0 / safe_j))
    return tf.where(positive, rate, tf.zeros_like(rate))


@widened
def soft_lif_rate(nt, J, sigma=None):
    """SoftLIF rates: LIF rates with the threshold smoothed by ``sigma``
    (``nt.sigma`` when None).

    The rate is ``amplitude / (tau_ref + tau_rc * log1p(1 / z))`` with
    ``z = sigma * softplus((J - 1) / sigma)``. Far below the threshold ``z``
    underflows (and ``1 / z**2``, in the gradient, overflows well before), so
    there ``log1p(1 / z)`` is taken as ``-log(z) = -log(sigma) - (J - 1) / sigma``
    (exact to the dtype's precision once ``softplus(x) = exp(x)`` is).
    """
    sigma = nt.sigma if sigma is None else sigma
    x = (J - 1) / sigma
    cut = float(-np.log(np.finfo(x.dtype.as_numpy_dtype).eps))
    near = x > -cut
    z = sigma * tf.nn.softplus(tf.maximum(x, -cut))  # never 0: kept off the far side
    q = tf.where(near, tf.math.log1p(1.0 / z), -math.log(sigma) - x)
    return nt.amplitude / (nt.tau_ref + nt.tau_rc * q)


@neuron_step(nengo.LIFRate)
def lif_rate_step(nt, dt, J):
    return lif_rate(nt, J), {}


def series_terms(dtype, remainder, most=16):
    """Fewest terms ``n`` of a series whose relative truncation error
    ``remainder(n)`` is below the machine epsilon of ``dtype`` (None if more
    than ``most`` would be needed)."""
    eps = np.finfo(tf.as_dtype(dtype).as_numpy_dtype).eps
    return next((n for n in range(1, most + 1) if remainder(n) < eps), None)


def expm1_series(x, n):
    """``x + x**2/2! + ... + x**n/n!`` (Horner's scheme)."""
    acc = 1.0 / math.factorial(n)
    for k in range(n - 1, 0, -1):
        acc = acc * x + 1.0 / math.factorial(k)
    return acc * x


def log1p_series(r, n):
    """``r - r**2/2 + ... + (-1)**(n + 1) * r**n/n`` (Horner's scheme)."""
    acc = (-1) ** (n + 1) / n
    for k in range(n - 1, 0, -1):
        acc = acc * r + (-1) ** (k + 1) / k
    return acc * r


def lif_series_terms(dt, tau_rc, dtype, bounded=True):
    """Terms of the series `lif_step` uses, exact to ``dtype``: for the decay
    ``expm1(x)``, ``|x| <= dt / tau_rc``, and (if ``bounded``) for the spike
    time's ``log1p(r)``, ``|r| <= 1 - exp(-dt / tau_rc)``; None where a series
    would need too many terms.

    Examples
    --------
    >>> lif_series_terms(0.001, 0.02, "float32"), lif_series_terms(0.001, 0.02, "float64")
    ((4, 5), (8, 12))
    """
    bound = dt / tau_rc
    n_exp = series_terms(dtype, lambda n: bound**n / math.factorial(n + 1))
    reach = -np.expm1(-bound)  # largest |r|
    n_log = (
        series_terms(dtype, lambda n: reach**n / ((n + 1) * (1 - reach)))
        if bounded and reach < 0.5
        else None
    )
    return n_exp, n_log


@neuron_step(nengo.LIF)
def lif_step(nt, dt, J, voltage, refractory_time, series=False, bounded=False, keep=None):
    """LIF step; with ``series``, series replace ``exp`` (and with ``bounded``,
    every voltage at most 1 at the start of the step, ``log``), and ``keep``
    (see `StepContext.keep`) stores the decayed voltage for its three users.

    XLA computes ``exp`` and ``log`` for every neuron (``tf.where`` evaluates
    both branches); series of a few terms are exact to the float type on the
    ranges that occur here and much cheaper:

    - the decay ``expm1(-delta_t / tau_rc)`` for a step in which a refractory
      period ends, with ``0 < delta_t < dt`` (otherwise ``delta_t`` is ``dt``
      or 0, and the exact constant is used);
    - ``log1p(r)`` for the spike time, where ``r = -(v - 1) / (J - 1)``: a
      neuron starting the step at a voltage of at most 1 has
      ``-r <= 1 - exp(-dt / tau_rc)``, and every step leaves voltages at most 1.

    Without XLA, TensorFlow runs each operation of a series as its own
    kernel, so there ``exp`` and ``log`` are faster.
    """
    n_exp, n_log = lif_series_terms(dt, nt.tau_rc, J.dtype, bounded) if series else (None, None)
    refractory_time = refractory_time - dt
    delta_t = tf.clip_by_value(dt - refractory_time, 0, dt)
    full = tf.cast(np.expm1(-dt / nt.tau_rc), J.dtype)
    # XLA's exp is twice as fast as its expm1 (exp(x) - 1 loses digits only
    # in the step in which a refractory period ends)
    partial = (
        tf.exp(-delta_t / nt.tau_rc) - 1
        if n_exp is None
        else expm1_series(-delta_t / nt.tau_rc, n_exp)
    )
    decay = tf.where(delta_t >= dt, full, partial)
    voltage = voltage - (J - voltage) * decay
    if keep is not None:
        voltage = keep(voltage)
    spiked = voltage > 1
    output = tf.cast(spiked, J.dtype) * (nt.amplitude / dt)
    denom = tf.where(spiked, J - 1, tf.ones_like(J))
    ratio = tf.where(spiked, -(voltage - 1) / denom, tf.zeros_like(J))
    # ratio is in (-1, 0]; log(1 + r) is as accurate as log1p here (t_spike is
    # only used where a neuron spiked) and twice as fast under XLA
    log_term = tf.math.log(1 + ratio) if n_log is None else log1p_series(ratio, n_log)
    t_spike = dt + nt.tau_rc * log_term
    voltage = tf.maximum(voltage, tf.cast(nt.min_voltage, voltage.dtype))
    voltage = tf.where(spiked, tf.zeros_like(voltage), voltage)
    refractory_time = tf.where(spiked, nt.tau_ref + t_spike, refractory_time)
    return output, {"voltage": voltage, "refractory_time": refractory_time}


@neuron_step(nengo.RegularSpiking)
def regular_spiking_step(nt, dt, J, voltage):
    voltage = voltage + dt * J
    n_spikes = tf.floor(voltage)
    return (nt.amplitude / dt) * n_spikes, {"voltage": voltage - n_spikes}


@neuron_step(nengo.AdaptiveLIFRate)
def adaptive_lif_rate_step(nt, dt, J, adaptation):
    output = lif_rate(nt, J - adaptation)
    adaptation = adaptation + (dt / nt.tau_n) * (nt.inc_n * output - adaptation)
    return output, {"adaptation": adaptation}


@neuron_step(nengo.AdaptiveLIF)
def adaptive_lif_step(nt, dt, J, voltage, refractory_time, adaptation, **lif_options):
    output, state = lif_step(nt, dt, J - adaptation, voltage, refractory_time, **lif_options)
    state["adaptation"] = adaptation + (dt / nt.tau_n) * (nt.inc_n * output - adaptation)
    return output, state


@neuron_step(nengo.Izhikevich)
def izhikevich_step(nt, dt, J, voltage, recovery):
    J = tf.maximum(tf.cast(-30.0, J.dtype), J)
    dV = (0.04 * voltage**2 + 5 * voltage + 140 - recovery + J) * 1000
    voltage = voltage + dV * dt
    spiked = voltage >= 30
    output = tf.cast(spiked, J.dtype) / dt
    voltage = tf.where(spiked, tf.cast(nt.reset_voltage, J.dtype), voltage)
    dU = (nt.tau_recovery * (nt.coupling * voltage - recovery)) * 1000
    recovery = recovery + dU * dt
    recovery = tf.where(spiked, recovery + nt.reset_recovery, recovery)
    return output, {"voltage": voltage, "recovery": recovery}


# steps used while training: the rate counterparts of spiking types,
# f(neuron_type, dt, J, **state) -> (output, changed state)
TRAINING_STEPS = {
    nengo.LIF: lambda nt, dt, J, **state: (lif_rate(nt, J), {}),
    nengo.SpikingRectifiedLinear: lambda nt, dt, J, **state: (
        nt.amplitude * tf.maximum(J, 0),
        {},
    ),
    # the spiking half of RegularSpiking(base) receives the base type's rates
    nengo.RegularSpiking: lambda nt, dt, J, **state: (nt.amplitude * J, {}),
    nengo.AdaptiveLIF: lambda nt, dt, J, adaptation, **state: adaptive_lif_rate_step(
        nt, dt, J, adaptation
    ),
}


def rate_swap(rate_fn):
    """A training step from a stateless rate function ``f(nt, J)``."""
    return lambda nt, dt, J, **state: (rate_fn(nt, J), {})


@register(SimNeurons)
class SimNeuronsBuilder(OpBuilder):
    """Runs a neuron type's step function on the input current."""

    @classmethod
    def supports(cls, op):
        return type(op.neurons) in NEURON_STEPS and not op.state_extra

    @classmethod
    def merge_key(cls, op, dt):
        """Neurons of one type with equal parameters can run as one operation."""
        nt = op.neurons
        return (cls, type(nt), repr(nt), tuple(op.state), np.dtype(op.J.dtype).kind)

    def __init__(self, op, dt):
        super().__init__(op, dt)
        op = self.op
        self.step = NEURON_STEPS[type(op.neurons)]
        # LIF types: whether voltages start at most 1 (then every step keeps
        # them so; see `lif_step`)
        self.lif = type(op.neurons) in (nengo.LIF, nengo.AdaptiveLIF)
        self.bounded = (
            self.lif
            and op.neurons.min_voltage <= 1
            and all(np.all(np.asarray(o.state["voltage"].initial_value) <= 1) for o in self.ops)
        )

    def __call__(self, ctx):
        if len(self.ops) > 1:
            self.run(ctx, ctx.read_many([o.J for o in self.ops], batched=True)[0], merged=True)
        else:
            self.run(ctx, ctx.read(self.op.J, batched=True))

    def run(self, ctx, J, merged=False):
        """Step the neurons on the input current ``J`` (of the group, joined
        and flattened, where ``merged``)."""
        op = self.op

        def read(name):
            if merged:
                return ctx.read_many([o.state[name] for o in self.ops], batched=True)[0]
            return ctx.read(op.state[name], batched=True)

        def write(name, value):
            if not merged:
                ctx.set(op.output if name is None else op.state[name], value)
                return
            sigs = [o.output if name is None else o.state[name] for o in self.ops]
            ctx.write_many(sigs, value)

        training = getattr(ctx, "training", False)
        sigma = getattr(ctx, "lif_smoothing", None)
        # NengoDL 3.6: lif_smoothing smooths the rates that stand in for spiking LIF
        # neurons in training; LIFRate neurons keep their own rates
        if training and sigma and type(op.neurons) is nengo.LIF:
            write(None, soft_lif_rate(op.neurons, J, sigma))
            return
        state = {k: read(k) for k in op.state}
        step = self.step
        if training and type(op.neurons) in TRAINING_STEPS:
            step = TRAINING_STEPS[type(op.neurons)]
        elif self.lif:
            # under XLA, LIF types use series instead of exp and log where
            # they are exact (see `lif_step`)
            series = ctx.options.lif_series and ctx.xla
            state.update(series=series, bounded=self.bounded, keep=ctx.keep)
        output, new_state = step(op.neurons, self.dt, J, **state)
        write(None, output)
        for name in op.state:
            if name in new_state:
                write(name, new_state[name])
