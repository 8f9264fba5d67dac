"""What a simulator's runs change: signal values, the step count, probe data.

`RunState` is the one place these live. The executors (the compiled loop,
the numpy stepper) and parameter I/O read and write them through its methods:
the state tensors are handed between the compiled loop and the numpy stepper
only when the kind of run changes, and everything else sees the current values.
"""

import numpy as np
import tensorflow as tf
from nengo.exceptions import SimulationError

from nengodl.views import flat_positions


class RunState:
    """The run-time values of one simulator.

    Parameters
    ----------
    loop : SimLoop
        The simulation loop (its plan and parameter variables).
    recorder : ProbeRecorder
        Where probe data is kept.
    stepper : NumpyStepper, optional
        The numpy stepper for single steps (None where it cannot run the model).

    Attributes
    ----------
    n_steps : int
        Steps run since the last reset.
    trained : bool
        Whether training (or loading parameters) changed the parameters.
    """

    def __init__(self, loop, recorder, stepper=None):
        self.loop = loop
        self.plan = loop.plan
        self.recorder = recorder
        self._stepper = stepper
        self._tensors = loop.initial_state()
        self.n_steps = 0
        self.trained = False
        # the Keras layers' weights (in TensorNodes) as built
        self._built_keras = [np.array(v.numpy()) for v in self.plan.keras_variables()]

    # --- the state tensors ----------------------------------------------------

    @property
    def tensors(self):
        """The state tensors, one per state base (taken back from the numpy
        stepper if it holds the current values; it then loads them and the
        parameters again at its next step, so whatever a caller changes is seen)."""
        if self._stepper is not None and self._stepper.active:
            self._tensors = self._stepper.unload(self._tensors)
        return self._tensors

    @tensors.setter
    def tensors(self, tensors):
        if self._stepper is not None:
            self._stepper.active = False
        self._tensors = list(tensors)

    def parameters_changing(self):
        """Say that the parameter variables are about to change (training,
        loading): the numpy stepper hands its state back and reloads later."""
        self.tensors  # noqa: B018

    def reset(self):
        """Signals to their initial values, time to zero."""
        self.tensors = self.loop.initial_state()
        self.n_steps = 0

    def restore_built_parameters(self):
        """Parameters (Keras layers' weights in TensorNodes included) back to
        their built values."""
        self.parameters_changing()
        for base, var in self.variables().items():
            var.assign(self.plan.layout.initial_value(base))
        for var, value in zip(self.plan.keras_variables(), self._built_keras):
            var.assign(value)
        self.trained = False

    def step_numpy(self):
        """One step through the numpy stepper; False where it cannot run this model."""
        stepper = self._stepper
        if stepper is None:
            return False
        if not stepper.active:
            try:
                stepper.load(self._tensors)
            except (NotImplementedError, SimulationError):
                self._stepper = None  # an operator without a numpy step function
                return False
        values = stepper.step()
        self.recorder.append_step(self.n_steps, values)
        self.n_steps += 1
        return True

    def advance(self, n_steps, state, outputs):
        """Take the results of a run of ``n_steps`` steps: the new state and
        the probe data (``(n_steps, batch) + shape`` per probe)."""
        self.tensors = state
        self.recorder.append(self.n_steps, outputs)
        self.n_steps += n_steps

    def snapshot(self):
        """Everything here as plain values (for pickling): parameters and state
        by base signal (pickled with the model, so the keys are the loaded
        model's), host operators' signals, step count, probe data, trained flag."""
        return {
            "params": {base: np.array(var.numpy()) for base, var in self.variables().items()},
            "state": self.state_arrays(),
            "host": self.host_values(),
            "n_steps": self.n_steps,
            "probe_chunks": self.recorder.chunks_by_probe(),
            "trained": self.trained,
        }

    def restore(self, snapshot):
        """Set everything from a `snapshot` (of a simulator of the same model)."""
        for base, var in self.variables().items():
            if base in snapshot["params"]:
                var.assign(snapshot["params"][base])
        self.set_state_arrays(snapshot["state"])
        self.set_host_values(snapshot["host"])
        self.n_steps = snapshot["n_steps"]
        self.recorder.set_chunks(snapshot["probe_chunks"])
        self.trained = snapshot["trained"]

    def host_values(self):
        """Copies of the host operators' signals, per operator and minibatch item."""
        return [
            [
                None if sd is None else {b: np.array(sd[b]) for b in h.bases if not b.readonly}
                for sd in h.sigdicts
            ]
            for h in self.plan.host_ops
        ]

    def set_host_values(self, values):
        """Set the host operators' signals from `host_values`."""
        for h, items in zip(self.plan.host_ops, values):
            for sd, saved in zip(h.sigdicts, items):
                for base, val in (saved or {}).items():
                    sd[base][...] = val

    # --- values by base signal ---------------------------------------------------

    def variables(self):
        """Base signal to the variable holding it (parameters and pinned ones)."""
        out = dict(self.loop.params)
        out.update(dict(self.loop.pinned_variables()))
        return out

    def state_arrays(self):
        """Base signal to its current value, ``(batch,) + base.shape``, for each state base."""
        return {
            base: np.asarray(val) for base, val in zip(self.plan.layout.state_bases, self.tensors)
        }

    def set_state_arrays(self, arrays):
        """Set state bases from ``arrays`` (base to value; others unchanged)."""
        tensors = self.tensors
        self.tensors = [
            tf.constant(
                np.asarray(arrays[base]).reshape(val.shape).astype(val.dtype.as_numpy_dtype)
            )
            if base in arrays
            else val
            for base, val in zip(self.plan.layout.state_bases, tensors)
        ]

    def base_value(self, base):
        """Current value of a base signal.

        Returns the minibatched array ``(minibatch,) + base.shape`` for state and
        host-side signals, ``base.shape`` for parameters (trained values included).
        """
        loop, layout = self.loop, self.plan.layout
        if base in loop.params:
            return loop.params[base].numpy()
        if layout.is_state(base):
            val = np.asarray(self.tensors[layout.state_bases.index(base)])
            if base in loop.pinned:  # trained parameters merged into a state signal
                var, mask = loop.pinned[base]
                val = np.where(mask, var.numpy(), val)
            return val
        for host in self.plan.host_ops:
            if base in host.bases and host.sigdicts[0] is not None:
                return np.stack([sd[base] for sd in host.sigdicts])
        return np.asarray(base.initial_value)

    def view_value(self, sig):
        """Current value of ``sig``, with a leading minibatch axis."""
        val = self.base_value(sig.base)
        if val.ndim == sig.base.ndim:
            val = val[None]
        out = val.reshape(val.shape[0], -1)[:, flat_positions(sig)]
        return out.reshape((val.shape[0],) + sig.shape).astype(sig.dtype, copy=False)

    def bases(self):
        """Every base signal with a current value (state, parameters, host-side)."""
        bases = list(self.plan.layout.state_bases) + list(self.loop.params)
        for host in self.plan.host_ops:
            bases.extend(host.bases)
        return list(dict.fromkeys(bases))


class SignalValues:
    """Read-only view of the current value of each signal (`Simulator.signals`).

    Parameters
    ----------
    state : RunState
        The run state the values come from.
    batched : bool
        Whether values keep their leading minibatch axis (the simulator has a
        minibatch).
    """

    def __init__(self, state, batched):
        self.state = state
        self.batched = batched

    def __iter__(self):
        return iter(self.state.bases())

    def __len__(self):
        return len(self.state.bases())

    def keys(self):
        return self.state.bases()

    def items(self):
        return [(base, self[base]) for base in self.state.bases()]

    def __getitem__(self, sig):
        out = self.state.view_value(sig)
        return out if self.batched else out[0]

    def __contains__(self, sig):
        return sig.base in self.state.bases()
