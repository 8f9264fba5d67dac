"""The compiled simulation: nengo operators planned onto one TensorFlow loop.

`SimGraph` decides how each operator runs (native builder, host call inside
the loop, or host computation ahead of the run), lays out the signals, and
compiles one `tf.function` that runs any number of steps in a
`tf.while_loop`, recording probes as it goes.
"""

import contextlib
import os
import warnings

import numpy as np
import tensorflow as tf
from nengo.builder.probe import SimProbe
from nengo.exceptions import BuildError, ValidationError

from nengodl.host import ErrorBox, HostOp, is_input_op
from nengodl.ops import find_builder
from nengodl.ops.basic import TimeUpdateBuilder
from nengodl.options import Options
from nengodl.signals import SignalLayout, StepContext, flat_indices, reshape, upstream_ops


def plan_merges(operators, dg, dt):
    """Order operators by dependency level and group mergeable ones.

    Operators at the same level (longest dependency path from a source) do not
    depend on each other, so those whose builder gives them equal
    ``merge_key`` run as one operation.

    Returns
    -------
    operators : list
        The operators, ordered by level (a valid execution order).
    merged : dict
        Map from each merged operator to its group (a list; the group runs
        where its first member stands).
    """
    preds = {op: [] for op in operators}
    for op, dependents in dg.items():
        for d in dependents:
            if d in preds and op in preds:
                preds[d].append(op)
    level = {}
    for op in operators:  # operators come in topological order
        level[op] = 1 + max((level[p] for p in preds[op]), default=-1)
    ordered = sorted(operators, key=lambda op: level[op])  # stable: keeps toposort within a level
    groups = {}
    for op in ordered:
        builder = find_builder(op)
        key_fn = getattr(builder, "merge_key", None)
        if key_fn is not None:
            groups.setdefault((level[op], key_fn(op, dt)), []).append(op)
    merged = {}
    for group in groups.values():
        if len(group) > 1:
            for op in group:
                merged[op] = group
    return ordered, merged


_WARNED = set()


def warn_host_fallback(op):
    """Warn once per kind of operator that runs through Python inside the loop."""
    from nengo.builder.operator import SimPyFunc

    if isinstance(op, SimPyFunc):
        return  # Python Node functions are Python by design
    what = getattr(op, "neurons", None) or getattr(op, "process", None) or op
    name = type(what).__name__
    if name not in _WARNED:
        _WARNED.add(name)
        warnings.warn(
            f"{name} has no TensorFlow implementation in nengodl: it runs nengo's "
            "Python step function inside the loop, once per minibatch item, which is "
            "slow and turns XLA off"
        )


def warn_xla_fallback(error, what):
    """Warn that XLA could not compile the model's ``what`` (which then runs without)."""
    reason = str(error).strip().splitlines()[0][:200]
    warnings.warn(f"XLA cannot compile this model's {what} ({reason}); it runs without XLA")


# The defaults of `nengodl.options.Options`, read when a simulator is made (see
# there for what each does).
XLA_CHUNK = 1024  # most steps per call of the XLA-compiled loop
# every call of the XLA loop runs a chunk of one size (fewer steps where the run
# ends sooner; the loop's trip count is an input), so that one compilation
# serves runs of any length; the chunk is shortened where its probe buffers
# would take more than PROBE_BUFFER_BYTES
PROBE_BUFFER_BYTES = 64 * 2**20
XLA_MAX_STEPS = 600  # larger loop bodies run without XLA
# On a CPU, a minibatch is split into shards, each simulated by its own XLA
# loop and run side by side. A shard holds about SHARD_BYTES of state (so it
# stays in a core's cache), more where per-step costs that do not grow with the
# shard need amortising: OP_BYTES per operation in the loop, and parameters
# larger than PARAM_CACHE_BYTES (read again by every shard). 0: no sharding.
SHARD_BYTES = 64 * 1024
OP_BYTES = 4 * 1024
PARAM_CACHE_BYTES = 1024 * 1024
# state that every step sets before reading it is not carried between steps
DROP_TRANSIENT = True
# under XLA, values that builders mark with `StepContext.keep` are computed once
KEEP_SHARED = True
# the XLA loop leaves out the clock (step count, time) where nothing in the loop
# reads it, and advances it once per call (one kernel fewer in each step)
CLOCK_OUTSIDE = True


def shard_workers():
    """Threads TensorFlow's executor runs independent operations on."""
    n = tf.config.threading.get_inter_op_parallelism_threads()
    if n:
        return n
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def shard_size(minibatch_size, item_bytes, workers, n_ops=0, param_bytes=0, options=None):
    """Items per shard when a minibatch is split over independent loops.

    A shard gets at least ``options.shard_bytes`` of state, and more where the
    loop has many operations or large parameters (see `Options`);
    there are at least ``workers`` shards when the minibatch allows, and the
    size divides ``minibatch_size`` evenly, so every shard runs the same
    compiled loop.

    Parameters
    ----------
    minibatch_size : int
        Items in the minibatch.
    item_bytes : int
        Bytes of state carried per item.
    workers : int
        Threads that run shards side by side.
    n_ops : int
        Operations in the loop body.
    param_bytes : int
        Bytes of parameters (shared by all items).
    options : Options, optional
        The tuning options (default: `Options`'s defaults).

    Returns
    -------
    int
        Items per shard (``minibatch_size`` when it is not split).

    Examples
    --------
    >>> shard_size(64, 32768, 2), shard_size(64, 100, 2), shard_size(7, 32768, 2)
    (2, 32, 1)
    >>> shard_size(64, 32768, 2, param_bytes=8 * 2**20)  # large weights: few shards
    32
    """
    opt = Options() if options is None else options
    if opt.shard_bytes <= 0 or minibatch_size < 2 or workers < 2:
        return minibatch_size
    big_params = param_bytes if param_bytes > opt.param_cache_bytes else 0
    wanted = max(opt.shard_bytes, opt.op_bytes * n_ops, big_params)
    most = min(-(-wanted // max(item_bytes, 1)), minibatch_size // workers)
    return max(d for d in range(1, max(most, 1) + 1) if minibatch_size % d == 0)


def padded(feeds, start, n, bucket):
    """Steps ``start`` to ``start + n`` of each feed, zero-padded to ``bucket`` steps."""
    chunk = {}
    for k, v in feeds.items():
        part = np.asarray(v[start : start + n])
        pad = np.zeros((bucket - len(part),) + part.shape[1:], dtype=part.dtype)
        chunk[k] = tf.constant(np.concatenate([part, pad]))
    return chunk


def written_indices(operators):
    """Map base signal -> boolean mask of the elements some operator writes."""
    written = {}
    for op in operators:
        for sig in op.sets + op.incs + op.updates:
            if sig.sparse:
                continue
            mask = written.setdefault(sig.base, np.zeros(sig.base.size, dtype=bool))
            mask[flat_indices(sig).ravel()] = True
    return written


class SimGraph:
    """Plans and runs the simulation loop of a built nengo model.

    Parameters
    ----------
    model : nengo.builder.Model
        The built (and optionally optimised) model.
    operators : list of Operator
        The model's operators in execution order.
    input_sigs : dict
        Map from key to output signal of each input Node whose value can be
        given as run-time data.
    dtype : tf.DType
        Floating point type.
    minibatch_size : int
        Number of minibatch items.
    trainable_sigs : list of Signal
        Parameter signals that training may change.
    jit : bool
        Compile the simulation loop with XLA (ignored when host calls run inside
        the loop).
    lif_smoothing : float, optional
        While training, LIF and LIFRate neurons use `SoftLIFRate` with this sigma.
    learning_phase : bool
        Run simulations in training mode (rate neurons) too.
    dg : dict, optional
        The operator dependency graph (op -> ops that depend on it); when given,
        independent operators of one kind are merged (see `plan_merges`).
    unroll : int
        Steps per iteration of the time loop without XLA; leftover steps run in
        a second, single-step loop. The XLA-compiled loop is not unrolled.
    sharding : bool
        Whether the XLA loop may split the minibatch into shards that run side
        by side (see `shard_size`); for CPUs, where it keeps each shard's state
        in a core's cache. Models with TensorNodes are never split.
    options : Options, optional
        Tuning options (default: `Options.from_module`).
    """

    def __init__(
        self,
        model,
        operators,
        input_sigs,
        dtype,
        minibatch_size,
        trainable_sigs=(),
        jit=False,
        lif_smoothing=None,
        learning_phase=False,
        dg=None,
        unroll=1,
        sharding=False,
        options=None,
    ):
        self.options = Options.from_module() if options is None else options
        if int(unroll) != unroll or unroll < 1:
            raise ValidationError(
                f"unroll_simulation must be a positive integer, got {unroll!r}",
                attr="unroll_simulation",
            )
        self.unroll = int(unroll)
        self.lif_smoothing = lif_smoothing
        self.learning_phase = bool(learning_phase)
        self.model = model
        self.dt = model.dt
        self.dtype = dtype
        self.minibatch_size = minibatch_size
        self.errors = ErrorBox()
        self.steps = []  # (kind, key, object) in execution order
        self.host_ops = []  # every HostOp, in execution order (for rng order)
        self.pre_ops = {}  # key -> HostOp computed ahead of each run
        tf_ops = []
        hosts = {}  # host ops are made in nengo's order, so random draws match nengo
        for op in operators:
            if not isinstance(op, SimProbe) and find_builder(op) is None:
                hosts[op] = HostOp(op, self.dt, minibatch_size, self.errors)
                self.host_ops.append(hosts[op])
        operators, merged = plan_merges(operators, dg, self.dt) if dg else (operators, {})
        for op in operators:
            if isinstance(op, SimProbe):
                continue
            builder = find_builder(op)
            if is_input_op(op) and builder is None:
                host = hosts[op]
                key = f"pre{len(self.pre_ops)}"
                self.pre_ops[key] = host
                self.steps.append(("pre", key, host))
            elif builder is not None:
                if op in merged:
                    group = merged[op]
                    if group[0] is op:
                        self.steps.append(("native", None, self._make_builder(builder, group)))
                        tf_ops.extend(group)
                    continue
                self.steps.append(("native", None, self._make_builder(builder, op)))
                tf_ops.append(op)
            else:
                warn_host_fallback(op)
                self.steps.append(("host", None, hosts[op]))
                tf_ops.append(op)

        # the clock's builder (TimeUpdate), which the XLA loop's step may leave
        # out (see `clock_outside` below)
        self._clock = next(
            (
                obj
                for kind, _, obj in self.steps
                if kind == "native" and isinstance(obj, TimeUpdateBuilder)
            ),
            None,
        )

        # input signals that are set ahead of each step (constant Nodes)
        pre_outputs = {id(h.output): key for key, h in self.pre_ops.items() if h.output}
        self.input_keys = {}  # input key -> feed key
        self.const_inputs = {}  # feed key -> signal set at the start of a step
        for key, sig in input_sigs.items():
            if id(sig) in pre_outputs:
                self.input_keys[key] = pre_outputs[id(sig)]
            else:
                self.input_keys[key] = key
                self.const_inputs[key] = sig

        self.probes = list(model.probes)
        self.probe_sigs = [model.sig[p]["in"] for p in self.probes]
        fed = [h.output for h in self.pre_ops.values() if h.output is not None]
        fed += list(self.const_inputs.values())
        self.layout = SignalLayout(model, tf_ops, fed, self.probe_sigs, dtype)
        groups = {}  # probes are recorded in one array per dtype
        for k, sig in enumerate(self.probe_sigs):
            groups.setdefault(self.layout.tf_dtype(sig.base), []).append(k)
        self.probe_groups = list(groups.values())
        masks, pinned_masks = {}, {}
        written = written_indices(tf_ops)
        for sig in trainable_sigs:
            base = sig.base
            if not self.layout.tf_dtype(base).is_floating:
                continue
            idx = flat_indices(sig).ravel()
            if base in self.layout.param_bases:
                target = masks
            elif (
                self.layout.is_state(base) and not written.get(base, np.zeros(0, bool))[idx].any()
            ):
                # a parameter merged into a state signal by nengo's optimiser: its
                # elements are never written, so they are pinned to a variable
                target = pinned_masks
            else:
                continue
            target.setdefault(base, np.zeros(base.size, dtype=bool))[idx] = True
        self.params = {
            base: tf.Variable(
                self.layout.initial_value(base), trainable=base in masks, name="param"
            )
            for base in self.layout.param_bases
        }
        self.pinned = {
            base: (
                tf.Variable(self.layout.initial_value(base), name="pinned_param"),
                mask.reshape(base.shape),
            )
            for base, mask in pinned_masks.items()
        }
        self.trainable = [(self.params[b], m.reshape(b.shape)) for b, m in masks.items()]
        self.trainable += list(self.pinned.values())
        self.has_host_loop_ops = any(kind == "host" for kind, _, _ in self.steps)
        self._run_fn = tf.function(self._run, autograph=False, reduce_retracing=True)
        # XLA compile time grows quickly with the size of the loop body; very large
        # graphs (e.g. thousands of unmerged probes) compile faster than they'd gain
        self.jit = (
            bool(jit)
            and not self.has_host_loop_ops
            and len(self.steps) <= self.options.xla_max_steps
        )
        self._jit_fn = tf.function(self._run_jit, autograph=False, jit_compile=True)
        self._shard_fn = tf.function(self._run_shards, autograph=False)
        self._compiled = set()  # (bucket, feed keys) compiled by XLA
        self.chunk = self.chunk_steps()
        self._step_fns = {}  # (batch, feed keys, training) -> traced XLA step
        independent = all(getattr(obj, "items_independent", True) for kind, _, obj in self.steps)
        sharding = sharding and independent

        def shard_for(bases):
            if not sharding:
                return minibatch_size
            return shard_size(
                minibatch_size,
                self._bytes(bases),
                shard_workers(),
                len(self.steps),
                self._bytes(self.params),
                self.options,
            )

        # the XLA loop's step leaves out the clock where nothing in the loop
        # reads it; `_run_xla` advances it after each call instead
        self.clock_outside = (
            self.options.clock_outside
            and self._clock is not None
            and not self._reads_clock(operators)
        )
        # tracing a step for the transient analysis also shows the model's errors;
        # it is traced for the shard size that carrying all state would give,
        # which is usually the final one, so that the XLA loop reuses the trace
        self._step_traced = self.options.drop_transient and not self.has_host_loop_ops
        self.transient = set()
        if self._step_traced:
            with self.local_batch(shard_for(self.layout.state_bases)):
                self.transient = self._step_function()[1]
        self.shard = shard_for([b for b in self.layout.state_bases if b not in self.transient])

    def _bytes(self, bases):
        """Bytes of the values of ``bases`` (per minibatch item for state)."""
        return sum(b.size * self.layout.tf_dtype(b).size for b in bases)

    def _step_function(self, feed_keys=None, training=None):
        """One step of the XLA loop, traced once per batch size, set of fed
        keys and training flag.

        The loop body calls it, so a step is traced once however many run
        lengths are compiled. Tracing it also finds the transient state: the
        state bases that no step's result depends on at the step's start (each
        step sets every element of them, a neuron type's input current and
        output, say, before anything reads them), which the simulation loop
        need not carry from step to step.

        Parameters
        ----------
        feed_keys : iterable, optional
            Keys of the values fed each step (default: the outputs of the
            operators computed ahead of each run).
        training : bool, optional
            Whether spiking neurons are swapped for rates (default: the
            learning phase of simulations).

        Returns
        -------
        function : ConcreteFunction
            ``function(state, step_feeds, values)`` returns the new state and
            one row of probe data per probe group (see `_step`); ``values`` as
            `_param_values` gives them.
        transient : set
            The transient state bases.
        """
        if feed_keys is None:
            feed_keys = [k for k, h in self.pre_ops.items() if h.output is not None]
        if training is None:
            training = self.learning_phase
        key = (self.minibatch_size, tuple(sorted(feed_keys)), bool(training))
        if key not in self._step_fns:
            bases = self.layout.state_bases
            clock = self._clock_bases() if self._clock is not None else set()
            found = set()

            def step(state, step_feeds, values):
                params = self._bind_values(values)
                new_state, rows = self._step(
                    state, step_feeds, params, training, clock=not self.clock_outside
                )
                reached = set(upstream_ops(new_state + rows))
                # the clock is carried (unchanged, when outside the step), so
                # that its final value is right (`Simulator.signals`) and the
                # loop without XLA, which advances it every step, can use this
                found.update(
                    b for b, s in zip(bases, state) if s.op not in reached and b not in clock
                )
                return new_state, rows

            spec = tf.TensorSpec
            function = tf.function(step, autograph=False).get_concrete_function(
                [spec((self.minibatch_size,) + b.shape, self.layout.tf_dtype(b)) for b in bases],
                {k: spec(self.feed_spec(k).shape[1:], self.feed_spec(k).dtype) for k in key[1]},
                self._param_values(specs=True),
            )
            self._step_fns[key] = (function, found)
        return self._step_fns[key]

    def _clock_bases(self):
        """The bases of the step count and the time."""
        return {self._clock.op.step.base, self._clock.op.time.base}

    def _reads_clock(self, operators):
        """Whether some probe or operator run in the loop (other than the
        clock's) reads the step count or the time."""
        clock = self._clock_bases()
        if any(sig.base in clock for sig in self.probe_sigs):
            return True
        pre = {h.op for h in self.pre_ops.values()}
        for op in operators:
            if op is self._clock.op or op in pre or isinstance(op, SimProbe):
                continue
            builder = find_builder(op)
            if builder is not None and not builder.reads_time:
                continue
            if any(sig.base in clock for sig in op.reads + op.sets + op.incs + op.updates):
                return True
        return False

    @contextlib.contextmanager
    def local_batch(self, size):
        """Trace the loop for ``size`` minibatch items (a shard or a replica)."""
        saved = self.minibatch_size
        self.minibatch_size = size
        try:
            yield
        finally:
            self.minibatch_size = saved

    def _param_values(self, specs=False):
        """Current values (or specs) of the parameter and pinned
        variables, passed into the XLA-compiled loop as plain tensors: a call
        without variable inputs is stateless, so TensorFlow runs shards' calls
        side by side instead of in program order. The last value is a scalar
        1 (`StepContext.keep` divides by it)."""
        variables = list(self.params.values()) + [v for v, _ in self.pinned.values()]
        if specs:
            return [tf.TensorSpec(v.shape, v.dtype) for v in variables] + [
                tf.TensorSpec([], self.dtype)
            ]
        return [tf.convert_to_tensor(v) for v in variables] + [tf.constant(1, self.dtype)]

    def _bind_values(self, values, xla=True):
        """Parameter values by base (and pinned ones into ``_pinned_values``,
        the runtime 1 into ``_one``, or None when not ``xla``), from the list
        `_param_values` gives."""
        n_params = len(self.params)
        self._pinned_values = {
            base: (value, tf.constant(mask))
            for (base, (_, mask)), value in zip(self.pinned.items(), values[n_params:-1])
        }
        self._xla = xla
        self._one = values[-1] if xla and self.options.keep_shared else None
        return dict(zip(self.params, values[:n_params]))

    def _call_chunk(self, n_steps, state, feeds, bucket, specs=False):
        """Run one chunk of steps through the XLA-compiled loop, in shards if
        the minibatch is split (with ``specs``, the concrete function instead)."""
        if self.shard < self.minibatch_size:
            fn, args = self._shard_fn, (n_steps, state, feeds, bucket)
        else:
            fn = self._jit_fn
            args = (n_steps, state, feeds, bucket, self._param_values(specs))
        return fn.get_concrete_function(*args) if specs else fn(*args)

    def _make_builder(self, builder, op):
        try:
            return builder(op, self.dt)
        except BuildError:
            raise
        except Exception as e:
            raise BuildError(f"Cannot build operator {op} in TensorFlow: {e}") from e

    def feed_spec(self, key):
        """`tf.TensorSpec` of the values fed for ``key``, any number of steps."""
        sig = self.pre_ops[key].output if key in self.pre_ops else self.const_inputs[key]
        return tf.TensorSpec(
            (None, self.minibatch_size) + sig.shape, self.layout.tf_dtype(sig.base)
        )

    def trace(self, feed_keys=None):
        """Trace the loop for runs of any length, so that errors in the model's
        TensorFlow code show at construction (for the XLA loop, once a step has
        been traced, nothing more is done: the loop is traced when first run).

        Parameters
        ----------
        feed_keys : list, optional
            Keys of the values fed each step (default: the outputs of the
            operators computed ahead of each run).
        """
        if feed_keys is None:
            feed_keys = [k for k, h in self.pre_ops.items() if h.output is not None]
        state_specs = [
            tf.TensorSpec((self.minibatch_size,) + b.shape, self.layout.tf_dtype(b))
            for b in self.layout.state_bases
        ]
        feed_specs = {k: self.feed_spec(k) for k in feed_keys}
        if self.jit and self._step_traced:
            # the transient-state analysis traced a step, which is what shows
            # errors in the model's TensorFlow code; the XLA loop is traced
            # when first run
            return None
        if self.jit:
            feed_specs = {
                k: tf.TensorSpec((self.chunk,) + tuple(v.shape[1:]), v.dtype)
                for k, v in feed_specs.items()
            }
            return self._call_chunk(
                tf.TensorSpec([], tf.int32), state_specs, feed_specs, self.chunk, specs=True
            )
        return self._run_fn.get_concrete_function(
            tf.TensorSpec([], tf.int32), state_specs, feed_specs
        )

    def pinned_variables(self):
        """``(base, variable)`` of each parameter pinned inside a state signal."""
        return [(base, var) for base, (var, _) in self.pinned.items()]

    def all_variables(self):
        """Every parameter variable (for saving and loading)."""
        return list(self.params.values()) + [v for v, _ in self.pinned.values()]

    def initial_state(self):
        """Initial values of the state signals, tiled over the minibatch."""
        return [
            tf.constant(self.layout.initial_value(base, self.minibatch_size))
            for base in self.layout.state_bases
        ]

    def reset_host(self, seeds):
        """Recreate host step functions with one random state per item."""
        for item, seed in enumerate(seeds):
            rng = np.random.RandomState(seed)
            for host in self.host_ops:
                host.make_item(item, rng)

    def feed_dtype(self, sig):
        """Numpy dtype of values fed for ``sig``."""
        return self.layout.np_dtype(sig.base)

    def _step(self, state, step_feeds, params, training, clock=True):
        """Build one step: the new state and, for each probe group, the
        ``(minibatch_size, size)`` row of probe data (without advancing the
        clock where not ``clock``)."""
        values = dict(zip(self.layout.state_bases, state))
        for base, (value, mask) in self._pinned_values.items():
            values[base] = tf.where(mask, value, values[base])
        values.update(params)
        ctx = StepContext(
            self.layout,
            values,
            step_feeds,
            self.dt,
            self.minibatch_size,
            xla=self._xla,
            one=self._one,
        )
        ctx.training = training
        ctx.lif_smoothing = self.lif_smoothing
        for key, sig in self.const_inputs.items():
            if key in step_feeds:
                ctx.set(sig, step_feeds[key])
        for kind, key, obj in self.steps:
            if kind == "native":
                if clock or obj is not self._clock:
                    obj(ctx)
            elif kind == "host":
                obj.in_loop(ctx)
            elif obj.output is not None:
                ctx.write(obj.output, step_feeds[key], inc=obj.output_inc)
        rows = [
            tf.concat(
                [
                    reshape(ctx.read(self.probe_sigs[k], batched=True), (self.minibatch_size, -1))
                    for k in group
                ],
                axis=1,
            )
            for group in self.probe_groups
        ]
        ctx.flush_all()
        new_state = [ctx.values[base] for base in self.layout.state_bases]
        if ctx.side_effects:
            with tf.control_dependencies(ctx.side_effects):
                new_state = [tf.identity(s) for s in new_state]
        return new_state, rows

    def loop(
        self,
        n_steps,
        state,
        feeds,
        training=False,
        max_steps=None,
        carry_all=True,
        values=None,
        unroll=None,
    ):
        """Build the simulation loop (call inside a `tf.function`).

        Parameters
        ----------
        n_steps : tf.Tensor
            Number of steps (int32 scalar).
        state : list of tf.Tensor
            Initial state.
        feeds : dict
            Feed key to tensor ``(n_steps, minibatch_size) + shape``.
        training : bool
            Whether to run in training mode (spiking neurons swapped for rates).
        max_steps : int, optional
            A static bound on ``n_steps`` (for XLA); probe buffers get this size.
        carry_all : bool
            If False, `transient` state is not carried between steps (its
            final value is then the given one, which no step reads).
        values : list of tf.Tensor, optional
            Values of the parameter and pinned variables and the runtime 1 (as
            `_param_values` gives them; for the XLA loop); by default the
            variables are read here.
        unroll : int, optional
            Steps per loop iteration (default: the simulator's
            ``unroll_simulation``, or 1 for the XLA loop).

        Returns
        -------
        state : list of tf.Tensor
            Final state.
        stacked : list of tf.Tensor
            Probe data, one ``(n_steps, minibatch_size, size)`` tensor per probe group.
        """
        if values is None:  # not XLA: nothing is recomputed, so nothing to keep
            params = self._bind_values(self._param_values(), xla=False)

            def step(state, step_feeds):
                return self._step(state, step_feeds, params, training)
        else:
            function = self._step_function(feeds, training)[0]

            def step(state, step_feeds):
                return function(state, step_feeds, values)

        tas = [
            tf.TensorArray(
                self.layout.tf_dtype(self.probe_sigs[group[0]].base),
                size=n_steps if max_steps is None else max_steps,
                element_shape=(
                    self.minibatch_size,
                    sum(self.probe_sigs[k].size for k in group),
                ),
            )
            for group in self.probe_groups
        ]

        bases = self.layout.state_bases
        given = list(state)
        skip = set() if carry_all else self.transient
        carried = [k for k, b in enumerate(bases) if b not in skip]
        dropped = [k for k, b in enumerate(bases) if b in skip]

        def body(i, state, tas, unroll=1):
            for _ in range(unroll):
                full = dict(zip(carried, state))
                for k in dropped:  # set before it is read, every step: any value will do
                    full[k] = tf.zeros(given[k].shape, given[k].dtype)
                full = [full[k] for k in range(len(bases))]
                full, rows = step(full, {key: val[i] for key, val in feeds.items()})
                tas = [ta.write(i, row) for ta, row in zip(tas, rows)]
                i, state = i + 1, [full[k] for k in carried]
            return i, state, tas

        parallel = 1 if self.has_host_loop_ops else 10
        i, state = tf.constant(0), [given[k] for k in carried]
        # XLA compiles the loop body as a whole: unrolling it only makes the
        # program (and the memory and time XLA needs for it) k times larger,
        # faster than linearly, without making the loop any faster
        if unroll is None:
            unroll = self.unroll if values is None else 1
        if unroll > 1:
            i, state, tas = tf.while_loop(
                lambda i, *_: i + unroll <= n_steps,
                lambda *args: body(*args, unroll=unroll),
                (i, state, tas),
                parallel_iterations=parallel,
                maximum_iterations=None if max_steps is None else max_steps // unroll,
            )
        _, state, tas = tf.while_loop(
            lambda i, *_: i < n_steps,
            body,
            (i, state, tas),
            parallel_iterations=parallel,
            maximum_iterations=max_steps,  # a static bound, which XLA's gradients need
        )
        final = list(given)
        for k, value in zip(carried, state):
            final[k] = value
        return final, [ta.stack() for ta in tas]

    def _advance_clock(self, state, n_steps):
        """``state`` (eager tensors) with the clock ``n_steps`` steps on, as
        its builder leaves it (for a loop whose step leaves it out:
        `clock_outside`); computed in numpy, which is faster here than
        TensorFlow's first eager calls."""
        state = list(state)
        bases = self.layout.state_bases
        k_step = bases.index(self._clock.op.step.base)
        k_time = bases.index(self._clock.op.time.base)
        step = state[k_step].numpy() + n_steps
        state[k_step] = tf.constant(step)
        time = step.astype(np.float64) * self.dt  # as TimeUpdateBuilder
        state[k_time] = tf.constant(time.astype(state[k_time].dtype.as_numpy_dtype))
        return state

    def restore_constants(self, state, feeds):
        """``state`` with the constant inputs that ``feeds`` overrode set back
        to their constant values (a run's data holds for that run only)."""
        keys = [k for k in feeds if k in self.const_inputs]
        if not keys:
            return state
        state = list(state)
        bases = self.layout.state_bases
        for key in keys:
            sig = self.const_inputs[key]
            k = bases.index(sig.base)
            value = np.array(state[k]).reshape(self.minibatch_size, -1)
            value[:, flat_indices(sig).ravel()] = np.ravel(sig.initial_value)
            state[k] = tf.constant(value.reshape(tuple(state[k].shape)))
        return state

    def _probe_parts(self, stacked):
        """Yield ``(probe index, signal, group data, offset)`` for each probe."""
        for data, group in zip(stacked, self.probe_groups):
            offset = 0
            for k in group:
                sig = self.probe_sigs[k]
                yield k, sig, data[:, :, offset : offset + sig.size]
                offset += sig.size

    def probe_tensors(self, stacked):
        """Per-probe tensors ``(minibatch_size, n_steps) + shape`` (inside TF)."""
        out = [None] * len(self.probe_sigs)
        for k, sig, part in self._probe_parts(stacked):
            part = tf.transpose(part, (1, 0, 2))
            out[k] = tf.reshape(part, (self.minibatch_size, -1) + sig.shape)
        return out

    def _run(self, n_steps, state, feeds):
        return self.loop(n_steps, state, feeds, training=self.learning_phase, carry_all=False)

    def _run_jit(self, n_steps, state, feeds, max_steps, values):
        return self.loop(
            n_steps,
            state,
            feeds,
            training=self.learning_phase,
            max_steps=max_steps,
            carry_all=False,
            values=values,
        )

    def _run_shards(self, n_steps, state, feeds, max_steps):
        """`_run_jit` on each shard of the minibatch; TensorFlow's executor runs
        the shards' loops side by side (they share one compiled loop)."""
        k = self.minibatch_size // self.shard
        states = list(zip(*[tf.split(s, k, axis=0) for s in state])) or [()] * k
        feeds = {key: tf.split(v, k, axis=1) for key, v in feeds.items()}
        values = self._param_values()
        with self.local_batch(self.shard):
            results = [
                self._jit_fn(
                    n_steps,
                    list(states[j]),
                    {key: v[j] for key, v in feeds.items()},
                    max_steps,
                    values,
                )
                for j in range(k)
            ]
        state = [tf.concat(parts, axis=0) for parts in zip(*[r[0] for r in results])]
        data = [tf.concat(parts, axis=1) for parts in zip(*[r[1] for r in results])]
        return state, data

    def split_probe_data(self, stacked):
        """Per-probe arrays ``(n_steps, batch) + shape`` from the stacked groups."""
        out = [None] * len(self.probe_sigs)
        for k, sig, part in self._probe_parts(stacked):
            out[k] = part.reshape(part.shape[:2] + sig.shape)
        return out

    def run(self, n_steps, state, feeds):
        """Run ``n_steps`` steps from ``state``.

        Parameters
        ----------
        n_steps : int
            Number of steps.
        state : list of tf.Tensor
            Current state (as from `initial_state`).
        feeds : dict
            Feed key to array of shape ``(n_steps, minibatch_size) + shape``.

        Returns
        -------
        state : list of tf.Tensor
            The new state.
        probe_data : list of ndarray
            For each probe, shape ``(n_steps, minibatch_size) + shape``.
        """
        if self.jit:
            return self._run_xla(n_steps, state, feeds)
        feeds = {k: tf.convert_to_tensor(v) for k, v in feeds.items()}
        state, data = self._run_fn(tf.constant(n_steps, dtype=tf.int32), state, feeds)
        return state, self.split_probe_data([d.numpy() for d in data])

    def chunk_steps(self):
        """Steps of every call of the XLA loop: ``options.xla_chunk``, or the
        largest power of two (at least 16) whose probe buffers fit in
        ``options.probe_buffer_bytes``."""
        row = self.minibatch_size * sum(
            sig.size * self.layout.tf_dtype(sig.base).size for sig in self.probe_sigs
        )
        fit = max(16, self.options.probe_buffer_bytes // max(row, 1))
        return min(self.options.xla_chunk, 1 << (int(fit).bit_length() - 1))

    def _buckets(self, n_steps):
        """Padded step counts of the XLA calls that run ``n_steps`` steps."""
        return [self.chunk]

    def uncompiled(self, n_steps, feeds):
        """The XLA step buckets a run of ``n_steps`` with ``feeds`` would compile."""
        if not self.jit:
            return []
        keys = tuple(sorted(feeds))
        return [b for b in self._buckets(n_steps) if (b, keys) not in self._compiled]

    def compile(self, n_steps, state, feeds):
        """Compile (by running zero steps) what a run of ``n_steps`` needs.

        A loop that XLA cannot compile (a TensorNode using operations XLA does
        not support) turns XLA off, with a warning.
        """
        keys = tuple(sorted(feeds))
        for bucket in self.uncompiled(n_steps, feeds):
            try:
                self._call_chunk(
                    tf.constant(0, tf.int32), state, padded(feeds, 0, 0, bucket), bucket
                )
            except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError) as e:
                self.jit = False
                warn_xla_fallback(e, "loop")
                return
            self._compiled.add((bucket, keys))

    def _run_xla(self, n_steps, state, feeds):
        """Run through the XLA-compiled loop, in chunks of `chunk` steps.

        XLA needs static shapes: each call gets feeds padded to the chunk's
        steps and records probes into buffers of that size; the number of steps
        it runs is an input, so one compiled loop serves every run length.
        """
        outputs = []
        done = 0
        bucket = self.chunk
        while done < n_steps:
            n = min(n_steps - done, bucket)
            chunk = padded(feeds, done, n, bucket)
            state, data = self._call_chunk(tf.constant(n, tf.int32), state, chunk, bucket)
            if self.clock_outside:
                state = self._advance_clock(state, n)
            self._compiled.add((bucket, tuple(sorted(feeds))))
            outputs.append([d.numpy()[:n] for d in data])
            done += n
        stacked = [
            outputs[0][g] if len(outputs) == 1 else np.concatenate([o[g] for o in outputs])
            for g in range(len(self.probe_groups))
        ]
        return state, self.split_probe_data(stacked)
