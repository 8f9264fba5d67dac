"""Single steps with nengo's own step functions, in numpy.

A call of a compiled TensorFlow function costs about 0.1 ms on a CPU however
little it computes, more than a whole step of a small model in
`nengo.Simulator`. Code that advances a simulator one step at a time
(nengo-gui, closed-loop robot control) therefore runs those steps here: every
operator's nengo step function over one set of numpy signals, exactly as
nengo's simulator runs them (its float64 numerics, whatever the simulator's
dtype). The operators that the compiled loop runs on the host (`HostOp`) are
called through the same objects, so that their random streams and Python state
continue across both kinds of run.

The values move between the simulator's tensors and the numpy signals only
when the kind of run changes: `NumpyStepper.load` copies the state and the
current parameter values in, `NumpyStepper.unload` gives the state back as
tensors.
"""

import numpy as np
import tensorflow as tf
from nengo.builder.probe import SimProbe
from nengo.builder.signal import SignalDict

from nengodl.ops.tensor_node import keras_floatx
from nengodl.tensor_node import SimTensorNode


class NumpyStepper:
    """Runs one step of a simulation with nengo's operators in numpy.

    Parameters
    ----------
    loop : SimLoop
        The simulation loop (its plan's layout and host operators, its
        parameter variables).
    operators : list of Operator
        The model's operators, in execution order.
    """

    def __init__(self, loop, operators):
        self.loop = loop
        self.plan = loop.plan
        self.operators = [op for op in operators if not isinstance(op, SimProbe)]
        self.probe_sigs = list(loop.plan.probe_sigs)
        self.active = False  # whether the numpy signals hold the current state
        self.signals = None
        self.steps = None

    @staticmethod
    def usable(loop, operators):
        """Whether the operators can all run one item in numpy, outside training."""
        return (
            loop.plan.minibatch_size == 1
            and not loop.learning_phase
            and not any(isinstance(op, SimTensorNode) for op in operators)
        )

    def _build(self):
        """The numpy signals (one writable array per base) and step functions."""
        signals = SignalDict()
        for sig in [s for op in self.operators for s in op.all_signals] + self.probe_sigs:
            base = sig.base
            if base not in signals:
                value = base.initial_value
                value = value.allocate() if hasattr(value, "allocate") else np.array(value)
                dict.__setitem__(signals, base, value)
        hosts = {h.op: h for h in self.plan.host_ops}
        rng = np.random.RandomState(0)  # native operators draw no random numbers
        steps = []
        for op in self.operators:
            if op in hosts:
                steps.append(self._host_call(hosts[op], signals, self._shared))
            else:
                steps.append(op.make_step(signals, self.plan.dt, rng))
        self.signals, self.steps = signals, steps
        self.probe_views = [signals[sig] for sig in self.probe_sigs]
        written = {s.base: None for op in self.operators for s in op.sets + op.incs + op.updates}
        self.written = [signals[b] for b in written if not b.sparse]
        self.backup = [a.copy() for a in self.written]

    def _shared(self, base):
        """Whether ``base`` is also used outside host operators (a signal no
        other operator uses stays in the host operator's own arrays, which the
        compiled loop's runs update too)."""
        return self.plan.layout.is_state(base) or base in self.loop.params

    @staticmethod
    def _host_call(host, signals, shared):
        """A step function running ``host``'s own step, its ``shared`` signals
        copied in and out (its signal arrays and step function are looked up at
        each call, since a reset makes new ones)."""
        pairs_in = [(b, signals[b]) for b in host.bases if not b.readonly and shared(b)]
        pairs_out = [(b, signals[b]) for b in host.written if shared(b)]

        def step():
            own = host.sigdicts[0]
            for base, value in pairs_in:
                np.copyto(dict.__getitem__(own, base), value)
            host.steps[0]()
            for base, value in pairs_out:
                np.copyto(value, dict.__getitem__(own, base))

        return step

    def load(self, state):
        """Make the numpy signals current: copy in ``state`` (the simulator's
        state tensors) and the current parameter values."""
        if self.steps is None:
            self._build()
        layout = self.plan.layout
        signals = self.signals
        for base, value in zip(layout.state_bases, state):
            if base in signals:
                np.copyto(signals[base], np.asarray(value)[0], casting="unsafe")
        for base, var in self.loop.params.items():
            if base in signals:
                np.copyto(signals[base], var.numpy(), casting="unsafe")
        for base, (var, mask) in self.loop.pinned.items():
            if base in signals:
                np.copyto(signals[base], var.numpy(), casting="unsafe", where=mask)
        self.active = True

    def unload(self, state):
        """The state tensors, with the values of the numpy signals (``state``,
        the tensors given to `load`, for the bases no operator here uses)."""
        layout = self.plan.layout
        out = []
        for base, value in zip(layout.state_bases, state):
            if base in self.signals:
                array = self.signals[base].astype(layout.np_dtype(base))[None]
                value = tf.constant(array)
            out.append(value)
        self.active = False
        return out

    def step(self):
        """Run one step; returns a copy of each probe's signal after it.

        A step that raises leaves the signals as they were before it.
        """
        for value, saved in zip(self.written, self.backup):
            np.copyto(saved, value)
        try:
            with keras_floatx(self.plan.dtype):  # as in the compiled loop (`HostOp`)
                for step in self.steps:
                    step()
        except BaseException:
            for value, saved in zip(self.written, self.backup):
                np.copyto(value, saved)
            raise
        return [view.copy() for view in self.probe_views]
