"""Trainable synapse time constants (NengoDL's open issue #60), against nengo and
finite differences: untrained they are nengo's Lowpass, training finds the time
constant that made the target, and the trained value is saved, loaded and frozen."""

import keras
import nengo
import numpy as np
import pytest

import nengodl
from nengodl.training.gradients import check_gradients

N_STEPS = 200


def stimulus(t):
    return np.sin(20 * t) + (t > 0.05)


def filter_net(tau, setting=True, synapse=None):
    with nengo.Network(seed=0) as net:
        if setting is not None:
            nengodl.configure_settings(trainable_synapses=setting)
        net.inp = nengo.Node(stimulus)
        net.out = nengo.Node(size_in=1)
        syn = nengo.Lowpass(tau) if synapse is None else synapse
        net.conn = nengo.Connection(net.inp, net.out, synapse=syn)
        net.p = nengo.Probe(net.out)
    return net


def nengo_output(net):
    with nengo.Simulator(net, progress_bar=False) as ref:
        ref.run_steps(N_STEPS)
    return ref.data[net.p]


def data(target_tau):
    """The stimulus and, as the target, nengo's output through Lowpass(target_tau)."""
    t = 0.001 * np.arange(1, N_STEPS + 1)
    x = stimulus(t)[None, :, None]
    return x, nengo_output(filter_net(target_tau, setting=None))[None]


def test_untrained_time_constant_is_nengos_lowpass():
    net = filter_net(0.05)
    ref = nengo_output(net)
    with nengodl.Simulator(net, progress_bar=False, dtype="float64") as sim:
        assert sim.model.sig[net.conn]["log_tau"] in sim.plan.trainable_sigs
        sim.run_steps(N_STEPS - 1)
        sim.step()  # the numpy step too
        np.testing.assert_allclose(sim.data[net.p], ref, atol=1e-10)


def test_gradient_of_the_time_constant_matches_finite_differences():
    net = filter_net(0.05)
    x, y = data(0.01)
    with nengodl.Simulator(net, progress_bar=False, dtype="float64") as sim:
        worst = check_gradients(sim.trainer, {net.inp: x, net.p: y}, atol=1e-7)
    assert worst < 1e-7


def test_training_finds_the_time_constant_of_the_target():
    net = filter_net(0.05)
    x, y = data(0.01)
    with nengodl.Simulator(net, progress_bar=False, dtype="float64") as sim:
        sim.compile(keras.optimizers.Adam(0.05), loss="mse")
        before = sim.evaluate({net.inp: x}, {net.p: y}, verbose=0)["loss"]
        sim.fit({net.inp: x}, {net.p: y}, epochs=150, verbose=0)
        after = sim.evaluate({net.inp: x}, {net.p: y}, verbose=0)["loss"]
        tau = sim.get_nengo_params(net.conn)["synapse"].tau
    # measured: tau 0.0100 (from 0.05), loss 4e-2 -> below 1e-9
    assert tau == pytest.approx(0.01, rel=0.02)
    assert after < 1e-3 * before


def test_trained_time_constant_is_saved_loaded_and_frozen(tmp_path):
    net = filter_net(0.05)
    x, y = data(0.02)
    with nengodl.Simulator(net, progress_bar=False, dtype="float64") as sim:
        sim.compile(keras.optimizers.Adam(0.05), loss="mse")
        sim.fit({net.inp: x}, {net.p: y}, epochs=20, verbose=0)
        sim.save_params(tmp_path / "trained")
        sim.run_steps(N_STEPS)
        trained = sim.data[net.p]
        tau = sim.get_nengo_params(net.conn)["synapse"].tau
        sim.freeze_params(net)
    assert 0.021 < tau < 0.049  # moved from 0.05 towards 0.02
    with nengodl.Simulator(filter_net(0.05), progress_bar=False, dtype="float64") as fresh:
        fresh.load_params(tmp_path / "trained")
        fresh.run_steps(N_STEPS)
        np.testing.assert_allclose(fresh.data[fresh.model.toplevel.p], trained, atol=1e-12)
    # frozen: nengo's own simulator runs the trained synapse
    assert isinstance(net.conn.synapse, nengo.Lowpass) and net.conn.synapse.tau == tau
    np.testing.assert_allclose(nengo_output(net), trained, atol=1e-10)


def test_synapses_are_fixed_unless_configured():
    # the default (no setting, or False), other synapse types, and the per-connection
    # override of the network's setting
    for net in (filter_net(0.05, setting=None), filter_net(0.05, setting=False)):
        with nengodl.Simulator(net, progress_bar=False) as sim:
            assert "log_tau" not in sim.model.sig[net.conn]
    alpha = filter_net(0.05, synapse=nengo.Alpha(0.05))
    with nengodl.Simulator(alpha, progress_bar=False) as sim:
        assert "log_tau" not in sim.model.sig[alpha.conn]
    net = filter_net(0.05, setting=False)
    with net:
        fixed = nengo.Connection(net.inp, net.out, synapse=0.01)
    net.config[net.conn].trainable_synapse = True
    with nengodl.Simulator(net, progress_bar=False) as sim:
        assert "log_tau" in sim.model.sig[net.conn]
        assert "log_tau" not in sim.model.sig[fixed]
