"""Where each nengo signal lives in TensorFlow, and how views are read and written.

Every nengo `~nengo.builder.Signal` is a view onto a *base* signal. nengodl keeps
one tensor per base signal:

- *state* bases (written by some operator: set, inc or update) carry a leading
  minibatch axis, shape ``(minibatch_size,) + base.shape``, and are threaded
  through the simulation loop;
- *parameter* bases (only ever read) have no minibatch axis and live in
  `tf.Variable` objects, shared by all minibatch items.

A view is described by the flat element indices it covers in its base;
contiguous views become slices, others gathers and scatters.
"""

import numpy as np
import tensorflow as tf

from nengodl.options import Options
from nengodl.views import (
    ViewPlan,
    apply_writes,
    concat,
    overlaps,
    plan_indices,
    reshape,
    same_range,
    slice_last,
)

# views joined by a merged step are read and written as slices where they
# make fewer contiguous runs of a base than this, else with one gather
MAX_SLICES = 16


class SignalLayout:
    """Classifies base signals into state and parameters and assigns dtypes.

    Parameters
    ----------
    model : nengo.builder.Model
        The built model (used for the special ``step`` and ``time`` signals).
    tf_ops : list of Operator
        Operators run inside the TensorFlow loop.
    fed_sigs : list of Signal
        Signals set from host-computed or user-provided inputs every step.
    probe_sigs : list of Signal
        Signals recorded by probes.
    dtype : tf.DType
        The floating point type of the simulation.
    """

    def __init__(self, model, tf_ops, fed_sigs, probe_sigs, dtype):
        self.dtype = dtype
        self.time_base = model.time.base
        self.step_base = model.step.base
        written = {}
        bases = {}
        for op in tf_ops:
            for sig in op.all_signals:
                if not sig.sparse:
                    bases.setdefault(sig.base, None)
            for sig in op.sets + op.incs + op.updates:
                written.setdefault(sig.base, None)
        for sig in list(fed_sigs) + list(probe_sigs):
            bases.setdefault(sig.base, None)
        for sig in fed_sigs:
            written.setdefault(sig.base, None)
        self.state_bases = list(written)
        self.param_bases = [b for b in bases if b not in written]
        self._is_state = set(self.state_bases)
        self._plans = {}

    def is_state(self, base):
        """Whether ``base`` carries a minibatch axis (is written in the loop)."""
        return base in self._is_state

    def tf_dtype(self, base):
        """The TensorFlow dtype used for ``base``."""
        if base is self.time_base:
            return tf.float64
        kind = np.dtype(base.dtype).kind
        if kind == "f":
            return self.dtype
        if kind == "b":
            return tf.bool
        if kind == "c":
            raise NotImplementedError("complex signals are not supported")
        return tf.int64

    def np_dtype(self, base):
        """The numpy dtype matching `tf_dtype`."""
        return self.tf_dtype(base).as_numpy_dtype

    def initial_value(self, base, minibatch_size=None):
        """Initial value of ``base`` as numpy, tiled over the minibatch if given."""
        val = np.asarray(base.initial_value, dtype=self.np_dtype(base))
        if minibatch_size is not None:
            val = np.broadcast_to(val, (minibatch_size,) + val.shape).copy()
        return val

    def plan(self, sig, index=None):
        """The (cached) `ViewPlan` for ``sig`` with optional first-axis ``index``."""
        key = (sig, None if index is None else np.asarray(index).tobytes())
        if key not in self._plans:
            self._plans[key] = ViewPlan(sig, index)
        return self._plans[key]

    def joined_plans(self, views):
        """How to read or write the elements of ``views`` (signals or
        ``(signal, index)`` pairs), flattened and joined in order (cached).

        Returns
        -------
        plans : list
            ``[(base, ViewPlan)]``, base by base in order of first appearance:
            one plan per base, or one per contiguous run where a base has
            fewer than `MAX_SLICES` runs.
        order : ndarray or None
            Where the elements joined base by base lie in ``views``' order
            (None where the views of each base come together already).
        """
        key = tuple(v if isinstance(v, tuple) else (v, None) for v in views)
        key = tuple((s, None if i is None else np.asarray(i).tobytes()) for s, i in key)
        if key not in self._plans:
            runs, positions, start = {}, {}, 0
            for view in views:
                sig, index = view if isinstance(view, tuple) else (view, None)
                plan = self.plan(sig, index)
                runs.setdefault(sig.base, []).append(plan)
                positions.setdefault(sig.base, []).append((start, plan.size))
                start += plan.size
            plans = []
            for base, parts in runs.items():
                plans.extend((base, p) for p in self._base_plans(base, parts))
            spans = [span for p in positions.values() for span in p]
            ends = np.cumsum([0] + [n for _, n in spans])
            if all(a == e for (a, _), e in zip(spans, ends)):
                order = None  # the views of each base come together already
            else:
                order = np.concatenate([np.arange(a, a + n) for a, n in spans])
            self._plans[key] = (plans, order)
        return self._plans[key]

    @staticmethod
    def _base_plans(base, parts):
        """The plans reading the `ViewPlan`s ``parts`` of ``base`` joined: one per
        contiguous run where there are fewer than `MAX_SLICES` runs (slices,
        which XLA fuses, and which overlapping increments add as sums of
        slices), else one plan of all their indices."""
        if all(p.indices is None for p in parts) and any(p.size for p in parts):
            runs = []  # [start, stop) of the contiguous runs, in order
            for p in parts:
                if p.size and runs and runs[-1][1] == p.start:
                    runs[-1][1] = p.start + p.size
                elif p.size:
                    runs.append([p.start, p.start + p.size])
            if len(runs) <= MAX_SLICES:
                return [ViewPlan.of_range(base, a, b - a) for a, b in runs]
        idx = np.concatenate([plan_indices(p) for p in parts])
        cuts = np.flatnonzero(np.diff(idx) != 1) + 1
        if len(cuts) < MAX_SLICES:
            bounds = zip([0, *cuts.tolist()], [*cuts.tolist(), len(idx)])
            return [ViewPlan.of_indices(base, idx[a:b]) for a, b in bounds]
        return [ViewPlan.of_indices(base, idx)]


class StepContext:
    """The values of all signals during one traced simulation step.

    Operator builders read and write signals through this object. Writes to
    part of a base signal are kept pending and applied together (one gather or
    scatter for a run of writes) when the base is next read, so that many small
    writes into one large merged signal do not each copy the whole signal.

    Parameters
    ----------
    layout : SignalLayout
        Signal layout.
    values : dict
        Map from base signal to its current tensor.
    feeds : dict
        Map from signal to the value fed for this step.
    dt : float
        Simulation time step.
    minibatch_size : int
        Number of minibatch items.
    xla : bool
        Whether the step is traced for an XLA-compiled loop.
    one : tf.Tensor, optional
        A scalar 1 that the compiled function receives as an input (so XLA
        cannot fold it away); `keep` divides by it.
    options : Options, optional
        The tuning options (default: `Options`'s defaults).
    """

    def __init__(
        self, layout, values, feeds, dt, minibatch_size, xla=False, one=None, options=None
    ):
        self.layout = layout
        self.options = Options() if options is None else options
        self.xla = xla
        self.one = one
        self.values = values
        self.feeds = feeds
        self.dt = dt
        self.minibatch_size = minibatch_size
        self.dtype = layout.dtype
        self.side_effects = []
        self.pending = {}
        self._flat = {}  # base -> flattened current value
        self._reads = {}  # (base, plan) -> value read since the last write

    def keep(self, value):
        """``value``, computed once and stored rather than recomputed by each user.

        XLA fuses cheap elementwise producers into every consumer, so a value
        with several users (a neuron's decayed voltage feeds its output, its
        voltage and its refractory time) is computed once per user. A floating
        point division by a value XLA cannot see is one it does not duplicate,
        and dividing by 1 is exact; without ``one`` (no XLA), ``value`` itself.
        """
        return value if self.one is None else value / tf.cast(self.one, value.dtype)

    def is_batched(self, sig):
        """Whether the value of ``sig`` has a leading minibatch axis."""
        return self.layout.is_state(sig.base)

    def base_value(self, base):
        """The current tensor of ``base``, with pending writes applied."""
        if base in self.pending:
            self._flush(base)
        return self.values[base]

    def set_base_value(self, base, value):
        """Replace the whole tensor of ``base`` (dropping pending writes)."""
        self.pending.pop(base, None)
        self._invalidate(base)
        self.values[base] = value

    def _invalidate(self, base):
        self._flat.pop(base, None)
        for key in [k for k in self._reads if k[0] is base]:
            del self._reads[key]

    def flush_all(self):
        """Apply all pending writes."""
        for base in list(self.pending):
            self._flush(base)

    def read(self, sig, index=None, batched=False):
        """Current value of ``sig``.

        Parameters
        ----------
        sig : Signal
            The signal to read.
        index : optional
            First-axis index into ``sig``.
        batched : bool
            If True, always return a value with a minibatch axis.
        """
        return self._read_plan(sig.base, self.layout.plan(sig, index), batched)

    def read_many(self, views, batched=False):
        """The values of several signals, flattened and joined in order, read
        with one slice or gather per run of views on one base.

        Parameters
        ----------
        views : list
            Signals, or ``(signal, index)`` pairs (as `read`'s ``index``).
        batched : bool
            If True, always return a value with a minibatch axis.

        Returns
        -------
        value : tf.Tensor
            Shape ``(minibatch_size, total)`` where some view is batched (or
            ``batched``), else ``(total,)``.
        is_batched : bool
            Whether ``value`` has the minibatch axis.
        """
        runs, order = self.layout.joined_plans(views)
        is_b = batched or any(self.layout.is_state(base) for base, _ in runs)
        parts = [
            reshape(self._read_plan(base, plan, is_b), (-1, plan.size) if is_b else (plan.size,))
            for base, plan in runs
        ]
        value = concat(parts, axis=-1)
        if order is not None:  # back into the views' order
            value = tf.gather(value, np.argsort(order), axis=-1)
        return value, is_b

    def _read_plan(self, base, plan, batched):
        is_b = self.layout.is_state(base)
        key = (base, id(plan))
        lead = (self.minibatch_size,) if is_b else ()
        # a view that pending writes touch only as a whole is read through
        # them; other pending writes are left pending (a large base written and
        # read in parts, such as nengo's merged neuron inputs, is then joined
        # once, not joined and split again for each read: a copy of the whole
        # base each time without XLA)
        through = []
        if base in self.pending and key not in self._reads:
            through = [w for w in self.pending[base] if overlaps([w], plan)]
            if not all(same_range(w[0], plan) for w in through):
                self._flush(base)
                through = []
        if key not in self._reads and plan.full and base not in self.pending:
            self._reads[key] = reshape(self.values[base], lead + plan.shape)
        if key not in self._reads:
            if base not in self._flat:
                value = self.values[base]
                if value.shape.rank != len(lead) + 1:
                    value = tf.reshape(value, lead + (-1,))
                self._flat[base] = value
            val = plan.read(self._flat[base], lead)
            for _, value, inc in through:
                value = reshape(value, lead + plan.shape)
                val = val + value if inc else value
            self._reads[key] = val
        val = self._reads[key]
        if batched and not is_b:
            val = tf.broadcast_to(val[None], (self.minibatch_size,) + tuple(val.shape))
        return val

    def write(self, sig, value, inc=False, index=None):
        """Set (or increment, with ``inc=True``) ``sig`` to ``value``."""
        base = sig.base
        plan = self.layout.plan(sig, index)
        dtype = self.layout.tf_dtype(base)
        value = tf.convert_to_tensor(value)
        if value.dtype != dtype:
            value = tf.cast(value, dtype)
        if value.shape != (self.minibatch_size,) + plan.shape:
            value = tf.broadcast_to(value, (self.minibatch_size,) + plan.shape)
        if plan.full and not inc:
            self.set_base_value(base, reshape(value, (self.minibatch_size,) + base.shape))
            return
        self._invalidate(base)
        self.pending.setdefault(base, []).append(
            (plan, reshape(value, (self.minibatch_size, plan.size)), inc)
        )

    def write_many(self, views, value, inc=False):
        """Set (or increment) several signals from ``value``, shape
        ``(minibatch_size, total)``: their elements flattened and joined in
        order (as `read_many`), one pending write per run of views on one base."""
        value = tf.convert_to_tensor(value)
        runs, order = self.layout.joined_plans(views)
        if order is not None:  # base by base
            value = tf.gather(value, order, axis=1)
        start = 0
        for base, plan in runs:
            part = (
                slice_last(value, start, start + plan.size)
                if plan.size != value.shape[1]
                else value
            )
            start += plan.size
            dtype = self.layout.tf_dtype(base)
            part = part if part.dtype == dtype else tf.cast(part, dtype)
            if plan.full and not inc and plan.unique:
                self.set_base_value(base, reshape(part, (self.minibatch_size,) + base.shape))
                continue
            self._invalidate(base)
            self.pending.setdefault(base, []).append((plan, part, inc))

    def set(self, sig, value, index=None):
        """Set ``sig`` to ``value``."""
        self.write(sig, value, inc=False, index=index)

    def inc(self, sig, value, index=None):
        """Increment ``sig`` by ``value``."""
        self.write(sig, value, inc=True, index=index)

    def _flush(self, base):
        writes = self.pending.pop(base)
        size = int(np.prod(base.shape, dtype=np.int64))
        flat = self.values[base]
        if flat.shape.rank != 2:
            flat = reshape(flat, (self.minibatch_size, size))
        group = []
        for w in writes:
            if group and (w[2] != group[0][2] or (not w[2] and overlaps(group, w[0]))):
                flat = apply_writes(flat, group, size, self.keep, self.options.slice_sums)
                group = []
            group.append(w)
        if group:
            flat = apply_writes(flat, group, size, self.keep, self.options.slice_sums)
        self._invalidate(base)
        self.values[base] = reshape(flat, (self.minibatch_size,) + base.shape)
