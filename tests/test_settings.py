"""NengoDL 3.6's `configure_settings` keys and Simulator-level behaviours.

Truths: nengo.Simulator's output, NengoDL 3.6's documented behaviour (its
config and Simulator docs and tests), closed-form Jacobians.
"""

import warnings

import keras
import nengo
import numpy as np
import pytest
import tensorflow as tf
from nengo.exceptions import (
    BuildError,
    ConfigError,
    NetworkContextError,
    SimulationError,
    ValidationError,
)

import nengodl


def lif_net(seed=0, **settings):
    """Sine input, a LIF ensemble with a filtered probe and a spike probe."""
    with nengo.Network(seed=seed) as net:
        if settings:
            nengodl.configure_settings(**settings)
        stim = nengo.Node(np.sin)
        ens = nengo.Ensemble(20, 1)
        nengo.Connection(stim, ens)
        p = nengo.Probe(ens, synapse=0.01)
        q = nengo.Probe(ens.neurons)
    return net, stim, ens, p, q


def nengo_data(net, probe, n_steps):
    with nengo.Simulator(net, progress_bar=False) as ref:
        ref.run_steps(n_steps)
    return ref.data[probe]


# --- configure_settings: what it accepts and refuses ---------------------------------


def test_trainable_takes_true_false_or_none():
    with nengo.Network() as net:
        with pytest.raises(ValidationError, match="trainable: Must be True, False or None"):
            nengodl.configure_settings(trainable=5)
        nengodl.configure_settings(trainable=None)
        ens = nengo.Ensemble(5, 1)
    net.config[ens].trainable = False
    with pytest.raises(ValidationError):
        net.config[ens].trainable = "no"
    with pytest.raises(ValidationError):
        net.config[nengo.Connection].trainable = 1
    assert net.config[ens].trainable is False


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("lif_smoothing", -0.1, "positive number"),
        ("lif_smoothing", "0.1", "positive number"),
        ("dtype", "int32", "float32' or 'float64"),
        ("stateful", "yes", "True or False"),
        ("keep_history", None, "True or False"),
        ("inference_only", 1, "True or False"),
        ("use_loop", None, "True or False"),
        ("planner", 5, "function or None"),
        ("simplifications", [1, 2], "list of functions"),
    ],
)
def test_bad_values_are_refused_naming_the_setting(name, value, message):
    with nengo.Network():
        with pytest.raises(ValidationError, match=f"{name}: .*{message}"):
            nengodl.configure_settings(**{name: value})


def test_unknown_removed_and_outside_network():
    with pytest.raises(NetworkContextError, match="inside a `with network:`"):
        nengodl.configure_settings(stateful=False)
    with nengo.Network():
        with pytest.raises(ConfigError, match="Unknown setting 'troinable'"):
            nengodl.configure_settings(troinable=None)
        with pytest.raises(ConfigError, match="session_config.*tf.config"):
            nengodl.configure_settings(session_config={"gpu_options.allow_growth": True})
        with pytest.raises(ConfigError, match="distribute_strategy.*strategy="):
            nengodl.configure_settings(distribute_strategy=None)
        # nothing is set when one value is bad
        with pytest.raises(ValidationError):
            nengodl.configure_settings(stateful=False, dtype="int8")


def test_settings_in_a_subnetwork_go_to_the_top_level():
    """NengoDL 3: every setting but `trainable` is stored on the top-level network."""
    with nengo.Network(seed=0) as net:
        with nengo.Network():
            nengodl.configure_settings(dtype="float64", stateful=False)
            stim = nengo.Node([0.5])
            p = nengo.Probe(stim)
    with nengodl.Simulator(net, progress_bar=False) as sim:
        sim.run_steps(3)
        assert sim.dtype == tf.float64
        assert sim.stateful is False
        assert sim.n_steps == 0
    assert sim.data[p].shape == (3, 1)


def test_no_effect_settings_give_nengos_output():
    """use_loop, planner, sorter and simplifications are accepted and change nothing."""
    net, _, _, p, _ = lif_net(
        use_loop=False,
        planner=lambda ops: ops,
        sorter=lambda plan, n_passes=10: plan,
        simplifications=[lambda ops: ops],
        dtype="float64",
    )
    with nengodl.Simulator(net, progress_bar=False, unroll_simulation=5) as sim:
        sim.run_steps(5)
        sim.run_steps(7)  # not only unroll_simulation steps, unlike NengoDL 3's use_loop=False
    assert sim.dtype == tf.float64
    np.testing.assert_allclose(sim.data[p], nengo_data(net, p, 12), atol=1e-10)


def test_inference_only_with_learning_phase_is_a_build_error():
    net, *_ = lif_net(inference_only=True, learning_phase=True)
    with pytest.raises(BuildError, match="inference_only=True and learning_phase=True"):
        nengodl.Simulator(net, progress_bar=False)


def test_inference_only_refuses_gradient_checks():
    net, *_ = lif_net(inference_only=True)
    with nengodl.Simulator(net, progress_bar=False) as sim:
        with pytest.raises(SimulationError, match="inference_only=True"):
            sim.check_gradients()


# --- keep_history ---------------------------------------------------------------------


@pytest.mark.parametrize("minibatch_size", [None, 2])
def test_keep_history_false_keeps_the_last_step_of_each_run(minibatch_size):
    net, _, _ens, p, q = lif_net(keep_history=True)
    net.config[q].keep_history = False
    with nengodl.Simulator(net, progress_bar=False, minibatch_size=minibatch_size) as sim:
        sim.run_steps(10)
        sim.run_steps(10)
        sim.step()
    ref_q, ref_p = nengo_data(net, q, 21), nengo_data(net, p, 21)
    spikes, filtered = sim.data[q], sim.data[p]
    if minibatch_size is not None:
        assert spikes.shape == (2, 3, 20)
        spikes, filtered = spikes[1], filtered[1]
    np.testing.assert_allclose(spikes, ref_q[[9, 19, 20]], atol=1e-3)
    assert filtered.shape == (21, 1)  # the other probe keeps every step
    np.testing.assert_allclose(filtered, ref_p, atol=1e-4)


def test_keep_history_default_for_all_probes():
    net, _, _, p, q = lif_net(keep_history=False)
    with nengodl.Simulator(net, progress_bar=False) as sim:
        sim.run_steps(8)
    assert sim.data[p].shape == (1, 1) and sim.data[q].shape == (1, 20)
    np.testing.assert_allclose(sim.data[p], nengo_data(net, p, 8)[[-1]], atol=1e-4)


def filtered_linear_net(W, keep_history):
    """Input (3) -> linear output (2) through a lowpass: each step's output differs."""
    with nengo.Network(seed=0) as net:
        nengodl.configure_settings(keep_history=True)
        net.inp = nengo.Node(np.zeros(3))
        out = nengo.Node(size_in=W.shape[0])
        net.conn = nengo.Connection(net.inp, out, transform=W, synapse=0.005)
        net.p = nengo.Probe(out)
        net.config[net.p].keep_history = keep_history
    return net


def test_keep_history_false_returns_and_scores_the_last_step_only():
    # NengoDL 3.6: a probe that keeps no history gives predict one step (the
    # last), and evaluate and fit score that step against one-step targets
    rng = np.random.RandomState(0)
    W = rng.randn(2, 3)
    x = rng.randn(4, 6, 3)
    y = rng.randn(4, 1, 2)
    lr = 0.05

    def predict_all(M):
        net = filtered_linear_net(M, True)
        with nengodl.Simulator(net, minibatch_size=2, progress_bar=False, dtype="float64") as s:
            return s.predict(x, verbose=0)[net.p]

    every, filtered = predict_all(W), predict_all(np.eye(3))
    net = filtered_linear_net(W, False)
    with nengodl.Simulator(net, minibatch_size=2, progress_bar=False, dtype="float64") as sim:
        last = sim.predict(x, verbose=0)[net.p]
        assert every.shape == (4, 6, 2) and last.shape == (4, 1, 2)
        np.testing.assert_allclose(last, every[:, -1:], atol=1e-12)
        stateful = sim.predict_on_batch(x[:2], stateful=True)[net.p]
        np.testing.assert_allclose(stateful, every[:2, -1:], atol=1e-12)
        sim.reset()
        sim.compile(keras.optimizers.SGD(lr), loss="mse")
        loss = sim.evaluate(x, y, verbose=0)["loss"]
        np.testing.assert_allclose(loss, np.mean((every[:, -1:] - y) ** 2), rtol=1e-10)
        sim.fit(x, y, epochs=1, shuffle=False, verbose=0)
        trained = sim.data[net.conn].weights
    # closed form: the last step's output is a fixed filter of the inputs, linear in W
    W_ref = W.copy()
    for b in range(2):
        xf, yb = filtered[2 * b : 2 * b + 2, -1], y[2 * b : 2 * b + 2, 0]
        W_ref = W_ref - lr * 2 * (xf @ W_ref.T - yb).T @ xf / yb.size
    np.testing.assert_allclose(trained, W_ref, atol=1e-9)


# --- stateful -------------------------------------------------------------------------


def test_run_stateful_false_records_but_does_not_advance():
    """NengoDL 3: a stateless run's data is recorded, the state and time stay."""
    net, _, _, p, _ = lif_net()
    ref = nengo_data(net, p, 20)
    with nengodl.Simulator(net, progress_bar=False, dtype="float64") as sim:
        sim.run_steps(10, stateful=False)
        assert sim.n_steps == 0 and sim.time == 0
        assert sim.data[p].shape == (10, 1)
        sim.run(0.01)  # starts from the initial state again
        assert sim.n_steps == 10
        sim.run(0.004, stateful=False)
        sim.run_steps(10)
        assert sim.n_steps == 20
    data = sim.data[p]
    assert data.shape == (34, 1)
    np.testing.assert_allclose(data[:10], ref[:10], atol=1e-10)
    np.testing.assert_allclose(data[10:20], ref[:10], atol=1e-10)
    np.testing.assert_allclose(data[20:24], ref[10:14], atol=1e-10)
    np.testing.assert_allclose(data[24:], ref[10:], atol=1e-10)


def test_stateless_run_rewinds_learning_and_python_nodes():
    """PES-learned weights (state) and a Python Node inside the loop are rewound."""
    with nengo.Network(seed=1) as net:
        stim = nengo.Node(lambda t: np.sin(10 * t))
        pre = nengo.Ensemble(30, 1)
        post = nengo.Node(lambda t, x: x**2, size_in=1)
        nengo.Connection(stim, pre)
        conn = nengo.Connection(pre, post, learning_rule_type=nengo.PES(1e-3))
        err = nengo.Node(size_in=1)
        nengo.Connection(post, err, synapse=None)
        nengo.Connection(stim, err, transform=-1, synapse=None)
        nengo.Connection(err, conn.learning_rule)
        p = nengo.Probe(post, synapse=0.005)
        w = nengo.Probe(conn, "weights")
    ref_p, ref_w = nengo_data(net, p, 30), nengo_data(net, w, 30)
    with nengodl.Simulator(net, progress_bar=False, dtype="float64") as sim:
        sim.run_steps(15, stateful=False)
        sim.run_steps(30)
    np.testing.assert_allclose(sim.data[p][:15], ref_p[:15], atol=1e-8)
    np.testing.assert_allclose(sim.data[p][15:], ref_p, atol=1e-8)
    np.testing.assert_allclose(sim.data[w][15:], ref_w, atol=1e-8)


@pytest.mark.parametrize("func_stateful", [True, False])
def test_configured_stateless_overrides_stateful_runs(func_stateful):
    """NengoDL 3.6's test_stateful: with stateful=False configured, n_steps stays 0."""
    net, _, _, p, _ = lif_net(stateful=False)
    with nengodl.Simulator(net, progress_bar=False) as sim:
        assert sim.stateful is False
        sim.run_steps(5, stateful=func_stateful)
        assert sim.n_steps == 0
        sim.run_steps(5, stateful=func_stateful)
        assert sim.n_steps == 0
    ref = nengo_data(net, p, 5)
    np.testing.assert_allclose(sim.data[p], np.concatenate([ref, ref]), atol=1e-4)


def test_stateful_must_be_a_bool():
    net, *_ = lif_net()
    with nengodl.Simulator(net, progress_bar=False) as sim:
        with pytest.raises(ValidationError, match="stateful: Must be True or False"):
            sim.run_steps(2, stateful="no")
        assert sim.n_steps == 0 and sim.stateful is True


# --- deprecated names -------------------------------------------------------------------


def test_include_non_trainable_is_include_state(tmp_path):
    """NengoDL 3.2 renamed include_non_trainable to include_state; the old name warns."""
    net, _, _, p, _ = lif_net()
    with nengodl.Simulator(net, progress_bar=False, dtype="float64") as sim:
        sim.run_steps(10)
        with pytest.warns(DeprecationWarning, match="include_non_trainable is deprecated"):
            sim.save_params(tmp_path / "with_state", include_non_trainable=True)
        with pytest.warns(DeprecationWarning):
            sim.save_params(tmp_path / "no_state", include_non_trainable=False)
    with nengodl.Simulator(net, progress_bar=False, dtype="float64") as sim2:
        with pytest.warns(DeprecationWarning):
            sim2.load_params(tmp_path / "with_state", include_non_trainable=True)
        assert sim2.n_steps == 10
        sim2.run_steps(10)
        with pytest.raises(ValidationError, match="holds no simulation state"):
            sim2.load_params(tmp_path / "no_state", include_state=True)
    np.testing.assert_allclose(sim2.data[p], nengo_data(net, p, 20)[10:], atol=1e-10)


def test_soft_reset_is_deprecated_as_in_nengo_dl_3():
    net, _, _, p, _ = lif_net()
    with nengodl.Simulator(net, progress_bar=False) as sim:
        sim.run_steps(5)
        with pytest.warns(DeprecationWarning, match=r"Simulator.reset\(include_trainable"):
            sim.soft_reset()
        assert sim.n_steps == 0 and sim.data[p].shape == (5, 1)
        with pytest.warns(DeprecationWarning):
            sim.soft_reset(include_probes=True)
        assert sim.data[p].shape == (0, 1)


def test_trange_dt_is_deprecated_sample_every_as_in_nengo():
    """``trange(dt=)``, nengo's (and NengoDL 3.6's) old name of ``sample_every``,
    warns and gives nengo.Simulator's ``trange(sample_every=)``."""
    net = lif_net()[0]
    with nengodl.Simulator(net, progress_bar=False) as sim:
        sim.run_steps(10)
    with nengo.Simulator(net, progress_bar=False) as ref:
        ref.run_steps(10)
    want = ref.trange(sample_every=0.003)
    np.testing.assert_allclose(want, [0.003, 0.006, 0.009])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the current name does not warn
        np.testing.assert_allclose(sim.trange(sample_every=0.003), want)
    with pytest.warns(DeprecationWarning, match="`dt` is deprecated. Use `sample_every` instead"):
        old = sim.trange(dt=0.003)
    np.testing.assert_allclose(old, want)
    with pytest.raises(ValidationError, match="Cannot specify both `dt` and `sample_every`"):
        sim.trange(dt=0.003, sample_every=0.003)


@pytest.mark.parametrize(
    "neuron_type, closed_form",
    [
        (
            nengodl.SoftLIFRate(sigma=0.2, amplitude=0.5),
            lambda J: 0.5 / (0.002 + 0.02 * np.log1p(1 / (0.2 * np.log1p(np.exp((J - 1) / 0.2))))),
        ),
        (
            nengodl.LeakyReLU(negative_slope=0.1, amplitude=2.0),
            lambda J: 2.0 * np.where(J > 0, J, 0.1 * J),
        ),
    ],
    ids=["SoftLIFRate", "LeakyReLU"],
)
def test_rate_neuron_step_math_is_deprecated_step(neuron_type, closed_form):
    """``step_math`` (the name before nengo 3.1 and NengoDL 3.6's ``step``) warns
    and gives what ``step`` does: the neuron type's closed-form rate."""
    J = np.array([-2.0, 0.5, 1.0, 1.5, 3.0])
    new, old = np.zeros(5), np.zeros(5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        neuron_type.step(0.001, J, new)
    with pytest.warns(UserWarning, match="'step_math' has been renamed to 'step'"):
        neuron_type.step_math(0.001, J, old)
    np.testing.assert_allclose(new, closed_form(J), rtol=1e-12)
    np.testing.assert_array_equal(old, new)


def test_spiking_leaky_relu_step_math_is_deprecated_step():
    neuron_type = nengodl.SpikingLeakyReLU(negative_slope=0.25, amplitude=0.5)
    dt = 0.001
    J = np.array([-6000.0, -100.0, 0.0, 700.0, 2500.0])
    v0 = np.array([0.0, 0.2, 0.5, 0.4, 0.9])
    new, old = np.zeros(5), np.zeros(5)
    v_new, v_old = v0.copy(), v0.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        neuron_type.step(dt, J, new, v_new)
    with pytest.warns(UserWarning, match="'step_math' has been renamed to 'step'"):
        neuron_type.step_math(dt, J, old, voltage=v_old)
    # closed form: the voltage integrates the leaky input, each whole unit a spike
    v = v0 + np.where(J > 0, J, 0.25 * J) * dt
    np.testing.assert_allclose(new, 0.5 / dt * np.trunc(v), rtol=1e-12)
    np.testing.assert_allclose(v_new, v - np.trunc(v), atol=1e-12)
    assert new.min() < 0 < new.max()  # spikes of both signs
    np.testing.assert_array_equal(old, new)
    np.testing.assert_array_equal(v_old, v_new)


# --- check_gradients ----------------------------------------------------------------------


def linear_net():
    w = np.array([[1.0, -2.0], [0.5, 3.0], [0.0, 1.5]])
    with nengo.Network() as net:
        a = nengo.Node([0.0, 0.0])
        b = nengo.Node(size_in=3)
        nengo.Connection(a, b, transform=w, synapse=None)
        p = nengo.Probe(b)
        q = nengo.Probe(b, synapse=0.01)
    return net, a, w, p, q


def test_check_gradients_nengo_dl_3_signature_gives_the_jacobian():
    net, _a, w, p, q = linear_net()
    x = np.random.RandomState(0).uniform(-1, 1, size=(2, 3, 2))
    with nengodl.Simulator(net, minibatch_size=2, dtype="float64", progress_bar=False) as sim:
        grads = sim.check_gradients(inputs=[x], outputs=[p])
        assert list(grads) == [p]
        default = sim.check_gradients()  # zeros, 2 steps, every probe
        assert set(default) == {p, q}
    (analytic,) = grads[p]["analytic"]
    # rows: output (batch, step, j); columns: input (batch, step, i); entries w[j, i]
    expected = np.kron(np.eye(2 * 3), w)
    np.testing.assert_allclose(analytic, expected, atol=1e-12)
    np.testing.assert_allclose(grads[p]["numeric"][0], expected, atol=1e-6)
    assert default[p]["analytic"][0].shape == (2 * 2 * 3, 2 * 2 * 2)


def test_check_gradients_of_spiking_model_in_training_mode():
    net, stim, *_ = lif_net()
    with nengodl.Simulator(net, dtype="float64", progress_bar=False) as sim:
        grads = sim.check_gradients({stim: np.full((1, 4, 1), 0.3)})
    assert set(grads) == set(net.all_probes)


def test_check_gradients_finds_a_wrong_gradient():
    @tf.custom_gradient
    def doubled_wrongly(x):
        return 2 * x, lambda dy: 3 * dy

    with nengo.Network() as net:
        a = nengo.Node([0.0])
        node = nengodl.TensorNode(lambda t, x: doubled_wrongly(x), shape_in=(1,), shape_out=(1,))
        nengo.Connection(a, node, synapse=None)
        nengo.Probe(node)
    with nengodl.Simulator(net, dtype="float64", progress_bar=False) as sim:
        with pytest.raises(SimulationError, match="gradient check failed"):
            sim.check_gradients()


def test_check_gradients_seed_tutorial_form_still_works():
    net, a, _w, p, _q = linear_net()
    data = {a: np.ones((1, 2, 2)), p: np.zeros((1, 2, 3))}
    with nengodl.Simulator(net, dtype="float64", progress_bar=False) as sim:
        assert sim.check_gradients(data) < 1e-4
        assert sim.check_gradients(data, {p: nengodl.obj.mse}) < 1e-4
        assert sim.check_gradients(data, objective=nengodl.obj.mse, atol=1e-3) < 1e-4
        with pytest.raises(ValidationError, match=r"input for .* has shape \(1, 2\)"):
            sim.check_gradients([np.ones((1, 2))])


# --- get_nengo_params -------------------------------------------------------------------


def test_get_nengo_params_refuses_nodes_and_direct_ensembles():
    with nengo.Network() as net:
        node = nengo.Node([1.0])
        direct = nengo.Ensemble(1, 1, neuron_type=nengo.Direct())
    with nengodl.Simulator(net, progress_bar=False) as sim:
        with pytest.raises(ValidationError, match="a Node has no parameters"):
            sim.get_nengo_params(node)
        with pytest.raises(ValueError, match="Direct neurons"):
            sim.get_nengo_params([direct])


def test_get_nengo_params_sparse_and_convolution_rebuild_the_same_model():
    indices = np.array([[0, 1], [2, 3], [1, 0]])
    with nengo.Network(seed=0) as net:
        a = nengo.Node(np.linspace(-1, 1, 4))
        b = nengo.Node(size_in=3)
        sparse = nengo.Connection(
            a, b, synapse=None, transform=nengo.Sparse((3, 4), indices=indices, init=[2, 3, -1])
        )
        c = nengo.Node(size_in=8)
        conv = nengo.Connection(
            a,
            c,
            synapse=None,
            transform=nengo.Convolution(2, (4, 1), kernel_size=(3,), strides=(1,), padding="same"),
        )
        ens = nengo.Ensemble(10, 1, neuron_type=nengo.LIFRate())  # no random initial state
        nengo.Connection(b[0], ens)
        probes = [nengo.Probe(b), nengo.Probe(c), nengo.Probe(ens.neurons)]
    with nengodl.Simulator(net, progress_bar=False, dtype="float64") as sim:
        before = np.array(sim.data[conv].weights)
        data = {a: np.ones((1, 1, 4)), probes[1]: np.zeros((1, 1, 8))}
        sim.train(data, tf.compat.v1.train.GradientDescentOptimizer(0.1), n_epochs=2)
        assert not np.allclose(sim.data[conv].weights, before)  # the kernel trained
        params = sim.get_nengo_params([sparse, conv, ens.neurons])
        sim.run_steps(20)
    assert isinstance(params[0]["transform"], nengo.Sparse)
    assert isinstance(params[1]["transform"], nengo.Convolution)
    assert sorted(params[2]) == sorted(
        ["encoders", "normalize_encoders", "gain", "bias", "max_rates", "intercepts"]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", nengo.exceptions.NengoWarning)  # gains and max_rates
        ref_data, copy_data = rebuilt_outputs(net, probes, params)
    np.testing.assert_allclose(copy_data[0], ref_data[0], atol=1e-12)  # sparse: untrained
    np.testing.assert_allclose(ref_data[2], copy_data[2], atol=1e-12)
    # the trained kernel: the copy computes what the trained simulator computed
    np.testing.assert_allclose(copy_data[1], sim.data[probes[1]], atol=1e-10)
    assert not np.allclose(copy_data[1], ref_data[1])


def rebuilt_outputs(net, probes, params):
    """nengo.Simulator's output of ``net`` and of a copy made with ``params``."""
    with nengo.Network(seed=5) as copy:
        a2 = nengo.Node(np.linspace(-1, 1, 4))
        b2 = nengo.Node(size_in=3)
        nengo.Connection(a2, b2, synapse=None, **params[0])
        c2 = nengo.Node(size_in=8)
        nengo.Connection(a2, c2, synapse=None, **params[1])
        ens2 = nengo.Ensemble(10, 1, neuron_type=nengo.LIFRate(), **params[2])
        nengo.Connection(b2[0], ens2)
        copies = [nengo.Probe(b2), nengo.Probe(c2), nengo.Probe(ens2.neurons)]
    with nengo.Simulator(net, progress_bar=False) as ref:
        ref.run_steps(20)
    with nengo.Simulator(copy, progress_bar=False) as ref2:
        ref2.run_steps(20)
    return [ref.data[p] for p in probes], [ref2.data[p] for p in copies]


# --- seeds of TensorFlow random ops ------------------------------------------------------


def random_net():
    with nengo.Network() as net:
        node = nengodl.TensorNode(
            lambda t: tf.random.uniform((1, 3)), shape_in=None, shape_out=(3,), pass_time=True
        )
        p = nengo.Probe(node)
    return net, p


def random_draws(seed, runs):
    net, p = random_net()
    with nengodl.Simulator(net, seed=seed, progress_bar=False) as sim:
        for n in runs:
            sim.run_steps(n)
    return sim.data[p]


@pytest.mark.parametrize("runs", [[1] * 5, [40, 7, 1]])
def test_seed_makes_tf_random_in_tensor_nodes_reproducible(runs):
    # runs of many steps too: the loop draws in step order (no parallel iterations)
    first, again, other = random_draws(3, runs), random_draws(3, runs), random_draws(4, runs)
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)
    assert len(np.unique(first)) == first.size  # a stream, not one draw repeated


class RandomScale(keras.layers.Layer):
    """Scales its input by weights drawn with an eager `tf.random` op in `build`."""

    def build(self, input_shape):
        init = tf.random.uniform((input_shape[-1],), 1.0, 2.0)
        self.w = self.add_weight(shape=init.shape, initializer=lambda *_, **__: init)

    def call(self, x):
        return x * self.w


def scaled_output(seed):
    with nengo.Network() as net:
        a = nengo.Node([1.0, 1.0, 1.0])
        node = nengodl.TensorNode(RandomScale(), shape_in=(3,), shape_out=(3,), pass_time=False)
        nengo.Connection(a, node, synapse=None)
        p = nengo.Probe(node)
    with nengodl.Simulator(net, seed=seed, progress_bar=False) as sim:
        sim.step()
    return sim.data[p][0]


def test_simulator_seed_leaves_the_users_tf_random_stream_alone():
    """The seed is swapped in for the simulator's traces only: the user's eager random
    stream (and the state of random ops traced earlier) goes on undisturbed, and eager
    random ops in a Keras layer's `build` inside the simulator still work."""
    try:
        tf.random.set_seed(7)
        expected = [tf.random.uniform((3,)).numpy() for _ in range(2)]
        tf.random.set_seed(7)
        first = tf.random.uniform((3,)).numpy()
        built = scaled_output(3)  # the layer is built (eagerly) inside the simulator
        second = tf.random.uniform((3,)).numpy()
    finally:
        tf.random.set_seed(None)
    np.testing.assert_array_equal([first, second], expected)
    assert np.all((built >= 1) & (built < 2))


def test_settings_in_a_nengo_spa_network():
    # nengo-spa's Network subclass has a config entry of its own: settings still apply
    spa = pytest.importorskip("nengo_spa")
    with spa.Network(seed=0) as net:
        nengodl.configure_settings(dtype="float64", lif_smoothing=0.1)
        state = spa.State(16)
        p = nengo.Probe(state.output)
    with nengo.Simulator(net, progress_bar=False) as ref:
        ref.run_steps(5)
    with nengodl.Simulator(net, progress_bar=False) as sim:
        sim.run_steps(5)
    assert sim.dtype == tf.float64
    assert nengodl.config.get_setting(net, "lif_smoothing") == 0.1
    np.testing.assert_allclose(sim.data[p], ref.data[p], atol=1e-10)


def test_get_setting_reads_a_built_model_and_an_objects_entry():
    with nengo.Network() as net:
        nengodl.configure_settings(lif_smoothing=0.2, trainable=None, keep_history=True)
        a = nengo.Ensemble(10, 1)
        b = nengo.Ensemble(10, 1)
        p = nengo.Probe(a)
        net.config[a].trainable = False
        net.config[p].keep_history = False
    with nengodl.Simulator(net, progress_bar=False) as sim:
        model = sim.model
    get = nengodl.config.get_setting
    assert get(model, "lif_smoothing") == get(net, "lif_smoothing") == 0.2
    assert get(net, "trainable", obj=a) is False
    assert get(model, "trainable", "unset", obj=b) == "unset"  # configured, left None
    assert get(net, "keep_history", obj=p) is False
    assert get(net, "lif_smoothing", "none here", obj=a) == "none here"
    assert get(nengo.builder.Model(), "lif_smoothing", 3) == 3  # no toplevel network
    with nengo.Network() as plain:
        c = nengo.Ensemble(5, 1)
    assert get(plain, "trainable", True, obj=c) is True
