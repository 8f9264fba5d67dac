"""Minibatched simulation and run-time input data."""

import nengo
import numpy as np
import pytest
from nengo.exceptions import SimulatorClosed, ValidationError

import nengodl


def test_minibatch_items_are_independent_and_reproducible(seed_net):
    with nengodl.Simulator(seed_net, minibatch_size=3, seed=0, progress_bar=False) as sim:
        sim.run(0.5)
        x = sim.data[seed_net.inpt_p]
    assert x.shape == (3, 500, 1)
    assert not np.allclose(x[0], x[1]) and not np.allclose(x[1], x[2])
    with nengodl.Simulator(seed_net, minibatch_size=3, seed=0, progress_bar=False) as sim2:
        sim2.run(0.5)
    np.testing.assert_array_equal(sim2.data[seed_net.inpt_p], x)
    # item 0 is the simulation nengo runs with the same seed
    with nengo.Simulator(seed_net, seed=0, progress_bar=False) as ref:
        ref.run(0.5)
    np.testing.assert_allclose(x[0], ref.data[seed_net.inpt_p], atol=1e-6)


def ramp_network(fn):
    with nengo.Network(seed=1) as net:
        net.inp = nengo.Node(fn)
        net.ens = nengo.Ensemble(30, 1)
        nengo.Connection(net.inp, net.ens)
        net.p_in = nengo.Probe(net.inp)
        net.p = nengo.Probe(net.ens, synapse=0.01)
    return net


@pytest.mark.parametrize("output", [nengo.processes.WhiteNoise(), lambda t: 0.0, [0.2]])
def test_data_overrides_input_node_like_a_nengo_node(output):
    n = 200
    dt = 0.001
    ramps = np.linspace(0.5, 1, 2)[:, None, None] * np.linspace(-1, 1, n)[None, :, None]
    net = ramp_network(output)
    with nengodl.Simulator(net, minibatch_size=2, progress_bar=False, dtype="float64") as sim:
        sim.run_steps(n, data={net.inp: ramps})
        # a second run continues where the first left off
        sim.run_steps(n, data={net.inp: ramps[:, ::-1]})
    for i in range(2):
        seq = np.concatenate([ramps[i], ramps[i, ::-1]])
        ref_net = ramp_network(lambda t, seq=seq: seq[round(t / dt) - 1])
        with nengo.Simulator(ref_net, progress_bar=False) as ref:
            ref.run_steps(2 * n)
        np.testing.assert_allclose(sim.data[net.p_in][i], ref.data[ref_net.p_in], atol=1e-12)
        np.testing.assert_allclose(sim.data[net.p][i], ref.data[ref_net.p], atol=1e-10)


def test_data_without_minibatch_has_batch_axis_of_one(seed_net):
    ramp = np.reshape(np.linspace(-1, 1, 100), (1, 100, 1))
    with nengodl.Simulator(seed_net, progress_bar=False) as sim:
        sim.run(0.1, data={seed_net.inpt: ramp})
        np.testing.assert_allclose(sim.data[seed_net.inpt_p], ramp[0], atol=1e-6)
        # without data, the node's own output comes back
        sim.run(0.1)
        assert not np.allclose(sim.data[seed_net.inpt_p][100:], ramp[0])


def bad_data_cases(net):
    other = nengo.Node(0, add_to_container=False)
    good = np.zeros((2, 10, 1))
    return [
        ({net.inpt: np.zeros((2, 9, 1))}, r"shape \(2, 9, 1\).*\(2, 10, 1\)"),
        ({net.inpt: np.zeros((3, 10, 1))}, r"\(3, 10, 1\).*\(2, 10, 1\)"),
        ({net.inpt: np.zeros((2, 10, 2))}, r"expected"),
        ({net.inpt: np.zeros((10, 1))}, r"expected"),
        ({net.outpt: good}, r"takes input"),
        ({other: good}, r"not an input Node"),
        ({net.outpt_p: good}, r"Keys must be input Nodes"),
        ({net.inpt: np.full((2, 10, 1), "a")}, r"numeric"),
        ([good], r"dict"),
    ]


def test_bad_data_gives_clear_errors_and_keeps_state(seed_net):
    with nengodl.Simulator(seed_net, minibatch_size=2, progress_bar=False) as sim:
        sim.run_steps(10)
        before = sim.data[seed_net.outpt_p].copy()
        for data, match in bad_data_cases(seed_net):
            with pytest.raises(ValidationError, match=match):
                sim.run_steps(10, data=data)
        for t in [-1, np.nan, np.inf, "x"]:
            with pytest.raises(ValidationError):
                sim.run(t)
        with pytest.raises(ValidationError):
            sim.run_steps(-3)
        assert sim.n_steps == 10
        np.testing.assert_array_equal(sim.data[seed_net.outpt_p], before)
        sim.run_steps(10)
        assert sim.data[seed_net.outpt_p].shape == (2, 20, 1)
        np.testing.assert_array_equal(sim.data[seed_net.outpt_p][:, :10], before)


def test_closed_simulator_refuses_to_run_but_keeps_data(seed_net):
    with nengodl.Simulator(seed_net, progress_bar=False) as sim:
        sim.run_steps(5)
    assert sim.closed
    with pytest.raises(SimulatorClosed):
        sim.run(0.1)
    with pytest.raises(SimulatorClosed):
        sim.reset()
    assert sim.data[seed_net.inpt_p].shape == (5, 1)


def test_bad_constructor_arguments(seed_net):
    with pytest.raises(ValidationError, match="minibatch_size"):
        nengodl.Simulator(seed_net, minibatch_size=0, progress_bar=False)
    with pytest.raises(ValidationError, match="dtype"):
        nengodl.Simulator(seed_net, dtype="int8", progress_bar=False)


def test_node_function_errors_are_nengos():
    with nengo.Network() as net:
        a = nengo.Node([1.0])
        b = nengo.Node(lambda t, x: np.nan * x, size_in=1)
        nengo.Connection(a, b)
        p = nengo.Probe(a)
    with nengodl.Simulator(net, progress_bar=False) as sim:
        with pytest.raises(nengo.exceptions.SimulationError, match="non-finite"):
            sim.run_steps(3)
        assert sim.data[p].shape == (0, 1)


def test_progress_bar_output(seed_net, capsys):
    with nengodl.Simulator(seed_net, progress_bar=True) as sim:
        sim.run_steps(5)
        out = capsys.readouterr().out
        for stage in ["Build", "Optimization", "Construction", "Compilation", "Simulation"]:
            assert f"{stage} finished in 0:00:" in out
        for n in [7, 20, 1500]:  # one compiled loop serves every run length
            sim.run_steps(n)
            out = capsys.readouterr().out
            assert "Compilation" not in out and "Simulation finished" in out
    with nengodl.Simulator(seed_net, progress_bar=False) as sim:
        sim.run_steps(5)
    assert capsys.readouterr().out == ""


def test_training_data_refuses_nodes_as_run_steps_does(seed_net):
    # one validator of input Nodes: train, loss and predict name the Node and the
    # reason with the words run_steps uses
    other = nengo.Node(0, add_to_container=False)
    x, y = np.zeros((2, 10, 1)), np.zeros((2, 10, 1))
    with nengodl.Simulator(seed_net, minibatch_size=2, progress_bar=False) as sim:
        for node, match in [(seed_net.outpt, "takes input"), (other, "not an input Node")]:
            with pytest.raises(ValidationError, match=match):
                sim.loss({node: x, seed_net.outpt_p: y})
            with pytest.raises(ValidationError, match=match):
                sim.predict({node: x}, verbose=0)
            with pytest.raises(ValidationError, match=match):
                sim.run_steps(10, data={node: x})
