"""The XLA-compiled simulation loop: fixed-size chunks, minibatch shards.

XLA needs static shapes. `XlaLoop` compiles one program per set of fed
inputs that runs up to `chunk_steps` steps (the number it runs is an input,
feeds are padded to the chunk, probes are recorded into buffers of the
chunk's size), and calls it as often as a run needs: one compilation serves
runs of any length. On a CPU the minibatch may be split into shards, each run
by the same compiled program, side by side (see `shard_size`).
"""

import os
import warnings

import numpy as np
import tensorflow as tf

from nengodl.options import Options
from nengodl.runtime.programs import SharedFunction
from nengodl.runtime.weak import method_function


def warn_xla_fallback(error, what):
    """Warn that XLA could not compile the model's ``what`` (which then runs without)."""
    reason = str(error).strip().splitlines()[0][:200]
    warnings.warn(f"XLA cannot compile this model's {what} ({reason}); it runs without XLA")


def shard_workers(options=None):
    """Threads TensorFlow's executor runs independent operations on
    (``options.shard_workers`` where set)."""
    if options is not None and options.shard_workers:
        return options.shard_workers
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


def plan_shard(plan, options, bases, sharding):
    """`shard_size` for a plan carrying the state ``bases`` (the minibatch
    itself where not ``sharding`` or where items depend on each other)."""
    if not (sharding and plan.items_independent):
        return plan.minibatch_size
    return shard_size(
        plan.minibatch_size,
        plan.state_bytes(bases),
        shard_workers(options),
        len(plan.steps),
        plan.param_bytes(),
        options,
    )


def padded(feeds, start, n, bucket):
    """Steps ``start`` to ``start + n`` of each feed, zero-padded to ``bucket`` steps."""
    chunk = {}
    for k, v in feeds.items():
        part = np.asarray(v[start : start + n])
        pad = np.zeros((bucket - len(part),) + part.shape[1:], dtype=part.dtype)
        chunk[k] = tf.constant(np.concatenate([part, pad]))
    return chunk


def chunk_steps(plan, options):
    """Steps of every call of the XLA loop: ``options.xla_chunk``, or the
    largest power of two (at least 16) whose probe buffers fit in
    ``options.probe_buffer_bytes``."""
    fit = max(16, options.probe_buffer_bytes // max(plan.probe_row_bytes(), 1))
    return min(options.xla_chunk, 1 << (int(fit).bit_length() - 1))


class XlaLoop:
    """Runs a `SimLoop` through XLA, in chunks of `chunk` steps.

    Parameters
    ----------
    loop : SimLoop
        The loop (its transient state already found).
    shard : int
        Minibatch items per shard (the minibatch size: not split).
    """

    def __init__(self, loop, shard):
        self.loop = loop
        self.plan = loop.plan
        self.shard = shard
        self.chunk = chunk_steps(self.plan, loop.options)
        self._jit_fn = method_function(self._run_jit, autograph=False, jit_compile=True)
        self._shard_fn = method_function(self._run_shards, autograph=False)
        self._compiled = set()  # (bucket, feed keys) compiled by XLA
        # another simulator's trace of the same program where one is kept
        # (`nengodl.runtime.programs`), so that XLA compiles it once
        self._program = SharedFunction(self._jit_fn, loop.options.shared_programs)

    def _run_jit(self, n_steps, state, feeds, max_steps, values):
        loop = self.loop
        return loop.loop(
            n_steps,
            state,
            feeds,
            training=loop.learning_phase,
            max_steps=max_steps,
            carry_all=False,
            values=values,
        )

    def _run_shards(self, n_steps, state, feeds, max_steps):
        """`_run_jit` on each shard of the minibatch; TensorFlow's executor runs
        the shards' loops side by side (they share one compiled loop)."""
        k = self.plan.minibatch_size // self.shard
        states = list(zip(*[tf.split(s, k, axis=0) for s in state])) or [()] * k
        feeds = {key: tf.split(v, k, axis=1) for key, v in feeds.items()}
        values = self.loop.param_values()
        args = [
            (n_steps, list(states[j]), {key: v[j] for key, v in feeds.items()}, max_steps, values)
            for j in range(k)
        ]
        results = [self._program(*a) for a in args]
        state = [tf.concat(parts, axis=0) for parts in zip(*[r[0] for r in results])]
        data = [tf.concat(parts, axis=1) for parts in zip(*[r[1] for r in results])]
        return state, data

    def call_chunk(self, n_steps, state, feeds, bucket, specs=False):
        """Run one chunk of steps through the XLA-compiled loop, in shards if
        the minibatch is split (with ``specs``, the concrete function instead)."""
        if self.shard < self.plan.minibatch_size:
            args = (n_steps, state, feeds, bucket)
            return self._shard_fn.get_concrete_function(*args) if specs else self._shard_fn(*args)
        args = (n_steps, state, feeds, bucket, self.loop.param_values(specs))
        return self._jit_fn.get_concrete_function(*args) if specs else self._program(*args)

    def trace(self, feed_keys=None):
        """The concrete function of a chunk (for runs fed ``feed_keys``)."""
        plan = self.plan
        feed_keys = plan.fed_keys if feed_keys is None else feed_keys
        state_specs = [
            tf.TensorSpec((plan.minibatch_size,) + b.shape, plan.layout.tf_dtype(b))
            for b in plan.layout.state_bases
        ]
        feed_specs = {}
        for k in feed_keys:
            spec = self.loop.feed_spec(k)
            feed_specs[k] = tf.TensorSpec((self.chunk,) + tuple(spec.shape[1:]), spec.dtype)
        return self.call_chunk(
            tf.TensorSpec([], tf.int32), state_specs, feed_specs, self.chunk, specs=True
        )

    @property
    def n_compiled(self):
        """How many programs (sets of fed inputs) XLA has compiled for this loop."""
        return len(self._compiled)

    def uncompiled(self, feeds):
        """Whether a run with ``feeds`` needs a compilation first."""
        return (self.chunk, tuple(sorted(feeds))) not in self._compiled

    def compile(self, state, feeds):
        """Compile (by running zero steps) what a run with ``feeds`` needs.

        Returns
        -------
        bool
            False where XLA cannot compile the loop (a TensorNode using
            operations XLA does not support), after a warning.
        """
        if not self.uncompiled(feeds):
            return True
        try:
            self.call_chunk(
                tf.constant(0, tf.int32), state, padded(feeds, 0, 0, self.chunk), self.chunk
            )
        except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError) as e:
            warn_xla_fallback(e, "loop")
            return False
        self._compiled.add((self.chunk, tuple(sorted(feeds))))
        return True

    def _advance_clock(self, state, n_steps):
        """``state`` (eager tensors) with the clock ``n_steps`` steps on, as
        its builder leaves it (for a loop whose step leaves it out); computed
        in numpy, which is faster here than TensorFlow's first eager calls."""
        state = list(state)
        bases = self.plan.layout.state_bases
        k_step = bases.index(self.plan.clock.op.step.base)
        k_time = bases.index(self.plan.clock.op.time.base)
        step = state[k_step].numpy() + n_steps
        state[k_step] = tf.constant(step)
        time = step.astype(np.float64) * self.plan.dt  # as TimeUpdateBuilder
        state[k_time] = tf.constant(time.astype(state[k_time].dtype.as_numpy_dtype))
        return state

    def run(self, n_steps, state, feeds):
        """Run ``n_steps`` steps; arguments and results as `SimLoop.run`."""
        outputs = []
        done = 0
        bucket = self.chunk
        while done < n_steps:
            n = min(n_steps - done, bucket)
            chunk = padded(feeds, done, n, bucket)
            state, data = self.call_chunk(tf.constant(n, tf.int32), state, chunk, bucket)
            if self.loop.clock_outside:
                state = self._advance_clock(state, n)
            self._compiled.add((bucket, tuple(sorted(feeds))))
            outputs.append([d.numpy()[:n] for d in data])
            done += n
        stacked = [
            outputs[0][g] if len(outputs) == 1 else np.concatenate([o[g] for o in outputs])
            for g in range(len(self.plan.probe_groups))
        ]
        return state, self.loop.split_probe_data(stacked)
