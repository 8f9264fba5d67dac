"""Runs of many steps: the XLA-compiled loop where it can run, else the plain loop.

`CompiledRunner` chooses once, when the simulator is made, whether a plan runs
through XLA (every operator in the loop runs in TensorFlow and the loop body
is not too large), finds the transient state, and then runs each call through
`XlaLoop` or `SimLoop`; a loop that XLA turns out not to compile falls back to
the plain loop, with a warning.
"""

from nengodl.runtime.loop import SimLoop
from nengodl.runtime.xla import XlaLoop, plan_shard


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

    @property
    def jit(self):
        """Whether runs go through XLA."""
        return self.xla is not None

    def trace(self):
        """Trace the loop, so that errors in the model's TensorFlow code show
        now (once a step has been traced for the XLA loop, nothing more is
        done: its loop is traced when first run)."""
        if self.xla is None:
            self.loop.trace()
        elif not self._step_traced:
            self.xla.trace()

    def needs_compile(self, feeds):
        """Whether a run with ``feeds`` first compiles an XLA program."""
        return self.xla is not None and self.xla.uncompiled(feeds)

    def compile(self, state, feeds):
        """Compile what a run with ``feeds`` needs (XLA off if it cannot)."""
        if self.xla is not None and not self.xla.compile(state, feeds):
            self.xla = None

    def run(self, n_steps, state, feeds):
        """Run ``n_steps`` steps; arguments and results as `SimLoop.run`."""
        runner = self.loop if self.xla is None else self.xla
        return runner.run(n_steps, state, feeds)

    def disable_xla(self):
        """Run without XLA from now on (training found it cannot compile)."""
        self.xla = None
