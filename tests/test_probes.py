"""Probes against nengo.Simulator: filtered multi-dimensional signals and `sim.data.raw`."""

import nengo
import numpy as np
import pytest

import nengodl


def learning_net(synapse):
    with nengo.Network(seed=3) as net:
        stim = nengo.Node(lambda t: np.sin(8 * t))
        a = nengo.Ensemble(10, 1)
        b = nengo.Ensemble(10, 1)
        nengo.Connection(stim, a)
        conn = nengo.Connection(
            a.neurons, b.neurons, transform=np.zeros((10, 10)), learning_rule_type=nengo.BCM()
        )
        net.weights = nengo.Probe(conn, "weights", synapse=synapse)
        net.plain = nengo.Probe(conn, "weights")
    return net


@pytest.mark.parametrize(
    "synapse", [0.01, nengo.Alpha(0.005), nengo.LinearFilter([1], [0.01, 1], analog=True)]
)
def test_filtered_weights_probe_matches_nengo(synapse):
    # a synapse on a (10, 10) signal: the filter's state is (n_x, 10, 10)
    net = learning_net(synapse)
    with nengo.Simulator(net, progress_bar=False) as ref:
        ref.run_steps(60)
    with nengodl.Simulator(net, dtype="float64", progress_bar=False) as sim:
        sim.run_steps(60)
    assert sim.data[net.weights].shape == (60, 10, 10)
    assert np.abs(ref.data[net.weights]).max() > 1e-8  # the weights do change
    np.testing.assert_allclose(sim.data[net.weights], ref.data[net.weights], atol=1e-10, rtol=0)
    np.testing.assert_allclose(sim.data[net.plain], ref.data[net.plain], atol=1e-10, rtol=0)


def voltage_net():
    with nengo.Network(seed=1) as net:
        stim = nengo.Node(np.sin)
        ens = nengo.Ensemble(5, 1)
        nengo.Connection(stim, ens)
        net.voltage = nengo.Probe(ens.neurons, "voltage")
        net.decoded = nengo.Probe(ens, synapse=0.01)
    return net


def gui_loop(sim, probe, n_steps=20, every=3):
    """What nengo-gui does: step, read the raw samples, clear them."""
    seen = []
    for i in range(n_steps):
        sim.step()
        if i % every == 0:
            samples = sim.data.raw[probe]
            seen.append((len(samples), np.array(samples[:]), np.array(samples[0])))
            del sim.data.raw[probe][:]
    return seen


def test_raw_read_clear_and_keep_recording_as_nengo():
    net = voltage_net()
    with nengo.Simulator(net, progress_bar=False) as ref:
        expected = gui_loop(ref, net.voltage)
        ref_decoded = ref.data[net.decoded].copy()
    with nengodl.Simulator(net, dtype="float64", progress_bar=False) as sim:
        got = gui_loop(sim, net.voltage)
        assert len(sim.data.raw[net.voltage]) == 1  # step 19 was recorded after the last clear
        # data[] shows what raw holds; the other probe kept all its samples
        np.testing.assert_array_equal(
            sim.data[net.voltage], np.array(sim.data.raw[net.voltage][:])
        )
        np.testing.assert_allclose(sim.data[net.decoded], ref_decoded, atol=1e-10)
        assert sim.data.raw[net.voltage][0].shape == (5,)
        assert sim.data.raw[net.decoded.target].encoders.shape == (5, 1)  # built params
    assert [n for n, _, _ in got] == [n for n, _, _ in expected]
    for (_, samples, first), (_, ref_samples, ref_first) in zip(got, expected):
        np.testing.assert_allclose(samples, ref_samples, atol=1e-10, rtol=0)
        np.testing.assert_allclose(first, ref_first, atol=1e-10, rtol=0)


def test_raw_partial_delete_and_minibatch_items():
    net = voltage_net()
    with nengodl.Simulator(net, minibatch_size=2, progress_bar=False) as sim:
        sim.run_steps(6)
        full = sim.data[net.voltage].copy()  # (2, 6, 5)
        samples = sim.data.raw[net.voltage]
        assert len(samples) == 6 and samples[0].shape == (2, 5)
        del samples[1:3]
        np.testing.assert_array_equal(sim.data[net.voltage], full[:, [0, 3, 4, 5]])
        sim.run_steps(2)
        assert sim.data[net.voltage].shape == (2, 6, 5)


def test_data_get_params_gives_current_values_of_each_pair():
    # NengoDL 3.6's sim.data.get_params((obj, attr), ...): sim.data[obj].attr for each
    with nengo.Network(seed=1) as net:
        a = nengo.Ensemble(5, 1)
        b = nengo.Ensemble(5, 1)
        conn = nengo.Connection(a, b)
    with nengo.Simulator(net, progress_bar=False) as ref:
        pass
    with nengodl.Simulator(net, progress_bar=False) as sim:
        gain, weights = sim.data.get_params((a, "gain"), (conn, "weights"))
        np.testing.assert_array_equal(gain, ref.data[a].gain)
        np.testing.assert_allclose(weights, ref.data[conn].weights, rtol=1e-6)
        assert sim.data.get_params() == []
        with pytest.raises(nengo.exceptions.ValidationError, match="pairs"):
            sim.data.get_params(a)
