"""nengo's optimiser with nengodl's transitive closure: nengo's sets, nengo's output."""

import nengo
import nengo.builder.optimizer as nengo_optimizer
import numpy as np
import pytest
from nengo.utils.graphs import transitive_closure as nengo_closure
from nengo.utils.simulator import operator_dependency_graph

import nengodl
from nengodl import optimizer
from nengodl.options import Options


def random_dag(rng, n, p):
    """Edges ``i -> j`` for ``i < j`` with probability ``p``, in shuffled vertex order."""
    names = [f"v{k}" for k in rng.permutation(n)]
    return {names[i]: {names[j] for j in range(i + 1, n) if rng.rand() < p} for i in range(n)}


@pytest.mark.parametrize("n, p", [(1, 0.5), (30, 0.1), (60, 0.3)])
def test_closure_matches_nengo(n, p):
    edges = random_dag(np.random.RandomState(n), n, p)
    ours, theirs = optimizer.transitive_closure(edges), nengo_closure(edges)
    assert ours.keys() == theirs.keys()
    assert all(ours[v] == set(theirs[v]) for v in edges)
    # equal sets are shared, as in nengo
    by_value = {}
    assert all(by_value.setdefault(s, s) is s for s in ours.values())


def integrator_net():
    with nengo.Network(seed=3) as net:
        stim = nengo.Node(np.sin)
        ens = nengo.networks.EnsembleArray(20, 4)
        nengo.Connection(stim, ens.input, transform=np.ones((4, 1)), synapse=0.05)
        nengo.Connection(ens.output, ens.input, synapse=0.1)
        net.p = nengo.Probe(ens.output, synapse=0.01)
    return net


def test_closure_matches_nengo_on_a_model():
    model = nengo.builder.Model()
    model.build(integrator_net())
    dg = operator_dependency_graph(model.operators)
    ours, theirs = optimizer.transitive_closure(dg), nengo_closure(dg)
    assert all(ours[op] == set(theirs[op]) for op in dg)


def module_attributes(*modules):
    return [dict(vars(m)) for m in modules]


def test_optimize_uses_the_closure_and_changes_nothing_in_nengo(monkeypatch):
    watched = (nengo_optimizer, nengo.utils.graphs, nengo.builder)
    before = module_attributes(*watched)
    calls, closure = [], optimizer.transitive_closure

    def spy(edges, topo_sorted=None):
        # nengo's modules are as they were while nengodl merges
        calls.append(module_attributes(*watched) == before)
        return closure(edges, topo_sorted)

    monkeypatch.setattr(optimizer, "transitive_closure", spy)
    model = nengo.builder.Model()
    model.build(integrator_net())
    n_before = len(model.operators)
    optimizer.optimize(model, operator_dependency_graph(model.operators))
    assert calls and all(calls) and len(model.operators) < n_before
    assert module_attributes(*watched) == before


def test_optimize_merges_as_nengo_does():
    # the same merged operators as nengo's optimiser (ours only fixes the order
    # in which they are tried; this model has one way to merge)
    def merged(optimize):
        with nengo.Network(seed=1) as net:
            ens = nengo.networks.EnsembleArray(10, 5)
            nengo.Probe(ens.output)
        model = nengo.builder.Model()
        model.build(net)
        optimize(model, operator_dependency_graph(model.operators))
        return sorted(
            (type(op).__name__, tuple(s.shape for s in op.all_signals)) for op in model.operators
        )

    assert merged(optimizer.optimize) == merged(nengo_optimizer.optimize)


@pytest.mark.parametrize("fast", [True, False])
def test_optimised_model_runs_as_nengo(fast):
    net = integrator_net()
    with nengo.Simulator(net, progress_bar=False) as ref:
        ref.run_steps(200)
    options = Options(fast_closure=fast)
    with nengodl.Simulator(net, dtype="float64", progress_bar=False, options=options) as sim:
        sim.run_steps(200)
    np.testing.assert_allclose(sim.data[net.p], ref.data[net.p], atol=1e-10, rtol=0)


def merged_layout(model):
    """The operators of ``model`` in order, each with its signals as (base
    number in order of first use, shape, offset): the same for two builds
    exactly where the merges and signal layouts are the same."""
    bases = {}
    return [
        (
            type(op).__name__,
            tuple(
                (bases.setdefault(s.base, len(bases)), s.shape, s.elemoffset)
                for s in op.all_signals
            ),
        )
        for op in model.operators
    ]


@pytest.mark.parametrize("fast", [True, False])
def test_optimize_merges_a_model_the_same_way_every_time(fast):
    # nengo's optimiser tries operators in the order of a set of them, which
    # follows memory addresses: new builds of one network differ in the order
    # of merged signals (and so of floating-point sums)
    def build():
        with nengo.Network(seed=0) as net:
            stim = nengo.Node(np.zeros(3))
            ens = [nengo.Ensemble(10, 3) for _ in range(6)]
            for a, b in zip(ens, ens[1:] + ens[:1]):
                nengo.Connection(stim, a, synapse=0.1)
                nengo.Connection(a, b, synapse=0.01)
                nengo.Probe(a, synapse=0.01)
        model = nengo.builder.Model()
        model.build(net)
        optimizer.optimize(
            model, operator_dependency_graph(model.operators), Options(fast_closure=fast)
        )
        return model

    models = [build() for _ in range(4)]  # all alive: each at other addresses
    layouts = [merged_layout(m) for m in models]
    assert len(layouts[0]) < 40  # merged (97 operators before)
    assert all(layout == layouts[0] for layout in layouts[1:])
