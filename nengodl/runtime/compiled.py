"""Runs of many steps: the XLA-compiled loop where it can run, else the plain loop.

`CompiledRunner` chooses once, when the simulator is made, whether a plan runs
through XLA (every operator in the loop runs in TensorFlow and the loop body
is not too large), finds the transient state, and then runs each call through
`XlaLoop` or `SimLoop`; a loop that XLA turns out not to compile falls back to
the plain loop, with a warning.
"""

import tensorflow as tf

from nengodl.runtime.loop import SimLoop
from nengodl.runtime.xla import XlaLoop, plan_shard


def run_raising(runner, plan, n_steps, state, feeds):
    """``runner.run(n_steps, state, feeds)`` (a `CompiledRunner` or a distributed
    runner), raising the error of a host operator (a Node function, a process)
    that failed inside the loop as itself, instead of TensorFlow's wrapping."""
    try:
        return runner.run(n_steps, state, feeds)
    except tf.errors.OpError:
        err = plan.errors.pop()
        if err is not None:
            raise err from None
        raise


class CompiledRunner:
    """The compiled loop of a plan, with or without XLA.

    Parameters
    ----------
    plan : Plan
        The plan.
    options : Options
        The tuning options.
    jit : bool
        Whether to compile the loop with XLA where the plan allows.
    lif_smoothing : float, optional
        As for `SimLoop`.
    learning_phase : bool
        As for `SimLoop`.
    unroll : int
        As for `SimLoop`.
    sharding : bool
        Whether the XLA loop may split the minibatch into shards run side by
        side (for CPUs; see `nengodl.runtime.xla.shard_size`).
    """

    def __init__(
        self,
        plan,
        options,
        jit=False,
        lif_smoothing=None,
        learning_phase=False,
        unroll=1,
        sharding=False,
    ):
        self.plan = plan
        self.loop = SimLoop(plan, options, lif_smoothing, learning_phase, unroll)
        # XLA compile time grows quickly with the size of the loop body; very large
        # graphs (e.g. thousands of unmerged probes) compile faster than they'd gain
        jit = bool(jit) and not plan.has_host_loop_ops and len(plan.steps) <= options.xla_max_steps
        bases = plan.layout.state_bases
        # tracing a step for the transient analysis also shows the model's errors;
        # it is traced for the shard size that carrying all state would give,
        # which is usually the final one, so that the XLA loop reuses the trace
        self._step_traced = options.drop_transient and not plan.has_host_loop_ops
        if self._step_traced:
            first = plan_shard(plan, options, bases, sharding) if jit else plan.minibatch_size
            self.loop.find_transient(first)
        carried = [b for b in bases if b not in self.loop.transient]
        self.xla = (
            XlaLoop(self.loop, plan_shard(plan, options, carried, sharding)) if jit else None
        )
        self.xla_after = options.xla_after_steps
        self.steps_run = 0  # through this runner, since the simulator was made

    @property
    def jit(self):
        """Whether runs (long ones, or all once the simulator has run long
        enough: see `uses_xla`) go through XLA."""
        return self.xla is not None

    def uses_xla(self, n_steps, feeds):
        """Whether a run of ``n_steps`` with ``feeds`` goes through XLA: where
        XLA can run the loop and the program is compiled already, the run is
        ``options.xla_after_steps`` long or more, or this many steps have run
        before. Shorter runs of a simulator that has not run much use the loop
        without XLA (with ``xla_after_steps`` above 0; the default, 0, compiles
        at the first run): an XLA program costs compile time and about 1.5 MiB
        that TensorFlow keeps for the process's life (where no earlier
        simulator compiled the same program: `nengodl.runtime.programs`),
        which simulators made for a few short runs may never repay."""
        if self.xla is None:
            return False
        if not self.xla.uncompiled(feeds):
            return True
        return n_steps >= self.xla_after or self.steps_run >= self.xla_after

    def trace(self):
        """Trace the loop, so that errors in the model's TensorFlow code show
        now (once a step has been traced for the XLA loop, nothing more is
        done: the loops are traced when first run)."""
        if self.xla is None:
            self.loop.trace()
        elif not self._step_traced:
            self.xla.trace()

    def needs_compile(self, n_steps, feeds):
        """Whether a run of ``n_steps`` with ``feeds`` first compiles an XLA program."""
        return self.uses_xla(n_steps, feeds) and self.xla.uncompiled(feeds)

    def compile(self, state, feeds):
        """Compile what a run with ``feeds`` needs (XLA off if it cannot)."""
        if self.xla is not None and not self.xla.compile(state, feeds):
            self.xla = None

    def run(self, n_steps, state, feeds):
        """Run ``n_steps`` steps; arguments and results as `SimLoop.run`."""
        runner = self.xla if self.uses_xla(n_steps, feeds) else self.loop
        out = runner.run(n_steps, state, feeds)
        self.steps_run += n_steps
        return out

    def disable_xla(self):
        """Run without XLA from now on (training found it cannot compile)."""
        self.xla = None
