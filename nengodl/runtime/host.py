"""Host fallback: nengo operators run with nengo's own step functions.

Operators without a native TensorFlow builder (Python Node functions, custom
processes and neuron types, ...) run here with the step function that nengo's
own simulator would use, once per minibatch item, each item with its own copy
of the operator's signals and its own random state. Inside the simulation loop
they are called through `tf.numpy_function`; operators that read nothing but
the time (input Nodes and processes) are computed ahead of each run instead.
"""

import contextlib
import copy

import numpy as np
import tensorflow as tf
from nengo.builder.operator import SimPyFunc
from nengo.builder.processes import SimProcess
from nengo.builder.signal import SignalDict

from nengodl.ops.tensor_node import keras_floatx


def is_input_op(op):
    """Whether ``op`` depends on nothing but the simulation time."""
    if isinstance(op, SimPyFunc):
        return op.x is None
    if isinstance(op, SimProcess):
        return op.input is None
    return False


def unique_bases(signals):
    """Base signals of ``signals``, without duplicates, in order."""
    return list(dict.fromkeys(sig.base for sig in signals))


class ErrorBox:
    """Holds the first Python exception raised by a host step during a run."""

    def __init__(self):
        self.error = None

    def pop(self):
        """Return and clear the stored exception."""
        err, self.error = self.error, None
        return err


class HostOp:
    """Runs one nengo operator on the host, once per minibatch item.

    Parameters
    ----------
    op : nengo.builder.Operator
        The operator.
    dt : float
        Simulation time step.
    minibatch_size : int
        Number of minibatch items.
    errors : ErrorBox
        Where exceptions raised in the loop are kept for the simulator.
    dtype : tf.DType, optional
        The simulation's floating point type: Keras's ``floatx`` while the
        operator's step runs (a Node function sees it, as in NengoDL 3).
    """

    def __init__(self, op, dt, minibatch_size, errors, dtype=None):
        self.op = op
        self.dtype = dtype
        self.dt = dt
        self.minibatch_size = minibatch_size
        self.errors = errors
        self.bases = unique_bases(op.all_signals)
        self.written = unique_bases(op.sets + op.incs + op.updates)
        self.sigdicts = [None] * minibatch_size
        self.steps = [None] * minibatch_size
        self.output = None
        self.output_inc = False
        if isinstance(op, SimPyFunc):
            self.output = op.output
        elif isinstance(op, SimProcess):
            self.output = op.output
            self.output_inc = op.mode == "inc"

    def __str__(self):
        return str(self.op)

    def make_item(self, item, rng):
        """(Re)create the signals and step function of one minibatch item."""
        sd = SignalDict()
        for base in self.bases:
            sd.init(base)
        op = self.op
        if item > 0 and getattr(op, "state_extra", None):
            # build-time random states (stochastic neurons): one stream per item
            op = copy.copy(op)
            op.state_extra = {
                k: np.random.RandomState(rng.randint(2**31 - 1))
                if isinstance(v, np.random.RandomState)
                else copy.deepcopy(v)
                for k, v in op.state_extra.items()
            }
        try:
            self.steps[item] = op.make_step(sd, self.dt, rng)
        except NotImplementedError as e:
            # a NotImplementedError still (nengo's, and NengoDL 3.6's, for what
            # neither implements, such as convolutions in more than 3 dimensions)
            raise NotImplementedError(
                f"nengodl cannot run operator {self.op} (tag {self.op.tag!r}): it has "
                f"no TensorFlow builder and no step function ({e})"
            ) from None
        self.sigdicts[item] = sd

    # --- computed ahead of a run -------------------------------------------

    def precompute(self, start_step, n_steps, dtype):
        """Outputs of an input operator for steps ``start_step + 1 ...``.

        Returns
        -------
        ndarray or None
            Shape ``(n_steps, minibatch_size) + output.shape``, or None when the
            operator has no output (its function is still called every step).
        """
        out = self.output
        result = None
        if out is not None:
            result = np.zeros((n_steps, self.minibatch_size) + out.shape, dtype=dtype)
        t_sig = self.op.reads[0]
        with self.floatx():
            for b in range(self.minibatch_size):
                sd, step = self.sigdicts[b], self.steps[b]
                t = sd[t_sig]
                y = sd[out] if out is not None else None
                for i in range(n_steps):
                    t[...] = (start_step + i + 1) * self.dt
                    if self.output_inc:
                        y[...] = 0
                    step()
                    if y is not None:
                        result[i, b] = y
        return result

    def floatx(self):
        """A context in which Keras's ``floatx`` is the simulation's dtype."""
        return contextlib.nullcontext() if self.dtype is None else keras_floatx(self.dtype)

    # --- called inside the loop ---------------------------------------------

    def in_loop(self, ctx):
        """Add a `tf.numpy_function` call of this operator to the step."""
        layout = ctx.layout
        in_bases = [b for b in self.bases if b in ctx.values and not b.readonly]
        batched = [layout.is_state(b) for b in in_bases]
        out_dtypes = [layout.tf_dtype(b) for b in self.written] or [tf.int64]
        np_dtypes = [d.as_numpy_dtype for d in out_dtypes]

        def host_step(*arrays):
            try:
                with self.floatx():
                    for b in range(self.minibatch_size):
                        sd = self.sigdicts[b]
                        for base, arr, is_b in zip(in_bases, arrays, batched):
                            sd[base][...] = arr[b] if is_b else arr
                        self.steps[b]()
                if not self.written:
                    return [np.int64(0)]
                return [
                    np.stack([self.sigdicts[b][base] for b in range(self.minibatch_size)]).astype(
                        dt, copy=False
                    )
                    for base, dt in zip(self.written, np_dtypes)
                ]
            except Exception as e:
                if self.errors.error is None:
                    self.errors.error = e
                raise

        inputs = [ctx.base_value(b) for b in in_bases]
        outputs = tf.numpy_function(host_step, inputs, out_dtypes, stateful=True, name="host_op")
        if not self.written:
            ctx.side_effects.extend(outputs)
            return
        for base, out in zip(self.written, outputs):
            out.set_shape((self.minibatch_size,) + base.shape)
            ctx.set_base_value(base, out)
