"""nengodl's output against nengo.Simulator's on small networks."""

import nengo
import numpy as np
import pytest

import nengodl
from nengodl.options import Options

TOL = {"float32": 1e-4, "float64": 1e-10}


def run_both(net, t=0.3, dtype="float64", **kwargs):
    with nengo.Simulator(net, progress_bar=False, **kwargs) as ref:
        ref.run(t)
    with nengodl.Simulator(net, progress_bar=False, dtype=dtype, **kwargs) as sim:
        sim.run(t)
    return ref, sim


def assert_probes_match(ref, sim, net, tol):
    for p in net.all_probes:
        assert sim.data[p].shape == ref.data[p].shape, p
        assert sim.data[p].dtype == ref.data[p].dtype, p
        np.testing.assert_allclose(sim.data[p], ref.data[p], atol=tol, rtol=0, err_msg=str(p))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_seed_network_matches_nengo(seed_net, dtype):
    ref, sim = run_both(seed_net, t=1.0, dtype=dtype, seed=0)
    # spike trains can differ by a flipped spike in float32; compare decoded values
    tol = TOL[dtype]
    np.testing.assert_allclose(sim.data[seed_net.inpt_p], ref.data[seed_net.inpt_p], atol=tol)
    np.testing.assert_allclose(
        sim.data[seed_net.outpt_p],
        ref.data[seed_net.outpt_p],
        atol=tol if dtype == "float64" else 1e-3,
    )
    if dtype == "float64":
        np.testing.assert_array_equal(sim.data[seed_net.spikes_p], ref.data[seed_net.spikes_p])


@pytest.mark.parametrize(
    "neuron_type",
    [
        nengo.LIF(),
        nengo.LIFRate(),
        nengo.RectifiedLinear(),
        nengo.SpikingRectifiedLinear(),
        nengo.Sigmoid(),
        nengo.Tanh(),
        nengo.RegularSpiking(nengo.Tanh()),
        nengo.RegularSpiking(nengo.LIFRate()),
        nengodl.SoftLIFRate(sigma=0.5),
        nengodl.LeakyReLU(negative_slope=0.1),
        nengodl.SpikingLeakyReLU(negative_slope=0.1),
    ],
)
def test_neuron_types_match_nengo(neuron_type):
    with nengo.Network(seed=1) as net:
        stim = nengo.Node(lambda t: np.sin(10 * t))
        ens = nengo.Ensemble(30, 1, neuron_type=neuron_type)
        out = nengo.Node(size_in=1)
        nengo.Connection(stim, ens)
        nengo.Connection(ens, out, synapse=0.01)
        nengo.Probe(ens.neurons)
        nengo.Probe(out)
        nengo.Probe(ens, synapse=0.005)
    ref, sim = run_both(net)
    assert_probes_match(ref, sim, net, TOL["float64"])


@pytest.mark.parametrize(
    "synapse",
    [
        None,
        nengo.Lowpass(0.01),
        nengo.Alpha(0.005),
        nengo.LinearFilter([1], [0.001, 0.05, 1]),
        nengo.LinearFilter([0.1, 1], [0.01, 1]),
        nengo.Triangle(0.01),
    ],
)
def test_synapses_match_nengo(synapse):
    with nengo.Network(seed=2) as net:
        stim = nengo.Node(lambda t: [np.sin(7 * t), np.cos(3 * t)])
        out = nengo.Node(size_in=2)
        nengo.Connection(stim, out, synapse=synapse)
        nengo.Probe(out)
        nengo.Probe(stim, synapse=synapse)
    ref, sim = run_both(net)
    assert_probes_match(ref, sim, net, TOL["float64"])


@pytest.mark.parametrize(
    "process",
    [
        nengo.processes.WhiteSignal(0.5, high=10),
        nengo.processes.WhiteNoise(),
        nengo.processes.BrownNoise(),
        nengo.processes.FilteredNoise(),
        nengo.processes.PresentInput([[0.1, 0.2], [0.3, -0.4], [0.5, 0.6]], 0.05),
        nengo.processes.Piecewise({0: [0.1, 0.2], 0.1: [0.5, -0.5], 0.2: [1, 0]}),
    ],
)
def test_input_processes_match_nengo(process):
    with nengo.Network(seed=3) as net:
        stim = nengo.Node(process, size_out=2)
        ens = nengo.Ensemble(20, 2)
        nengo.Connection(stim, ens)
        nengo.Probe(stim)
        nengo.Probe(ens, synapse=0.01)
    ref, sim = run_both(net, seed=5)
    assert_probes_match(ref, sim, net, TOL["float64"])


def test_transforms_slices_and_recurrence_match_nengo():
    with nengo.Network(seed=4) as net:
        stim = nengo.Node([0.3, -0.2, 0.5])
        a = nengo.Ensemble(40, 3)
        b = nengo.Ensemble(40, 2)
        integ = nengo.Ensemble(50, 1)
        direct = nengo.Ensemble(1, 2, neuron_type=nengo.Direct())
        nengo.Connection(stim, a)
        nengo.Connection(a[[0, 2]], b, transform=[[1, 0.5], [-0.5, 1]])
        nengo.Connection(a[1], b[0], function=lambda x: x**2)
        nengo.Connection(b[1], integ, synapse=0.1, transform=0.1)
        nengo.Connection(integ, integ, synapse=0.1)
        nengo.Connection(b, direct, function=lambda x: [x[0] * x[1], x[0]])
        nengo.Connection(a.neurons, b.neurons, transform=np.ones((40, 40)) * -1e-4)
        nengo.Connection(
            a.neurons,
            b.neurons,
            transform=nengo.transforms.Sparse(
                (40, 40), indices=[[0, 1], [1, 2], [5, 5]], init=[0.03, -0.04, 0.02]
            ),
        )
        for obj in [a, b, integ, direct, a.neurons]:
            nengo.Probe(obj)
    ref, sim = run_both(net)
    assert_probes_match(ref, sim, net, TOL["float64"])


@pytest.mark.parametrize("optimize", [True, False])
@pytest.mark.parametrize("jit", [True, False])
def test_optimisation_switches_leave_output_unchanged(seed_net, optimize, jit):
    with nengo.Simulator(seed_net, progress_bar=False, seed=0, optimize=optimize) as ref:
        ref.run(0.3)
    with nengodl.Simulator(
        seed_net,
        progress_bar=False,
        dtype="float64",
        seed=0,
        optimize=optimize,
        jit=jit,
        options=Options(xla_after_steps=0),  # XLA (where jit) from the first run
    ) as sim:
        assert sim.jit == jit
        sim.run(0.3)
    assert_probes_match(ref, sim, seed_net, TOL["float64"])


@pytest.mark.parametrize("jit", [True, False])
def test_unrolled_loop_matches_nengo(seed_net, jit):
    # 3 steps per iteration; runs of 10 and 7 steps leave steps for the single-step loop
    with nengo.Simulator(seed_net, progress_bar=False, seed=0) as ref:
        ref.run_steps(10)
        ref.run_steps(7)
    with nengodl.Simulator(
        seed_net,
        progress_bar=False,
        dtype="float64",
        seed=0,
        jit=jit,
        unroll_simulation=3,
        options=Options(xla_after_steps=0),
    ) as sim:
        sim.run_steps(10)
        sim.run_steps(7)
    assert_probes_match(ref, sim, seed_net, TOL["float64"])


def test_unroll_simulation_must_be_a_positive_integer(seed_net):
    with pytest.raises(nengo.exceptions.ValidationError, match="unroll_simulation"):
        nengodl.Simulator(seed_net, progress_bar=False, unroll_simulation=0)


def test_sample_every_and_weight_probes_match_nengo():
    with nengo.Network(seed=6) as net:
        stim = nengo.Node(np.sin)
        ens = nengo.Ensemble(10, 1)
        ens2 = nengo.Ensemble(10, 1)
        nengo.Connection(stim, ens)
        conn = nengo.Connection(ens, ens2)
        nengo.Probe(ens, sample_every=0.003, synapse=0.01)
        nengo.Probe(conn, "weights", sample_every=0.01)
        nengo.Probe(ens.neurons, "voltage", sample_every=0.0025)
    ref, sim = run_both(net, t=0.1)
    assert_probes_match(ref, sim, net, TOL["float64"])
    np.testing.assert_allclose(sim.trange(sample_every=0.003), ref.trange(sample_every=0.003))


def test_consecutive_runs_accumulate_like_nengo(seed_net):
    with nengo.Simulator(seed_net, seed=0, progress_bar=False) as ref:
        ref.run(0.5)
    with nengodl.Simulator(seed_net, seed=0, progress_bar=False, dtype="float64") as sim:
        sim.run(0.2)
        sim.run_steps(100)
        for _ in range(3):
            sim.step()
        sim.run(0.197)
        assert sim.n_steps == 500
        assert np.isclose(sim.time, 0.5)
        np.testing.assert_allclose(sim.trange(), ref.trange())
    assert_probes_match(ref, sim, seed_net, TOL["float64"])


def test_reset_restarts_and_reseeds(seed_net):
    with nengodl.Simulator(seed_net, seed=0, progress_bar=False) as sim:
        sim.run(0.1)
        first = sim.data[seed_net.inpt_p].copy()
        sim.reset()
        assert sim.n_steps == 0 and sim.data[seed_net.inpt_p].shape[0] == 0
        sim.run(0.1)
        np.testing.assert_array_equal(sim.data[seed_net.inpt_p], first)
        sim.reset(seed=10)
        sim.run(0.1)
        assert not np.allclose(sim.data[seed_net.inpt_p], first)
    with nengo.Simulator(seed_net, seed=10, progress_bar=False) as ref:
        ref.run(0.1)
    np.testing.assert_allclose(sim.data[seed_net.inpt_p], ref.data[seed_net.inpt_p], atol=1e-6)


def test_built_parameters_are_nengos(seed_net):
    with nengo.Simulator(seed_net, progress_bar=False) as ref:
        pass
    with nengodl.Simulator(seed_net, progress_bar=False) as sim:
        pass
    for ens in seed_net.all_ensembles:
        for attr in ["encoders", "gain", "bias", "scaled_encoders", "eval_points"]:
            np.testing.assert_array_equal(
                getattr(sim.data[ens], attr), getattr(ref.data[ens], attr)
            )
    for conn in seed_net.all_connections:
        np.testing.assert_array_equal(sim.data[conn].weights, ref.data[conn].weights)


@pytest.mark.parametrize("shard_bytes, drop_transient", [(0, False), (0, True), (1, True)])
def test_minibatch_shards_match_nengo_item_by_item(shard_bytes, drop_transient):
    # shard_bytes=1 splits the minibatch into one loop per item (0: one loop);
    # each item has its own input and its own PES-learned weights
    options = Options(
        shard_bytes=shard_bytes,
        drop_transient=drop_transient,
        op_bytes=0,
        shard_workers=2,
        xla_after_steps=0,
    )
    n_items, steps = 4, (30, 20)
    inputs = (
        np.sin(np.linspace(0, 3, sum(steps)))[None, :, None]
        * np.linspace(-1, 1, n_items)[:, None, None]
    )

    def network(node_output):
        with nengo.Network(seed=3) as net:
            net.inp = nengo.Node(node_output, size_out=1)
            a = nengo.Ensemble(40, 1)
            b = nengo.Node(size_in=1)
            nengo.Connection(net.inp, a)
            conn = nengo.Connection(a, b, learning_rule_type=nengo.PES(1e-3))
            nengo.Connection(b, conn.learning_rule)
            nengo.Connection(net.inp, conn.learning_rule, transform=-1)
            net.ps = [
                nengo.Probe(b, synapse=0.01),
                nengo.Probe(a.neurons, "voltage"),
                nengo.Probe(conn, "weights"),
            ]
        return net

    net = network(np.zeros(1))
    with nengodl.Simulator(
        net, minibatch_size=n_items, dtype="float64", progress_bar=False, options=options
    ) as sim:
        assert sim.jit
        assert sim.runner.xla.shard == (1 if shard_bytes else n_items)
        # the neurons' input current is set before it is read, every step
        names = [b.name for b in sim.loop.transient]
        assert any("neuron_in" in name for name in names) == drop_transient, names
        done = 0
        for n in steps:
            sim.run_steps(n, data={net.inp: inputs[:, done : done + n]})
            done += n
    for item in range(n_items):
        ref_net = network(lambda t, x=inputs[item, :, 0]: x[round(t / 0.001) - 1])
        with nengo.Simulator(ref_net, progress_bar=False) as ref:
            ref.run_steps(sum(steps))
        for p, ref_p in zip(net.ps, ref_net.ps):
            np.testing.assert_allclose(
                sim.data[p][item], ref.data[ref_p], atol=TOL["float64"], rtol=0, err_msg=str(p)
            )


@pytest.mark.parametrize("xla_max_steps", [0, 600], ids=["graph", "xla"])
def test_merged_inputs_read_in_parts_match_nengo(xla_max_steps):
    """A chain of ensembles connected neuron to neuron: nengo's merger joins their
    inputs into one signal, which each step writes and reads in parts (read
    through the pending writes, not rebuilt for each read)."""
    with nengo.Network(seed=2) as net:
        stim = nengo.Node(lambda t: [np.sin(6 * t), np.cos(4 * t)])
        relu = nengo.RectifiedLinear()
        rates = nengo.dists.Uniform(10, 20)  # spike-free outputs of a few units
        prev = nengo.Ensemble(30, 2, neuron_type=relu, max_rates=rates)
        nengo.Connection(stim, prev)
        probes = []
        for k in range(5):
            ens = nengo.Ensemble(30 + 5 * k, 1, neuron_type=relu, max_rates=rates)
            weights = np.random.RandomState(k).uniform(
                -0.02, 0.02, (ens.n_neurons, prev.n_neurons)
            )
            nengo.Connection(prev.neurons, ens.neurons, transform=weights, synapse=None)
            nengo.Connection(stim[k % 2], ens.neurons, transform=np.full((ens.n_neurons, 1), 0.01))
            probes.append(nengo.Probe(ens.neurons))
            prev = ens
    with nengo.Simulator(net, progress_bar=False) as ref:
        ref.run(0.1)
    options = Options(xla_max_steps=xla_max_steps)
    with nengodl.Simulator(net, dtype="float64", progress_bar=False, options=options) as sim:
        sim.run(0.1)
        merged = [b for b in sim.plan.layout.state_bases if b.name.startswith("merged<")]
    assert any("neuron_in" in b.name for b in merged)  # the case in question
    assert bool(sim.jit) == (xla_max_steps > 0)
    assert_probes_match(ref, sim, net, TOL["float64"])
