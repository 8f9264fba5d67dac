"""The compiled loop's tuning options, fixed for a simulator when it is made.

Each option leaves the simulation's output unchanged (within float rounding);
they trade compile time, memory and speed. A simulator takes them from its
``options`` argument, or else from the module-level names in `nengodl.graph`
(``nengodl.graph.XLA_MAX_STEPS`` and the others), read once, at construction:
changing a module-level name later changes later simulators only.
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class Options:
    """Tuning options of the compiled simulation loop.

    Parameters
    ----------
    xla_chunk : int
        Most steps per call of the XLA-compiled loop (every call runs a chunk
        of one size, so one compilation serves runs of any length).
    probe_buffer_bytes : int
        The chunk is shortened where its probe buffers would take more.
    xla_max_steps : int
        Loop bodies with more operations run without XLA (XLA's compile time
        grows quickly with the body).
    shard_bytes : int
        On a CPU, a minibatch is split into shards of about this much state,
        each run by its own XLA loop, side by side (0: no sharding).
    op_bytes : int
        More state per shard for each operation in the loop (amortising the
        per-step costs that do not grow with the shard).
    param_cache_bytes : int
        Parameters larger than this (read again by every shard) make shards
        larger too.
    drop_transient : bool
        State that every step sets before reading it is not carried between steps.
    keep_shared : bool
        Under XLA, values that builders mark with `StepContext.keep` are
        computed once rather than by each of their users.
    clock_outside : bool
        The XLA loop leaves out the clock where nothing in the loop reads it,
        and advances it once per call.

    Examples
    --------
    >>> from nengodl.options import Options
    >>> Options(shard_bytes=0).shard_bytes
    0
    """

    xla_chunk: int = 1024
    probe_buffer_bytes: int = 64 * 2**20
    xla_max_steps: int = 600
    shard_bytes: int = 64 * 1024
    op_bytes: int = 4 * 1024
    param_cache_bytes: int = 2**20
    drop_transient: bool = True
    keep_shared: bool = True
    clock_outside: bool = True

    @classmethod
    def from_module(cls):
        """The options as `nengodl.graph`'s module-level names give them now."""
        from nengodl import graph

        return cls(**{f.name: getattr(graph, f.name.upper()) for f in dataclasses.fields(cls)})
