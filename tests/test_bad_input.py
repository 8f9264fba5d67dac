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
    y[0, 2, 0] = np.inf  # (NaN marks a missing target: see the next test)
    with pytest.raises(ValidationError, match="non-finite") as info:
        sim.train({net.inp: x, net.p: y}, keras.optimizers.SGD(0.1))
    assert "Probe" in str(info.value) and "NaN marks a missing target" in str(info.value)
    sim.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    with pytest.raises(ValidationError, match="non-finite"):
        sim.fit({net.inp: np.where(y == 0, np.inf, 0.5)}, {net.p: np.zeros((1, 3, 1))})
    still_works(net, sim, before, expected)


def test_nan_targets_are_missing_targets_for_obj_mse(started):
    net, sim, before, expected = started
    x = np.full((1, 3, 1), 0.5)
    out = sim.predict({net.inp: x}, verbose=0)[net.p]
    y = np.array([[[0.1], [np.nan], [-0.2]]])
    loss = sim.loss({net.inp: x, net.p: y}, objective=nengodl.obj.mse)
    known = ~np.isnan(y)
    np.testing.assert_allclose(loss, np.mean((out[known] - y[known]) ** 2), rtol=1e-5)
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


def test_predict_without_inputs_or_steps_names_x():
    net = small_net()
    with nengodl.Simulator(net, progress_bar=False) as sim:
        sim.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        with pytest.raises(ValidationError, match="n_steps") as info:
            sim.predict()
        assert info.value.attr == "x"
        assert sim.predict(n_steps=4)[net.p].shape == (1, 4, 1)


@pytest.mark.parametrize("content", [None, b"PK\x03\x04truncated", "npy"])
def test_bad_parameter_files_are_named_and_change_nothing(started, tmp_path, content):
    net, sim, before, expected = started
    path = tmp_path / "params.npz"
    if content == "npy":
        with open(path, "wb") as f:
            np.save(f, np.zeros(3))
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(ValidationError, match="save_params") as info:
        sim.load_params(tmp_path / "params")
    assert str(path) in str(info.value)
    still_works(net, sim, before, expected)


def test_objects_of_another_network_are_named(started):
    net, sim, before, expected = started
    with nengo.Network() as other:
        ens = nengo.Ensemble(5, 1)
    with pytest.raises(ValidationError, match="not in this simulator's network"):
        sim.get_nengo_params(ens)
    with pytest.raises(ValidationError, match="not in this simulator's network"):
        sim.freeze_params(other)
    still_works(net, sim, before, expected)


def test_zero_epochs_train_nothing_in_both_apis(started):
    net, sim, before, expected = started
    x, y = np.full((1, 3, 1), 0.5), np.zeros((1, 3, 1))
    weights = sim.data[net.p.target].encoders.copy()
    assert sim.train({net.inp: x, net.p: y}, keras.optimizers.SGD(0.1), n_epochs=0) is None
    sim.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    assert sim.fit({net.inp: x}, {net.p: y}, epochs=0).history == {}
    np.testing.assert_array_equal(sim.data[net.p.target].encoders, weights)
    still_works(net, sim, before, expected)


def test_fit_targets_of_the_wrong_size_are_refused(started):
    net, sim, before, expected = started
    sim.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    with pytest.raises(ValidationError, match=r"\(1, 3, 2\); expected") as info:
        sim.fit({net.inp: np.full((1, 3, 1), 0.5)}, {net.p: np.zeros((1, 3, 2))})
    assert "Probe" in str(info.value)
    still_works(net, sim, before, expected)


def test_data_for_a_tensor_node_without_input_is_refused():
    import tensorflow as tf

    with nengo.Network() as net:
        node = nengodl.TensorNode(lambda t: tf.fill((1, 1), t), shape_out=(1,), pass_time=True)
        p = nengo.Probe(node)
    with nengodl.Simulator(net, progress_bar=False) as sim:
        with pytest.raises(ValidationError, match="TensorNode"):
            sim.run_steps(3, data={node: np.ones((1, 3, 1))})
        sim.run_steps(3)
    np.testing.assert_allclose(sim.data[p][:, 0], [0.001, 0.002, 0.003], atol=1e-6)


def test_objective_on_a_probe_of_another_network_is_named(started):
    net, sim, before, expected = started
    with nengo.Network():
        other_p = nengo.Probe(nengo.Ensemble(5, 1))
    data = {net.inp: np.full((1, 3, 1), 0.5), net.p: np.zeros((1, 3, 1))}
    objective = {net.p: nengodl.obj.mse, other_p: nengodl.obj.Regularize()}
    with pytest.raises(ValidationError, match="not a probe of this simulator's network"):
        sim.train(data, keras.optimizers.SGD(0.1), objective=objective)
    still_works(net, sim, before, expected)
