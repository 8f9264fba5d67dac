"""nengo's operator-merging optimiser, run with a faster transitive closure.

nengo's optimiser recomputes, at the start of each of its passes, every
operator's set of (direct and indirect) dependents. nengo builds each set as an
ordered set whose hash and equality run in Python, and that takes about half
of the optimiser's time (0.7 of 1.3 s for the circular convolution benchmark).
`optimize` runs nengo's own optimiser with `transitive_closure` in its place:
the same sets as frozensets. The optimiser only iterates over these sets, tests
membership and disjointness, and copies them into plain sets, so their order
does not matter and the merges it makes are nengo's.

nengo's optimiser also keeps the operators that might still merge in a plain
set, and tries them in that set's order, which follows memory addresses: the
merges (and so the layout of signals, and the order of floating-point sums)
differ from one run of the same model to the next. `optimize` keeps that set
in the dependency graph's order (the builder's), so a model is merged the same
way every time.
"""

import threading

import nengo.builder.optimizer as nengo_optimizer
from nengo.utils.graphs import toposort
from nengo.utils.stdlib import OrderedSet

from nengodl.options import deprecated_names

_LOCK = threading.Lock()


def transitive_closure(edges, topo_sorted=None):
    """Everything that depends on each vertex of a directed acyclic graph.

    Parameters
    ----------
    edges : dict
        ``{a: {b, c}}`` where ``b`` and ``c`` depend on ``a``.
    topo_sorted : sequence, optional
        The vertices in topological order (computed if not given).

    Returns
    -------
    dict
        ``{a: frozenset}`` of the vertices that depend on ``a`` directly or
        indirectly; equal sets are one object, which saves memory in large
        models (as nengo's does).

    Examples
    --------
    >>> closure = transitive_closure({1: {2}, 2: {3}, 3: set(), 4: {3}})
    >>> {k: sorted(v) for k, v in sorted(closure.items())}
    {1: [2, 3], 2: [3], 3: [], 4: [3]}
    """
    order = toposort(edges) if topo_sorted is None else topo_sorted
    reached, shared = {}, {}
    for vertex in reversed(order):
        found = set(edges[vertex])
        for child in edges[vertex]:
            found |= reached[child]
        found = frozenset(found)
        reached[vertex] = shared.setdefault(found, found)
    return reached


class OrderedMergePass(nengo_optimizer.OpMergePass):
    """nengo's optimisation pass, trying operators in a fixed order (see the
    module's docstring)."""

    def __init__(self, dg):
        super().__init__(dg)
        self.might_merge = OrderedSet(dg)


def optimize(model, dg, options=None):
    """Merge ``model``'s operators in place, as `nengo.builder.optimizer.optimize`.

    Parameters
    ----------
    model : nengo.builder.Model
        The built model; its operators and signals are replaced by merged ones.
    dg : dict
        The operator dependency graph (op -> ops that depend on it), updated
        in place.
    options : Options, optional
        With ``fast_closure=False``, nengo's own transitive closure is used
        (for measuring; the merges are the same).
    """
    replaced = {"OpMergePass": OrderedMergePass}
    if options is None or options.fast_closure:
        replaced["transitive_closure"] = transitive_closure
    with _LOCK:  # nengo's module attributes are swapped for the call only
        original = {name: getattr(nengo_optimizer, name) for name in replaced}
        for name, value in replaced.items():
            setattr(nengo_optimizer, name, value)
        try:
            nengo_optimizer.optimize(model, dg)
        finally:
            for name, value in original.items():
                setattr(nengo_optimizer, name, value)


deprecated_names(__name__)
