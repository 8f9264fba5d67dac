"""The planner: which operators run as one, and where their signals lie.

Three passes over a built (and optionally nengo-optimised) model, each
deterministic (the same in every process, so plans, parameter files and
pickles agree):

- `operator_order`: a topological order of the operators that breaks ties by
  build order;
- `merge_groups`: operators at the same dependency level (longest path from a
  source) cannot depend on each other, so those whose builder gives them equal
  ``merge_key`` (operator kind, shapes, constants) run as one step, where
  there are at least the builder's ``merge_min`` of them. The number of steps
  then depends on the kinds of operators and the depth of the model, not on
  how many operators there are;
- `pack_signals`: the base signals that one set of merged steps writes in one
  role (say, every ensemble's input current, or every synapse's state) are
  packed into one base, in the order of the step's members, so that the step
  reads and writes one contiguous slice of one tensor; parameters are packed
  in the order of the first step that reads them. Another step that touches
  the same signals in another order reads them with one gather. The loop then
  carries a few dozen tensors instead of one per nengo signal.
"""

import heapq

import numpy as np
from nengo.builder.signal import Signal

from nengodl.ops import find_builder


def operator_order(operators, dg):
    """A topological order of ``operators`` that is the same in every run.

    nengo's ``toposort`` pops from sets of operators, whose order depends on
    memory addresses and so differs from one run (or process) to the next. The
    order decides how operators are merged and where their signals lie, and so
    the order of floating-point sums: with it, a seeded model would not give
    the same results twice (trained spiking models amplify the last-bit
    differences), and the workers of a multi-worker strategy would disagree on
    the order of their variables and collective operations. Ties are broken
    by position in ``operators`` (the builder's order) instead.

    Parameters
    ----------
    operators : list of Operator
        The model's operators in build order.
    dg : dict
        Operator -> set of operators that depend on it.

    Returns
    -------
    list of Operator
    """
    index = {op: i for i, op in enumerate(operators)}
    n_preds = dict.fromkeys(operators, 0)
    for op in operators:
        for d in dg.get(op, ()):
            n_preds[d] += 1
    ready = [index[op] for op in operators if n_preds[op] == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        op = operators[heapq.heappop(ready)]
        order.append(op)
        for d in sorted(dg.get(op, ()), key=index.get):
            n_preds[d] -= 1
            if n_preds[d] == 0:
                heapq.heappush(ready, index[d])
    return order


def merge_groups(operators, dg, dt):
    """Order operators by dependency level and group mergeable ones.

    Parameters
    ----------
    operators : list of Operator
        The operators in a topological order (`operator_order`).
    dg : dict
        Operator -> set of operators that depend on it.
    dt : float
        The time step (merge keys of filters depend on it).

    Returns
    -------
    operators : list
        The operators, ordered by level (a valid execution order).
    merged : dict
        Map from each merged operator to its group (a list, in execution
        order; the group runs where its first member stands).
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
        key_fn = getattr(find_builder(op), "merge_key", None)
        key = None if key_fn is None else key_fn(op, dt)
        if key is not None:
            groups.setdefault((level[op], key), []).append(op)
    merged = {}
    for group in groups.values():
        if len(group) >= find_builder(group[0]).merge_min:
            for op in group:
                merged[op] = group
    return ordered, merged


def holds_signals_elsewhere(op):
    """Whether ``op`` keeps signals in attributes other than its signal lists
    (so replacing the signals in those lists would leave it stale)."""
    for name, value in vars(op).items():
        if name.lstrip("_") in ("sets", "incs", "reads", "updates"):
            continue
        values = value.values() if isinstance(value, dict) else value
        values = values if isinstance(values, (list, tuple, type({}.values()))) else [values]
        if any(isinstance(v, Signal) for v in values):
            return True
    return False


def packable(base):
    """Whether ``base`` can move into a packed base: dense, floating point and
    C-contiguous."""
    if base.sparse:
        return False
    value = base.initial_value
    return value.dtype.kind == "f" and value.flags.c_contiguous


def packing_keys(ordered, merged, fixed):
    """``{base: (key, rank)}``: bases with equal keys are packed together, in
    the order of ``rank``.

    A state base's key is the sequence of steps that write it and the role it
    has in the first (its position among the first writer's written
    signals); a parameter's key is the first step that reads it and its role
    there. Its rank is the position of that operator in its step.
    """
    step_of, member = {}, {}
    for k, op in enumerate(ordered):
        if op in step_of:
            continue  # a member of a group met before
        for rank, other in enumerate(merged.get(op, [op])):
            step_of[other], member[other] = k, rank
    writers, readers, unsafe = {}, {}, set()
    for op in ordered:
        written = op.sets + op.incs + op.updates
        if holds_signals_elsewhere(op):
            unsafe.update(s.base for s in op.all_signals)
            continue
        for role, sig in enumerate(written):
            writers.setdefault(sig.base, []).append((step_of[op], role, member[op]))
        for role, sig in enumerate(op.reads):
            readers.setdefault(sig.base, []).append((step_of[op], role, member[op]))
    keys = {}
    for base, uses in list(writers.items()) + list(readers.items()):
        if base in keys or base in unsafe or base in fixed or not packable(base):
            continue
        step, role, rank = uses[0]
        if base in writers:
            steps = tuple(dict.fromkeys(u[0] for u in uses))
            key = ("state", steps, role, base.dtype.str)
        else:
            key = ("param", step, role, base.dtype.str)
        keys[base] = (key, (rank, len(keys)))
    return keys


def packed_views(bases, name):
    """A new base holding ``bases`` flattened and joined, and ``{base: first
    element}`` of each in it."""
    value = np.concatenate([np.asarray(b.initial_value).ravel() for b in bases])
    readonly = all(b.readonly for b in bases)
    packed = Signal(value, name=f"packed<{name}>", readonly=readonly)
    starts = np.cumsum([0] + [b.size for b in bases])
    return packed, dict(zip(bases, starts[:-1].tolist()))


def moved_view(sig, packed, start):
    """``sig`` (a base or a view of one) as a view of ``packed``, its base's
    elements starting at element ``start``."""
    buf = packed.initial_value
    size = buf.itemsize
    offset = (start + sig.elemoffset) * size
    strides = tuple(s * size for s in sig.elemstrides)
    value = np.ndarray(sig.shape, dtype=buf.dtype, buffer=buf, offset=offset, strides=strides)
    return Signal(value, name=sig.name, base=packed, readonly=sig.readonly, offset=offset)


def pack_signals(model, ordered, merged, fixed=()):
    """Pack the base signals of ``model`` by `packing_keys` (in place).

    Every operator's signal lists and ``model.sig`` are updated to views of
    the packed bases (as nengo's optimiser does when it merges signals).

    Parameters
    ----------
    model : nengo.builder.Model
        The built model.
    ordered, merged
        The operators and their merged groups (`merge_groups`).
    fixed : set of Signal
        Bases that keep their own tensor (the clock, fed inputs).

    Returns
    -------
    int
        The number of bases packed into others.
    """
    keys = packing_keys(ordered, merged, set(fixed))
    families = {}
    for base, (key, rank) in keys.items():
        families.setdefault(key, []).append((rank, base))
    starts = {}  # old base -> (packed base, first element)
    for family in families.values():
        if len(family) < 2:
            continue
        bases = [b for _, b in sorted(family, key=lambda f: f[0])]
        packed, offsets = packed_views(bases, bases[0].name)
        for b in bases:
            starts[b] = (packed, offsets[b])
    if not starts:
        return 0
    replaced = {}

    def moved(sig):
        # (a sparse signal is a base of its own, never packed; nengo's
        # ``Signal.sparse`` is the slowest of these tests)
        if not isinstance(sig, Signal) or sig.base not in starts or sig.sparse:
            return sig
        if sig not in replaced:
            replaced[sig] = moved_view(sig, *starts[sig.base])
        return replaced[sig]

    for op in ordered:
        op.sets = [moved(s) for s in op.sets]
        op.incs = [moved(s) for s in op.incs]
        op.reads = [moved(s) for s in op.reads]
        op.updates = [moved(s) for s in op.updates]
    for sigs in model.sig.values():
        for name, sig in sigs.items():
            sigs[name] = moved(sig)
    return len(starts)
