"""Wrong input: an error naming what is wrong, and a simulator that works as before."""

import keras
import nengo
import numpy as np
import pytest
from nengo.exceptions import ValidationError

import nengodl


def small_net():
    with nengo.Network(seed=0) as net:
        net.inp = nengo.Node([0.5])
        net.ens = nengo.Ensemble(10, 1)
        nengo.Connection(net.inp, net.ens)
        net.p = nengo.Probe(net.ens, synapse=0.01)
    return net


@pytest.fixture
def started():
    """A simulator run for 5 steps, its probe data, and nengo's 10-step output."""
    net = small_net()
    with nengo.Simulator(net, progress_bar=False) as ref:
        ref.run_steps(10)
    sim = nengodl.Simulator(net, dtype="float64", progress_bar=False)
    sim.run_steps(5)
    yield net, sim, sim.data[net.p].copy(), ref.data[net.p]
    sim.close()


def still_works(net, sim, before, expected):
    """Earlier probe data intact, and the next 5 steps are nengo's."""
    np.testing.assert_array_equal(sim.data[net.p][:5], before)
    sim.run_steps(5)
    np.testing.assert_allclose(sim.data[net.p], expected, atol=1e-10)


@pytest.mark.parametrize(
    "kwargs, attr",
    [
        ({"dt": 0}, "dt"),
        ({"dt": -0.001}, "dt"),
        ({"seed": "abc"}, "seed"),
        ({"seed": 1.5}, "seed"),
        ({"seed": -1}, "seed"),
        ({"device": "/gpu:7"}, "device"),
    ],
)
def test_bad_simulator_arguments_are_named(kwargs, attr):
    with pytest.raises(ValidationError, match=attr) as info:
        nengodl.Simulator(small_net(), progress_bar=False, **kwargs)
    assert info.value.attr == attr
    if attr == "device":
        assert "CPU:0" in str(info.value)  # lists the devices there are


@pytest.mark.parametrize("network", ["not a network", nengo.Ensemble])
def test_simulator_of_a_non_network_says_a_network_is_expected(network):
    if network is nengo.Ensemble:
        with nengo.Network():
            network = nengo.Ensemble(5, 1)
    with pytest.raises(ValidationError, match="nengo.Network"):
        nengodl.Simulator(network, progress_bar=False)


@pytest.mark.parametrize("seed", ["abc", 1.5, -1, 2**32])
def test_failed_reset_changes_nothing(started, seed):
    net, sim, before, expected = started
    old_seed = sim.seed
    with pytest.raises(ValidationError, match="seed"):
        sim.reset(seed=seed)
    assert sim.seed == old_seed and sim.n_steps == 5
    still_works(net, sim, before, expected)
    sim.reset()  # a plain reset works afterwards
    assert sim.n_steps == 0


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_run_data_is_refused_naming_the_node(started, bad):
    net, sim, before, expected = started
    data = np.full((1, 3, 1), 0.5)
    data[0, 1, 0] = bad
    with pytest.raises(ValidationError, match="non-finite") as info:
        sim.run_steps(3, data={net.inp: data})
    assert str(net.inp) in str(info.value)
    assert sim.n_steps == 5
    still_works(net, sim, before, expected)


def test_non_finite_check_can_be_turned_off():
    net = small_net()
    with net:
        nengodl.configure_settings(check_finite=False)
        node_p = nengo.Probe(net.inp)
    with nengodl.Simulator(net, progress_bar=False) as sim:
        sim.run_steps(2, data={net.inp: np.full((1, 2, 1), np.nan)})
        assert np.isnan(sim.data[node_p]).all()  # taken as given


def test_non_finite_training_data_is_refused(started):
    net, sim, before, expected = started
    x = np.full((1, 3, 1), 0.5)
    y = np.zeros((1, 3, 1))
    y[0, 2, 0] = np.nan
    with pytest.raises(ValidationError, match="non-finite") as info:
        sim.train({net.inp: x, net.p: y}, keras.optimizers.SGD(0.1))
    assert "Probe" in str(info.value)
    sim.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    with pytest.raises(ValidationError, match="non-finite"):
        sim.fit({net.inp: np.where(y == 0, np.inf, 0.5)}, {net.p: np.zeros((1, 3, 1))})
    still_works(net, sim, before, expected)


def test_fractional_epochs_are_refused(started):
    net, sim, before, expected = started
    data = {net.inp: np.full((1, 3, 1), 0.5), net.p: np.zeros((1, 3, 1))}
    with pytest.raises(ValidationError, match="Must be an integer") as info:
        sim.train(data, keras.optimizers.SGD(0.1), n_epochs=2.5)
    assert info.value.attr == "n_epochs"
    sim.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    with pytest.raises(ValidationError, match="Must be an integer") as info:
        sim.fit({net.inp: data[net.inp]}, {net.p: data[net.p]}, epochs=2.5)
    assert info.value.attr == "epochs"
    still_works(net, sim, before, expected)
