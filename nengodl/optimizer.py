"""nengo's operator merges, made the same way in every process and thread.

`optimize` merges a built model's operators with nengo's own merge rules (its
`~nengo.builder.optimizer.OpMergePass` and the mergers registered there), so
the merged operators and signals are the ones nengo would make. It differs
from `nengo.builder.optimizer.optimize` in three ways, none of which changes
anything in nengo's modules (a `nengo.Simulator` built at the same time, in
another thread, is untouched):

- **Order.** nengo's pass keeps the operators that might still merge in a
  plain set and tries them in that set's order, which follows memory
  addresses. `OrderedMergePass` keeps them in the dependency graph's order
  (the builder's), so the merges, the layout of signals and the order of
  floating-point sums are the same in every run.
- **When to stop.** nengo stops early when a pass removes operators more
  slowly, in operators per second, than a hundredth of its mean rate: on a
  loaded machine the same model then stops after other passes (one nengo-spa
  model gave 434 plan steps in one process and 455 in another). `optimize`
  measures the rate per pass instead of per second, which does not depend on
  the machine.
- **Speed.** At the start of each pass, nengo computes every operator's set of
  (direct and indirect) dependents as ordered sets whose hashing runs in
  Python, about half of the optimiser's time. `transitive_closure` makes the
  same sets as frozensets; the pass only tests membership and disjointness
  of these sets and copies them, so their order does not matter.
"""

import logging

from nengo.builder.optimizer import OpMergePass
from nengo.utils.graphs import toposort
from nengo.utils.graphs import transitive_closure as nengo_closure
from nengo.utils.stdlib import OrderedSet

logger = logging.getLogger(__name__)

#: A pass that removes fewer operators than this fraction of the mean removed
#: per pass so far ends the optimisation (nengo's threshold, per pass).
DIMINISHING_RETURNS = 0.01


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


class OrderedMergePass(OpMergePass):
    """nengo's optimisation pass, trying operators in a fixed order and with a
    choice of transitive closure (see the module's docstring).

    Parameters
    ----------
    dg : dict
        The operator dependency graph.
    closure : callable
        ``closure(edges)`` -> ``{op: set of its dependents}``.
    """

    def __init__(self, dg, closure=transitive_closure):
        super().__init__(dg)
        self.might_merge = OrderedSet(dg)
        self.closure = closure

    def __call__(self, only_merge_ops_with_view):
        """One pass over the operators (as nengo's, with ``self.closure``)."""
        self.dependents = self.closure(self.dg.forward)
        self.only_merge_ops_with_view = only_merge_ops_with_view
        self.merged.clear()
        self.merged_dependents.clear()
        self.opinfo.clear()
        self.perform_merges()


def optimize(model, dg, options=None):
    """Merge ``model``'s operators in place, as `nengo.builder.optimizer.optimize`.

    Passes merge operators whose signals are views of one base first; when
    those stop merging, a pass merges operators without views (which makes new
    views), and so on, until neither kind merges or a pass gives diminishing
    returns (`DIMINISHING_RETURNS`).

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
    fast = options is None or options.fast_closure
    merge_pass = OrderedMergePass(dg, transitive_closure if fast else nengo_closure)
    n_initial = len(dg)
    n_passes, views_only, before, after = 0, True, None, n_initial
    while views_only or after < before:
        views_only = before is None or before != after
        before = len(merge_pass.dg.forward)
        merge_pass(views_only)
        after = len(merge_pass.dg.forward)
        n_passes += 1
        kind = "views" if views_only else "other"
        logger.debug("%s pass: %d to %d operators", kind, before, after)
        mean_removed = (n_initial - after) / n_passes
        if 0 < before - after < DIMINISHING_RETURNS * mean_removed:
            break

    for sigdict in model.sig.values():
        for name, sig in sigdict.items():
            while sig in merge_pass.sig_replacements:
                sig = merge_pass.sig_replacements[sig]
            sigdict[name] = sig
    del model.operators[:]
    for op in dg:
        model.add_op(op)
