"""The simulation loop of a plan in TensorFlow: its variables, one step, the loop.

`SimLoop` holds the parameter variables of a `Plan`, builds one simulation
step from the operators' builders, and builds the `tf.while_loop` that runs
any number of steps, recording probes as it goes. It runs the loop without
XLA itself (`SimLoop.run`); the XLA-compiled loop (`nengodl.runtime.xla`), the
training steps and the distributed runner call `SimLoop.loop` inside their own
functions.
"""

import dataclasses

import numpy as np
import tensorflow as tf
from nengo.exceptions import ValidationError

from nengodl.runtime.weak import method_function
from nengodl.signals import StepContext
from nengodl.views import flat_positions, reshape, upstream_ops


@dataclasses.dataclass(frozen=True)
class Bound:
    """What one traced step reads besides the state: the values of the
    parameter and pinned variables, and the runtime 1 of `StepContext.keep`.

    Attributes
    ----------
    params : dict
        Parameter base to its value.
    pinned : dict
        State base to ``(value, mask)`` of the parameters pinned inside it.
    xla : bool
        Whether the step is traced for the XLA-compiled loop.
    one : tf.Tensor or None
        The runtime 1 (None: values are not kept).
    """

    params: dict
    pinned: dict
    xla: bool
    one: object


def batch_of(state, default):
    """The minibatch size of ``state`` (its leading axis), or ``default``."""
    return int(state[0].shape[0]) if state else default


class SimLoop:
    """The TensorFlow simulation loop of a plan.

    Parameters
    ----------
    plan : Plan
        What runs and where signals live.
    options : Options
        The tuning options.
    lif_smoothing : float, optional
        While training, LIF and LIFRate neurons use `SoftLIFRate` with this sigma.
    learning_phase : bool
        Run simulations in training mode (rate neurons) too.
    unroll : int
        Steps per iteration of the time loop without XLA; leftover steps run in
        a second, single-step loop. The XLA-compiled loop is not unrolled.
    """

    def __init__(self, plan, options, lif_smoothing=None, learning_phase=False, unroll=1):
        if int(unroll) != unroll or unroll < 1:
            raise ValidationError(
                f"unroll_simulation must be a positive integer, got {unroll!r}",
                attr="unroll_simulation",
            )
        self.plan = plan
        self.options = options
        self.unroll = int(unroll)
        self.lif_smoothing = lif_smoothing
        self.learning_phase = bool(learning_phase)
        layout = plan.layout
        self.params = {
            base: tf.Variable(
                layout.initial_value(base), trainable=base in plan.param_masks, name="param"
            )
            for base in layout.param_bases
        }
        self.pinned = {
            base: (
                tf.Variable(layout.initial_value(base), name="pinned_param"),
                mask.reshape(base.shape),
            )
            for base, mask in plan.pinned_masks.items()
        }
        self.trainable = [
            (self.params[b], m.reshape(b.shape)) for b, m in plan.param_masks.items()
        ]
        self.trainable += list(self.pinned.values())
        self.serial = False  # run loop iterations one after another (see `make_serial`)
        self._run_fn = method_function(self._run, autograph=False, reduce_retracing=True)
        self._step_fns = {}  # (batch, feed keys, training) -> traced XLA step
        # the XLA loop's step leaves out the clock where nothing in the loop
        # reads it; the XLA runner advances it after each call instead
        self.clock_outside = (
            options.clock_outside and plan.clock is not None and not plan.reads_clock
        )
        self.transient = frozenset()

    def find_transient(self, batch):
        """Find (by tracing a step for ``batch`` items) the transient state:
        the state bases that no step's result depends on at the step's start
        (each step sets every element of them before anything reads them),
        which the loop need not carry from step to step. Tracing a step also
        shows errors in the model's TensorFlow code."""
        self.transient = frozenset(self.step_function(batch=batch)[1])

    # --- one step ---------------------------------------------------------------

    def param_values(self, specs=False):
        """Current values (or specs) of the parameter and pinned variables,
        passed into the XLA-compiled loop as plain tensors: a call without
        variable inputs is stateless, so TensorFlow runs shards' calls side by
        side instead of in program order. The last value is a scalar 1
        (`StepContext.keep` divides by it)."""
        variables = list(self.params.values()) + [v for v, _ in self.pinned.values()]
        if specs:
            return [tf.TensorSpec(v.shape, v.dtype) for v in variables] + [
                tf.TensorSpec([], self.plan.dtype)
            ]
        return [tf.convert_to_tensor(v) for v in variables] + [tf.constant(1, self.plan.dtype)]

    def bind(self, values, xla=True):
        """The `Bound` values of a step, from the list `param_values` gives."""
        n_params = len(self.params)
        pinned = {
            base: (value, tf.constant(mask))
            for (base, (_, mask)), value in zip(self.pinned.items(), values[n_params:-1])
        }
        one = values[-1] if xla and self.options.keep_shared else None
        return Bound(dict(zip(self.params, values[:n_params])), pinned, xla, one)

    def feed_spec(self, key, batch=None):
        """`tf.TensorSpec` of the values fed for ``key``, any number of steps."""
        batch = self.plan.minibatch_size if batch is None else batch
        sig = self.plan.feed_sig(key)
        return tf.TensorSpec((None, batch) + sig.shape, self.plan.layout.tf_dtype(sig.base))

    def step_function(self, feed_keys=None, training=None, batch=None):
        """One step of the XLA loop, traced once per batch size, set of fed
        keys and training flag (so a step is traced once however many run
        lengths are compiled).

        Parameters
        ----------
        feed_keys : iterable, optional
            Keys of the values fed each step (default: the outputs of the
            operators computed ahead of each run).
        training : bool, optional
            Whether spiking neurons are swapped for rates (default: the
            learning phase of simulations).
        batch : int, optional
            Minibatch items (default: the plan's).

        Returns
        -------
        function : ConcreteFunction
            ``function(state, step_feeds, values)`` returns the new state and
            one row of probe data per probe group; ``values`` as
            `param_values` gives them.
        transient : set
            The transient state bases (see `find_transient`).
        """
        plan = self.plan
        feed_keys = plan.fed_keys if feed_keys is None else feed_keys
        training = self.learning_phase if training is None else training
        batch = plan.minibatch_size if batch is None else batch
        key = (batch, tuple(sorted(feed_keys)), bool(training))
        if key not in self._step_fns:
            bases = plan.layout.state_bases
            clock = plan.clock_bases() if plan.clock is not None else set()
            found = set()

            def step(state, step_feeds, values):
                new_state, rows = self.step(
                    state,
                    step_feeds,
                    self.bind(values),
                    training,
                    batch,
                    clock=not self.clock_outside,
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
            feed_specs = {k: self.feed_spec(k, batch) for k in key[1]}
            function = tf.function(step, autograph=False).get_concrete_function(
                [spec((batch,) + b.shape, plan.layout.tf_dtype(b)) for b in bases],
                {k: spec(s.shape[1:], s.dtype) for k, s in feed_specs.items()},
                self.param_values(specs=True),
            )
            self._step_fns[key] = (function, found)
        return self._step_fns[key]

    def step(self, state, step_feeds, bound, training, batch, clock=True):
        """Build one step: the new state and, for each probe group, the
        ``(batch, size)`` row of probe data (without advancing the clock where
        not ``clock``)."""
        plan = self.plan
        values = dict(zip(plan.layout.state_bases, state))
        for base, (value, mask) in bound.pinned.items():
            values[base] = tf.where(mask, value, values[base])
        values.update(bound.params)
        ctx = StepContext(
            plan.layout,
            values,
            step_feeds,
            plan.dt,
            batch,
            xla=bound.xla,
            one=bound.one,
            options=self.options,
        )
        ctx.training = training
        ctx.lif_smoothing = self.lif_smoothing
        for key, sig in plan.const_inputs.items():
            if key in step_feeds:
                ctx.set(sig, step_feeds[key])
        for kind, key, obj in plan.steps:
            if kind == "native":
                if clock or obj is not plan.clock:
                    obj(ctx)
            elif kind == "host":
                obj.in_loop(ctx)
            elif obj.output is not None:
                ctx.write(obj.output, step_feeds[key], inc=obj.output_inc)
        rows = [
            tf.concat(
                [reshape(ctx.read(plan.probe_sigs[k], batched=True), (batch, -1)) for k in group],
                axis=1,
            )
            for group in plan.probe_groups
        ]
        ctx.flush_all()
        new_state = [ctx.values[base] for base in plan.layout.state_bases]
        if ctx.side_effects:
            with tf.control_dependencies(ctx.side_effects):
                new_state = [tf.identity(s) for s in new_state]
        return new_state, rows

    # --- the loop ---------------------------------------------------------------

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
            Initial state, ``(batch,) + base.shape`` each (the batch may be a
            shard's or a replica's).
        feeds : dict
            Feed key to tensor ``(n_steps, batch) + shape``.
        training : bool
            Whether to run in training mode (spiking neurons swapped for rates).
        max_steps : int, optional
            A static bound on ``n_steps`` (for XLA); probe buffers get this size.
        carry_all : bool
            If False, `transient` state is not carried between steps (its
            final value is then the given one, which no step reads).
        values : list of tf.Tensor, optional
            Values of the parameter and pinned variables and the runtime 1 (as
            `param_values` gives them; for the XLA loop); by default the
            variables are read here.
        unroll : int, optional
            Steps per loop iteration (default: the simulator's
            ``unroll_simulation``, or 1 for the XLA loop).

        Returns
        -------
        state : list of tf.Tensor
            Final state.
        stacked : list of tf.Tensor
            Probe data, one ``(n_steps, batch, size)`` tensor per probe group.
        """
        plan = self.plan
        batch = batch_of(state, plan.minibatch_size)
        if values is None:  # not XLA: nothing is recomputed, so nothing to keep
            bound = self.bind(self.param_values(), xla=False)

            def step(state, step_feeds):
                return self.step(state, step_feeds, bound, training, batch)
        else:
            function = self.step_function(feeds, training, batch)[0]

            def step(state, step_feeds):
                return function(state, step_feeds, values)

        tas = [
            tf.TensorArray(
                plan.layout.tf_dtype(plan.probe_sigs[group[0]].base),
                size=n_steps if max_steps is None else max_steps,
                element_shape=(batch, sum(plan.probe_sigs[k].size for k in group)),
            )
            for group in plan.probe_groups
        ]

        bases = plan.layout.state_bases
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

        parallel = 1 if plan.has_host_loop_ops or self.serial else 10
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

    def make_serial(self):
        """Run loop iterations strictly one after another from now on (for
        stateful random ops, whose draws must come in step order to repeat)."""
        self.serial = True
        self._run_fn = method_function(self._run, autograph=False, reduce_retracing=True)

    def _run(self, n_steps, state, feeds):
        return self.loop(n_steps, state, feeds, training=self.learning_phase, carry_all=False)

    def trace(self, feed_keys=None):
        """Trace the loop without XLA for runs of any length (so that errors in
        the model's TensorFlow code show at construction)."""
        plan = self.plan
        feed_keys = plan.fed_keys if feed_keys is None else feed_keys
        state_specs = [
            tf.TensorSpec((plan.minibatch_size,) + b.shape, plan.layout.tf_dtype(b))
            for b in plan.layout.state_bases
        ]
        return self._run_fn.get_concrete_function(
            tf.TensorSpec([], tf.int32), state_specs, {k: self.feed_spec(k) for k in feed_keys}
        )

    def run(self, n_steps, state, feeds):
        """Run ``n_steps`` steps from ``state`` without XLA.

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
        feeds = {k: tf.convert_to_tensor(v) for k, v in feeds.items()}
        state, data = self._run_fn(tf.constant(n_steps, dtype=tf.int32), state, feeds)
        return state, self.split_probe_data([d.numpy() for d in data])

    # --- values in and out --------------------------------------------------------

    def pinned_variables(self):
        """``(base, variable)`` of each parameter pinned inside a state signal."""
        return [(base, var) for base, (var, _) in self.pinned.items()]

    def all_variables(self):
        """Every parameter variable (for saving and loading)."""
        return list(self.params.values()) + [v for v, _ in self.pinned.values()]

    def initial_state(self):
        """Initial values of the state signals, tiled over the minibatch."""
        layout = self.plan.layout
        return [
            tf.constant(layout.initial_value(base, self.plan.minibatch_size))
            for base in layout.state_bases
        ]

    def reset_host(self, seeds):
        """Recreate host step functions with one random state per item."""
        for item, seed in enumerate(seeds):
            rng = np.random.RandomState(seed)
            for host in self.plan.host_ops:
                host.make_item(item, rng)

    def restore_constants(self, state, feeds):
        """``state`` with the constant inputs that ``feeds`` overrode set back
        to their constant values (a run's data holds for that run only)."""
        plan = self.plan
        keys = [k for k in feeds if k in plan.const_inputs]
        if not keys:
            return state
        state = list(state)
        bases = plan.layout.state_bases
        for key in keys:
            sig = plan.const_inputs[key]
            k = bases.index(sig.base)
            value = np.array(state[k]).reshape(plan.minibatch_size, -1)
            value[:, flat_positions(sig)] = np.ravel(sig.initial_value)
            state[k] = tf.constant(value.reshape(tuple(state[k].shape)))
        return state

    def _probe_parts(self, stacked):
        """Yield ``(probe index, signal, group data)`` for each probe."""
        plan = self.plan
        for data, group in zip(stacked, plan.probe_groups):
            offset = 0
            for k in group:
                sig = plan.probe_sigs[k]
                yield k, sig, data[:, :, offset : offset + sig.size]
                offset += sig.size

    def probe_tensors(self, stacked):
        """Per-probe tensors ``(batch, n_steps) + shape`` (inside TF)."""
        out = [None] * len(self.plan.probe_sigs)
        for k, sig, part in self._probe_parts(stacked):
            part = tf.transpose(part, (1, 0, 2))
            out[k] = tf.reshape(part, (int(part.shape[0]), -1) + sig.shape)
        return out

    def split_probe_data(self, stacked):
        """Per-probe arrays ``(n_steps, batch) + shape`` from the stacked groups."""
        out = [None] * len(self.plan.probe_sigs)
        for k, sig, part in self._probe_parts(stacked):
            out[k] = part.reshape(part.shape[:2] + sig.shape)
        return out
