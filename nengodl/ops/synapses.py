"""Lowpass synapses whose time constant trains.

A connection configured with ``trainable_synapse`` (see
`nengodl.configure_settings`'s ``trainable_synapses``) and a `nengo.Lowpass`
synapse gets a parameter signal ``model.sig[conn]["log_tau"]``, the natural
logarithm of its time constant (so that the time constant stays positive
however training moves it), and its nengo `SimProcess` is replaced by
`SimLowpassTau`, which computes nengo's discretisation of the same filter
from that signal: with ``a = exp(-dt / tau)``, ``x[t] = a x[t-1] + (1 - a) u[t]``.
Untrained, the output is nengo's.
"""

import nengo
import numpy as np
import tensorflow as tf
from nengo.builder.operator import Operator
from nengo.builder.processes import SimProcess
from nengo.builder.signal import Signal

from nengodl.ops.registry import OpBuilder, register
from nengodl.views import reshape


class SimLowpassTau(Operator):
    """A lowpass filter of ``input`` into ``output`` whose time constant is
    ``exp(log_tau)``, read from a signal.

    Parameters
    ----------
    log_tau : Signal
        Shape ``(1,)``: the logarithm of the time constant (seconds).
    input, output : Signal
        The filtered signal and the result (same size).
    state : Signal
        The filter's state, ``(1,) + input.shape`` (nengo's ``X``).
    mode : str
        How ``output`` is written: ``"set"``, ``"inc"`` or ``"update"`` (as
        nengo's `SimProcess`).
    tag : str, optional
        A label.
    """

    def __init__(self, log_tau, input, output, state, mode, tag=None):
        super().__init__(tag=tag)
        self.mode = mode
        self.reads = [input, log_tau]
        self.sets = [output] if mode == "set" else []
        self.incs = [output] if mode == "inc" else []
        self.updates = ([output] if mode == "update" else []) + [state]

    # the signals live in the lists only, so that passes that replace signals
    # (nengo's merger, the planner's packing) keep the operator whole
    @property
    def input(self):
        return self.reads[0]

    @property
    def log_tau(self):
        return self.reads[1]

    @property
    def output(self):
        return (self.sets + self.incs + self.updates)[0]

    @property
    def state(self):
        return self.updates[-1]

    def make_step(self, signals, dt, rng):
        log_tau, u = signals[self.log_tau], signals[self.input]
        y, x = signals[self.output], signals[self.state]
        inc = self.mode == "inc"

        def step():
            a = np.exp(-dt / np.exp(log_tau[0]))
            x[0] = a * x[0] + (1 - a) * u
            if inc:
                y[...] += x[0]
            else:
                y[...] = x[0]

        return step


@register(SimLowpassTau)
class LowpassTauBuilder(OpBuilder):
    """`SimLowpassTau` in TensorFlow (differentiable in ``log_tau``)."""

    def __call__(self, ctx):
        op, B_ = self.op, ctx.minibatch_size
        n = int(np.prod(op.input.shape))
        u = reshape(ctx.read(op.input, batched=True), (B_, n))
        x = reshape(ctx.read(op.state, batched=True), (B_, n))
        tau = tf.exp(tf.reshape(tf.cast(ctx.read(op.log_tau), u.dtype), (-1, 1)))
        a = tf.exp(-self.dt / tau)
        x = a * x + (1 - a) * u
        ctx.set(op.state, reshape(x, (B_,) + op.state.shape))
        ctx.write(op.output, reshape(x, (B_,) + op.output.shape), inc=op.mode == "inc")


def make_synapses_trainable(model, connections):
    """Give each of ``connections`` (with a `nengo.Lowpass` synapse, built into
    ``model``) a trainable time constant: its ``log_tau`` signal and a
    `SimLowpassTau` in place of its synapse's `SimProcess` (in the same place
    among ``model.operators``).

    Parameters
    ----------
    model : nengo.builder.Model
        The built model (changed in place).
    connections : list of nengo.Connection
        The connections.
    """
    outputs = {model.sig[conn]["weighted"]: conn for conn in connections}
    for k, op in enumerate(model.operators):
        conn = outputs.get(op.output) if isinstance(op, SimProcess) else None
        if conn is None or op.process is not conn.synapse:
            continue
        log_tau = Signal(
            np.array([np.log(conn.synapse.tau)]), name=f"{conn}.log_tau", readonly=True
        )
        model.sig[conn]["log_tau"] = log_tau
        state = op.state["X"]
        model.operators[k] = SimLowpassTau(
            log_tau, op.input, op.output, state, op.mode, tag=f"{conn}.synapse"
        )


def trained_synapse(value):
    """The `nengo.Lowpass` of a ``log_tau`` signal's ``value``."""
    return nengo.Lowpass(float(np.exp(np.ravel(value)[0])))
