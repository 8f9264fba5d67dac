"""The simulator's tuning options, fixed for a simulator when it is made.

Each option leaves the simulation's output unchanged (within float rounding);
they trade compile time, memory and speed. A simulator takes them from its
``options`` argument (default: ``Options()``); nothing else changes them.
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
    xla_after_steps : int
        Runs shorter than this go through the loop without XLA until the
        simulator has run this many steps (or its XLA program is compiled
        already): an XLA program costs compile time and about 1.5 MiB that
        TensorFlow keeps for the process's life, unless an earlier simulator
        compiled it (see ``shared_programs``; default 0: XLA from the first
        run).
    shared_programs : int
        XLA programs of simulation loops kept for later simulators in the
        process whose loops trace to the same program (a model built again,
        with any parameter values): they reuse the compiled program instead of
        compiling, and keeping, their own (0: none kept).
    shared_epochs : int
        The same for training epochs (the same model, losses and optimizer
        type, any learning rate). Each kept epoch also keeps its traced graph
        (about 6 MiB on a small model), so fewer are kept than loops.
    shard_bytes : int
        On a CPU, a minibatch is split into shards of about this much state,
        each run by its own XLA loop, side by side (0: no sharding).
    op_bytes : int
        More state per shard for each operation in the loop (amortising the
        per-step costs that do not grow with the shard).
    param_cache_bytes : int
        Parameters larger than this (read again by every shard) make shards
        larger too.
    shard_workers : int or None
        Threads the shards run on (None: TensorFlow's inter-op threads).
    drop_transient : bool
        State that every step sets before reading it is not carried between steps.
    keep_shared : bool
        Under XLA, values that builders mark with `StepContext.keep` are
        computed once rather than by each of their users.
    clock_outside : bool
        The XLA loop leaves out the clock where nothing in the loop reads it,
        and advances it once per call.
    slice_sums : bool
        Overlapping increments of one signal are added as sums of slices
        (False: one scatter-add, which XLA runs as a kernel of its own).
    fold_width : int or None
        Under XLA, sums over more elements than this are folded in halves
        first, so that they fuse with what feeds them (None: no folding).
    lif_series : bool
        Under XLA, LIF neurons use series exact on their ranges instead of exp
        and log.
    fast_closure : bool
        nengo's operator merger uses nengodl's transitive closure (False:
        nengo's own; the merges are the same).
    nengo_merge_ops : int
        nengo's operator merger runs ahead of the planner (`nengodl.planner`)
        on models of at most this many operators. Its layouts give some
        merged steps contiguous slices where the planner alone would gather,
        but its time and memory grow faster than the model (8 s and 1.3 GB
        more at 12k operators), so larger models are merged by the planner
        alone.

    Examples
    --------
    >>> from nengodl.options import Options
    >>> Options(shard_bytes=0).shard_bytes
    0
    """

    xla_chunk: int = 1024
    probe_buffer_bytes: int = 64 * 2**20
    xla_max_steps: int = 600
    xla_after_steps: int = 0
    shared_programs: int = 32
    shared_epochs: int = 4
    shard_bytes: int = 64 * 1024
    op_bytes: int = 4 * 1024
    param_cache_bytes: int = 2**20
    shard_workers: int | None = None
    drop_transient: bool = True
    keep_shared: bool = True
    clock_outside: bool = True
    slice_sums: bool = True
    fold_width: int | None = 32
    lif_series: bool = True
    fast_closure: bool = True
    nengo_merge_ops: int = 4000

    def __post_init__(self):
        from nengo.exceptions import ValidationError

        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.type in ("bool", bool):
                ok = isinstance(value, bool)
                expected = "True or False"
            else:
                ok = (value is None and "None" in str(field.type)) or (
                    isinstance(value, int) and not isinstance(value, bool) and value >= 0
                )
                expected = "a non-negative integer" + (
                    " or None" if "None" in str(field.type) else ""
                )
            if not ok:
                raise ValidationError(f"Must be {expected} (got {value!r})", attr=field.name)
