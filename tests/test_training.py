"""Training and evaluation against closed-form values, finite differences and nengo."""

import keras
import nengo
import numpy as np
import pytest
import tensorflow as tf
from conftest import linear_net
from nengo.exceptions import SimulationError, ValidationError
from tensorboard.backend.event_processing import event_accumulator

import nengodl
from nengodl.config import is_trainable, network_chains, trainable_signals
from nengodl.io.nengo_params import signal_value


def test_one_sgd_step_matches_closed_form_gradient():
    rng = np.random.RandomState(0)
    W0 = rng.randn(2, 3)
    x = rng.randn(8, 1, 3)
    y = rng.randn(8, 1, 2)
    lr = 0.1
    net = linear_net(W0)
    with nengodl.Simulator(net, minibatch_size=8, progress_bar=False, dtype="float64") as sim:
        sim.train({net.inp: x, net.p: y}, keras.optimizers.SGD(lr), n_epochs=1)
        W1 = sim.data[net.conn].weights
    xs, ys = x[:, 0], y[:, 0]
    grad = 2 * (xs @ W0.T - ys).T @ xs / ys.size  # d mean((Wx - y)^2) / dW
    np.testing.assert_allclose(W1, W0 - lr * grad, atol=1e-10)


def test_least_squares_converges_to_known_optimum():
    rng = np.random.RandomState(1)
    W_true = rng.randn(2, 3)
    x = rng.randn(64, 1, 3)
    net = linear_net(np.zeros((2, 3)))
    with nengodl.Simulator(net, minibatch_size=16, progress_bar=False) as sim:
        sim.train({net.inp: x, net.p: x @ W_true.T}, keras.optimizers.Adam(0.05), n_epochs=150)
        np.testing.assert_allclose(sim.data[net.conn].weights, W_true, atol=2e-3)
        assert sim.loss({net.inp: x, net.p: x @ W_true.T}) < 1e-5


def rate_net():
    with nengo.Network(seed=2) as net:
        net.inp = nengo.Node(np.zeros(1))
        net.ens = nengo.Ensemble(10, 1, neuron_type=nengo.LIFRate())
        net.out = nengo.Node(size_in=1)
        nengo.Connection(net.inp, net.ens, synapse=None)
        net.conn = nengo.Connection(net.ens, net.out, synapse=None, function=np.square)
        net.p = nengo.Probe(net.out)
    return net


def test_gradient_matches_finite_differences():
    net = rate_net()
    rng = np.random.RandomState(3)
    x = rng.uniform(-1, 1, size=(4, 1, 1))
    data = {net.inp: x, net.p: np.sin(x)}
    lr = 1e-4
    with nengodl.Simulator(net, minibatch_size=4, progress_bar=False, dtype="float64") as sim:
        variables = [v for v, _ in sim.loop.trainable]
        before = [v.numpy().copy() for v in variables]
        assert np.isfinite(sim.loss(data, progress_bar=False))  # the loss before training
        sim.train(data, keras.optimizers.SGD(lr), n_epochs=1, shuffle=False)
        grads = [(b - v.numpy()) / lr for v, b in zip(variables, before)]
        for v, b in zip(variables, before):
            v.assign(b)
        checked = 0
        for var, b, g in zip(variables, before, grads):
            flat = b.reshape(-1)
            for i in rng.choice(flat.size, size=min(3, flat.size), replace=False):
                eps = 1e-6
                losses = []
                for sign in (1, -1):
                    pert = flat.copy()
                    pert[i] += sign * eps
                    var.assign(pert.reshape(b.shape))
                    losses.append(sim.loss(data, progress_bar=False))
                numeric = (losses[0] - losses[1]) / (2 * eps)
                var.assign(b)
                assert abs(numeric - g.reshape(-1)[i]) < 1e-4 + 1e-3 * abs(numeric)
                checked += 1
        assert checked >= 3


def spiking_seed_setup(seed_net):
    for conn in seed_net.all_connections:
        conn.synapse = None
    with seed_net:
        p_nofilt = nengo.Probe(seed_net.outpt)
    seed_net.outpt_p.synapse = 0.04
    return p_nofilt


def test_rate_swap_training_improves_spiking_model_and_freezes_others(seed_net):
    p_nofilt = spiking_seed_setup(seed_net)
    with seed_net:
        nengodl.configure_settings(trainable=False)
        seed_net.config[nengo.Ensemble].trainable = True
    rng = np.random.RandomState(0)
    vals = rng.uniform(-1, 1, size=(2048, 1, 1))
    test_vals = np.tile(rng.uniform(-1, 1, size=(64, 1, 1)), (1, 100, 1))
    test_data = {seed_net.inpt: test_vals, seed_net.outpt_p: np.sin(test_vals**2)}

    def test_mse(outputs, targets):
        return tf.reduce_mean(tf.square(outputs[:, -10:] - targets[:, -10:]))

    with nengodl.Simulator(seed_net, minibatch_size=32, seed=0, progress_bar=False) as sim:
        conns = [c for c in seed_net.all_connections if sim.data[c].weights is not None]
        weight_sigs = [sim.model.sig[c]["weights"] for c in conns]
        decoders = [signal_value(sim, sig).copy() for sig in weight_sigs]
        before = sim.loss(test_data, objective={seed_net.outpt_p: test_mse})
        sim.train(
            {seed_net.inpt: vals, p_nofilt: np.sin(vals**2)},
            tf.compat.v1.train.RMSPropOptimizer(0.01),
            objective={p_nofilt: nengodl.obj.mse},
            n_epochs=10,
        )
        after = sim.loss(test_data, objective={seed_net.outpt_p: test_mse})
        assert len(conns) >= 2
        for sig, d in zip(weight_sigs, decoders):  # the simulator's own values
            np.testing.assert_array_equal(signal_value(sim, sig), d)
        assert not np.allclose(
            sim.data[seed_net.square].bias, sim.model.params[seed_net.square].bias
        )
    assert after < 0.9 * before


def test_freeze_params_lets_nengo_reproduce_trained_output():
    net = rate_net()
    x = np.linspace(-1, 1, 16)[:, None, None]
    with nengodl.Simulator(net, minibatch_size=16, progress_bar=False, dtype="float64") as sim:
        sim.train({net.inp: x, net.p: np.sin(x)}, keras.optimizers.Adam(0.01), n_epochs=20)
        sim.run_steps(1, data={net.inp: x})
        trained = sim.data[net.p][:, 0].copy()
        sim.freeze_params()
    outs = []
    for xi in x[:, 0, 0]:
        net.inp.output = np.array([xi])
        with nengo.Simulator(net, progress_bar=False) as ref:
            ref.run_steps(1)
        outs.append(ref.data[net.p][0])
    np.testing.assert_allclose(np.array(outs), trained, atol=1e-8)


def test_save_and_load_params_round_trip(tmp_path):
    net = rate_net()
    x = np.linspace(-1, 1, 8)[:, None, None]
    data = {net.inp: x, net.p: np.sin(x)}
    with nengodl.Simulator(net, minibatch_size=8, progress_bar=False) as sim:
        sim.train(data, keras.optimizers.Adam(0.01), n_epochs=5)
        trained_loss = sim.loss(data)
        sim.run_steps(3, data={net.inp: np.ones((8, 3, 1))})
        sim.save_params(tmp_path / "p", include_state=True)
    with nengodl.Simulator(net, minibatch_size=8, progress_bar=False) as sim2:
        assert sim2.loss(data) != pytest.approx(trained_loss)
        sim2.load_params(tmp_path / "p", include_state=True)
        assert sim2.loss(data) == pytest.approx(trained_loss)
        assert sim2.n_steps == 3
    # another layout of the same network (no operator merging, no minibatch)
    with nengodl.Simulator(net, minibatch_size=8, progress_bar=False) as sim:
        sim.load_params(tmp_path / "p")
        sim.run_steps(1, data={net.inp: x})
        expected = sim.data[net.p][:, 0]
    with nengodl.Simulator(net, progress_bar=False, optimize=False) as sim4:
        sim4.load_params(tmp_path / "p")
        for k in [0, 3, 7]:
            sim4.run_steps(1, data={net.inp: x[k : k + 1]})
            np.testing.assert_allclose(sim4.data[net.p][-1], expected[k], rtol=1e-5)
    other = linear_net(np.zeros((2, 3)))
    with nengodl.Simulator(other, progress_bar=False) as sim3:
        with pytest.raises(ValidationError, match="does not match"):
            sim3.load_params(tmp_path / "p")


def test_bad_training_input_gives_clear_errors(seed_net):
    p2 = seed_net.spikes_p
    x = np.zeros((4, 1, 1))
    with nengodl.Simulator(seed_net, minibatch_size=2, progress_bar=False) as sim:
        opt = keras.optimizers.SGD(0.1)
        cases = [
            (dict(data={seed_net.inpt: x, seed_net.outpt_p: x}, optimizer="sgd"), "optimizer"),
            (dict(data={seed_net.inpt: x}, optimizer=opt), "no Probe targets"),
            (
                dict(
                    data={seed_net.inpt: x, seed_net.outpt_p: x},
                    optimizer=opt,
                    objective={p2: nengodl.obj.mse},
                ),
                "no target",
            ),
            (
                dict(
                    data={seed_net.inpt: x, seed_net.outpt_p: np.zeros((4, 2, 1))}, optimizer=opt
                ),
                "same batch size and number of steps",
            ),
            (
                dict(
                    data={
                        seed_net.inpt: np.zeros((3, 1, 1)),
                        seed_net.outpt_p: np.zeros((3, 1, 1)),
                    },
                    optimizer=opt,
                ),
                "multiple of",
            ),
            (
                dict(
                    data={nengo.Node(0, add_to_container=False): x, seed_net.outpt_p: x},
                    optimizer=opt,
                ),
                "not an input Node",
            ),
            (
                dict(
                    data={seed_net.inpt: x, seed_net.outpt_p: np.zeros((4, 1, 3))}, optimizer=opt
                ),
                r"expected \(batch_size, n_steps, 1\)",
            ),
        ]
        for kwargs, match in cases:
            with pytest.raises(ValidationError, match=match):
                sim.train(**kwargs)
        sim.run_steps(5)
        assert sim.data[seed_net.inpt_p].shape == (2, 5, 1)


def plain_mse(outputs, targets):
    """Mean squared error that, unlike ``nengodl.obj.mse``, lets NaN targets through."""
    return tf.reduce_mean(tf.square(outputs - targets))


def ensemble_net():
    """Input -> LIF ensemble -> output: encoders, gains, biases and decoders that
    float32 does not hold exactly."""
    with nengo.Network(seed=1) as net:
        net.inp = nengo.Node(np.zeros(3))
        net.ens = nengo.Ensemble(20, 3)
        net.out = nengo.Node(size_in=2)
        nengo.Connection(net.inp, net.ens, synapse=None)
        net.conn = nengo.Connection(net.ens, net.out, function=lambda x: x[:2] * 0.3, synapse=None)
        net.p = nengo.Probe(net.out)
    return net


def all_params(sim, net):
    return [
        sim.data[net.conn].weights.copy(),
        sim.data[net.ens].encoders.copy(),
        sim.data[net.ens].gain.copy(),
        sim.data[net.ens].bias.copy(),
    ]


@pytest.mark.parametrize(
    "target, message",
    [
        (1e30, "loss became inf"),  # squares overflow float32
        (np.nan, "loss became nan"),
    ],
    ids=["inf", "nan"],
)
@pytest.mark.parametrize("api", ["train", "fit"])
def test_training_stopped_by_the_first_batch_changes_no_parameter(target, message, api):
    # no finite step was taken: every parameter reads as it did before the call,
    # bit for bit (not float32 copies of the built values)
    net = ensemble_net()
    x = np.ones((4, 2, 3)) * 0.3
    y = np.full((4, 2, 2), target)
    with nengodl.Simulator(net, minibatch_size=2, progress_bar=False) as sim:
        before = all_params(sim, net)
        with pytest.raises(SimulationError, match=message):
            if api == "train":
                sim.train(
                    {net.inp: x, net.p: y},
                    keras.optimizers.SGD(0.1),
                    objective={net.p: plain_mse},
                )
            else:
                sim.compile(keras.optimizers.SGD(0.1), loss={net.p: plain_mse})
                sim.fit({net.inp: x}, {net.p: y}, verbose=0, shuffle=False)
        for a, b in zip(all_params(sim, net), before):
            np.testing.assert_array_equal(a, b)
        assert before[0].dtype == np.float64
        assert not np.array_equal(before[0], before[0].astype(np.float32))
        sim.run_steps(2)  # still usable


class EndedBatches(keras.callbacks.Callback):
    """Records the training batches that ended (a callback makes fit run per batch)."""

    def __init__(self):
        super().__init__()
        self.ended = []

    def on_train_batch_end(self, batch, logs=None):
        self.ended.append(batch)


@pytest.mark.parametrize("path", ["whole_epoch", "per_batch_callback", "per_batch_metrics"])
def test_fit_stops_on_nan_loss_keeping_the_last_finite_params(path):
    """A NaN loss in the second minibatch stops fit with nengo's SimulationError;
    the weights are those after the first minibatch's SGD step (closed form),
    in the compiled whole-epoch path (no callbacks, no metrics) and in the
    per-batch path that callbacks or metrics select."""
    W0 = np.arange(6.0).reshape(2, 3) / 10
    x = np.random.RandomState(0).randn(3, 1, 3)
    y = np.zeros((3, 1, 2))
    y[1] = np.nan  # keras' mse of a NaN target is NaN
    lr = 0.1
    net = linear_net(W0)
    ended = EndedBatches()
    with nengodl.Simulator(net, minibatch_size=1, progress_bar=False, dtype="float64") as sim:
        sim.compile(
            keras.optimizers.SGD(lr),
            loss="mse",
            metrics=["mae"] if path == "per_batch_metrics" else None,
        )
        with pytest.raises(SimulationError, match="loss became nan"):
            sim.fit(
                {net.inp: x},
                {net.p: y},
                shuffle=False,
                verbose=0,
                callbacks=[ended] if path == "per_batch_callback" else None,
            )
        W = sim.data[net.conn].weights
    xs, ys = x[0, 0], y[0, 0]
    grad = 2 * np.outer(W0 @ xs - ys, xs) / ys.size  # d mean((Wx - y)^2) / dW
    np.testing.assert_allclose(W, W0 - lr * grad, atol=1e-12)
    if path == "per_batch_callback":
        assert ended.ended == [0]  # the NaN batch never ended


def test_training_stopped_later_shows_the_parameters_it_left():
    net = linear_net(np.ones((2, 3)))
    x = np.ones((2, 1, 3))
    y = np.zeros((2, 1, 2))
    y[1] = 1e30  # the second minibatch's loss overflows, after the first one trained
    with nengodl.Simulator(net, minibatch_size=1, progress_bar=False) as sim:
        before = sim.data[net.conn].weights.copy()
        with pytest.raises(SimulationError, match="loss became inf"):
            sim.train({net.inp: x, net.p: y}, keras.optimizers.SGD(0.1), shuffle=False)
        shown = sim.data[net.conn].weights
        assert not np.allclose(shown, before)  # the first minibatch's update
        sim.run_steps(1, data={net.inp: x[:1]})
        np.testing.assert_allclose(sim.data[net.p][0, 0], shown @ x[0, 0], rtol=1e-6)


def test_check_gradients_agree_with_finite_differences_through_smoothed_lif():
    """check_gradients runs in training mode, where lif_smoothing makes the LIF
    neurons SoftLIFRate: its analytic gradients match central differences."""
    with nengo.Network(seed=4) as net:
        nengodl.configure_settings(lif_smoothing=0.1)
        inp = nengo.Node(np.zeros(1))
        ens = nengo.Ensemble(8, 1, neuron_type=nengo.LIF())
        out = nengo.Node(size_in=1)
        nengo.Connection(inp, ens, synapse=None)
        nengo.Connection(ens, out, synapse=0.005)
        p = nengo.Probe(out)
    x = np.random.RandomState(0).uniform(-1, 1, size=(4, 5, 1))
    with nengodl.Simulator(net, minibatch_size=4, progress_bar=False, dtype="float64") as sim:
        assert sim.check_gradients({inp: x, p: np.sin(x)}) < 1e-4


def soft_lif_net(neuron_type, **settings):
    """A sine into an ensemble whose currents stay within ~20 of the threshold
    (there float64's softplus neither under- nor overflows), neurons probed."""
    with nengo.Network(seed=3) as net:
        if settings:
            nengodl.configure_settings(**settings)
        stim = nengo.Node(lambda t: np.sin(20 * t))
        net.ens = nengo.Ensemble(
            30,
            1,
            neuron_type=neuron_type,
            max_rates=nengo.dists.Uniform(100, 200),
            intercepts=nengo.dists.Uniform(-0.5, 0.5),
        )
        net.conn = nengo.Connection(stim, net.ens, synapse=None)
        net.p = nengo.Probe(net.ens.neurons)
    return net


def test_lif_smoothing_in_training_mode_runs_lif_as_soft_lif_rate():
    sigma = 0.2
    smoothed = soft_lif_net(nengo.LIF(), learning_phase=True, lif_smoothing=sigma)
    with nengodl.Simulator(smoothed, progress_bar=False, dtype="float64") as sim:
        sim.run_steps(100)
    got = sim.data[smoothed.p]
    reference = soft_lif_net(nengodl.SoftLIFRate(sigma=sigma))
    with nengo.Simulator(reference, progress_bar=False) as ref:
        ref.run_steps(100)
    np.testing.assert_allclose(got, ref.data[reference.p], rtol=1e-9, atol=1e-9)
    # the closed form of the soft LIF rate, from nengo's gains, biases and encoders
    built = ref.data[reference.ens]
    t = ref.trange()[:, None]
    J = built.gain * np.sin(20 * t) * built.encoders[:, 0] + built.bias
    lif = nengo.LIF()
    soft_j = sigma * np.log1p(np.exp((J - 1) / sigma))
    rates = 1 / (lif.tau_ref + lif.tau_rc * np.log1p(1 / soft_j))
    np.testing.assert_allclose(got, rates, rtol=1e-9)
    # the hard LIF rate is far from it here: the check tells the two apart
    hard = nengo.LIFRate().rates(0, J, 0)
    assert np.abs(hard - rates).max() > 10
    assert ((J < 1) & (rates > 1)).any()  # spikes below threshold only a soft LIF has


def test_lif_smoothing_far_below_threshold_is_the_soft_lif_limit_in_nengo_too():
    """Far below the threshold (``(J - 1) / sigma`` down to -2000, where float64's
    softplus underflows) the soft LIF rate tends to its closed-form limit
    ``1 / (tau_ref + tau_rc * (-log(sigma) - (J - 1) / sigma))``: so in training
    mode and in nengo.Simulator running SoftLIFRate (whose numpy step once gave
    0 there)."""
    sigma = 0.2
    x = -np.linspace(50, 2000, 8)  # (J - 1) / sigma
    with nengo.Network() as net:
        nengodl.configure_settings(learning_phase=True, lif_smoothing=sigma)
        ens = nengo.Ensemble(8, 1, neuron_type=nengo.LIF(), gain=np.ones(8), bias=1 + sigma * x)
        p = nengo.Probe(ens.neurons)
    with nengodl.Simulator(net, progress_bar=False, dtype="float64") as sim:
        sim.run_steps(2)
    ens.neuron_type = nengodl.SoftLIFRate(sigma=sigma)
    with nengo.Simulator(net, progress_bar=False) as ref:
        ref.run_steps(2)
    lif = nengo.LIF()
    limit = 1 / (lif.tau_ref + lif.tau_rc * (-np.log(sigma) - x))
    np.testing.assert_allclose(sim.data[p][-1], limit, rtol=1e-12)
    np.testing.assert_allclose(ref.data[p][-1], limit, rtol=1e-12)


def test_lif_smoothing_leaves_inference_spiking_as_nengo():
    """lif_smoothing changes training only: outside it, LIF neurons spike as in nengo."""
    smoothed = soft_lif_net(nengo.LIF(), lif_smoothing=0.2)
    with nengodl.Simulator(smoothed, progress_bar=False, dtype="float64") as sim:
        sim.run_steps(100)
    with nengo.Simulator(smoothed, progress_bar=False) as ref:
        ref.run_steps(100)
    assert ref.data[smoothed.p].max() == 1 / ref.dt  # spikes
    np.testing.assert_allclose(sim.data[smoothed.p], ref.data[smoothed.p], atol=1e-6)


def test_lif_smoothing_leaves_lif_rate_neurons_as_nengo():
    """lif_smoothing stands in for spiking LIF only (NengoDL 3.6: "the LIF
    gradients"): LIFRate neurons keep nengo's LIFRate rates in training too."""
    smoothed = soft_lif_net(nengo.LIFRate(), learning_phase=True, lif_smoothing=0.2)
    with nengodl.Simulator(smoothed, progress_bar=False, dtype="float64") as sim:
        sim.run_steps(100)
    with nengo.Simulator(smoothed, progress_bar=False) as ref:
        ref.run_steps(100)
    np.testing.assert_allclose(sim.data[smoothed.p], ref.data[smoothed.p], rtol=1e-9, atol=1e-9)


def test_learning_phase_runs_rate_neurons():
    with nengo.Network(seed=5) as net:
        nengodl.configure_settings(learning_phase=True)
        ens = nengo.Ensemble(10, 1, neuron_type=nengo.LIF())
        p = nengo.Probe(ens.neurons)
    with nengodl.Simulator(net, progress_bar=False) as sim:
        sim.run_steps(5)
    with nengo.Simulator(net, progress_bar=False) as ref:
        pass
    built = ref.data[ens]
    expected = nengo.LIFRate().rates(0.0, built.gain, built.bias).ravel()
    np.testing.assert_allclose(sim.data[p][-1], expected, rtol=1e-4)
    # predict and evaluate run rate neurons too
    with nengodl.Simulator(net, progress_bar=False) as sim:
        np.testing.assert_allclose(sim.predict(n_steps=5)[p][0, -1], expected, rtol=1e-4)
        sim.compile(loss="mse")
        loss = sim.evaluate(n_steps=5, y={p: np.zeros((1, 5, 10))})["loss"]
        np.testing.assert_allclose(loss, np.mean(expected**2), rtol=1e-4)


def test_trainable_settings_resolve_per_object_class_and_network():
    with nengo.Network() as net:
        nengodl.configure_settings(trainable=False)
        net.config[nengo.Ensemble].trainable = True
        a = nengo.Ensemble(5, 1)
        b = nengo.Ensemble(5, 1)
        conn = nengo.Connection(a, b)
        net.config[b.neurons].trainable = False
        with nengo.Network() as sub:
            sub_conn = nengo.Connection(a, b)
        net.config[sub].trainable = True
        frozen = nengo.Ensemble(5, 1)
        net.config[frozen].trainable = False
    chains = network_chains(net)
    assert is_trainable(chains, a) and is_trainable(chains, b)
    assert not is_trainable(chains, conn)  # network default
    assert is_trainable(chains, sub_conn)  # its sub-network's setting
    assert not is_trainable(chains, frozen)
    model = nengo.builder.Model()
    model.build(net)
    sigs = set(trainable_signals(model, net))
    assert model.sig[a]["encoders"] in sigs and model.sig[a.neurons]["bias"] in sigs
    assert model.sig[b]["encoders"] in sigs and model.sig[b.neurons]["bias"] not in sigs
    assert model.sig[conn]["weights"] not in sigs and model.sig[sub_conn]["weights"] in sigs
    assert model.sig[frozen]["encoders"] not in sigs


def test_keras_tensorboard_logs_the_history_losses_each_epoch(tmp_path):
    """Keras' own TensorBoard callback, given to fit, logs each epoch's loss as
    ``epoch_loss``: read back with TensorBoard's reader, the History's losses."""
    net = linear_net(np.zeros((2, 3)))
    x = np.random.RandomState(0).randn(8, 1, 3)
    with nengodl.Simulator(net, minibatch_size=4, progress_bar=False) as sim:
        sim.compile(keras.optimizers.SGD(0.01), loss="mse")
        history = sim.fit(
            {net.inp: x},
            {net.p: x[..., :2]},
            epochs=3,
            verbose=0,
            callbacks=[keras.callbacks.TensorBoard(log_dir=str(tmp_path))],
        )
    acc = event_accumulator.EventAccumulator(
        str(tmp_path / "train"), size_guidance={event_accumulator.TENSORS: 0}
    )
    acc.Reload()
    events = acc.Tensors("epoch_loss")
    assert [e.step for e in events] == [0, 1, 2]
    losses = [float(tf.make_ndarray(e.tensor_proto)) for e in events]
    assert len(set(losses)) == 3  # the loss changes as it trains
    np.testing.assert_allclose(losses, history.history["loss"], rtol=1e-6)


@pytest.mark.parametrize(
    "spiking, rate",
    [
        (nengo.LIF(), nengo.LIFRate()),
        (nengo.SpikingRectifiedLinear(), nengo.RectifiedLinear()),
        (nengo.RegularSpiking(nengo.LIFRate()), nengo.LIFRate()),
        (nengo.AdaptiveLIF(), nengo.AdaptiveLIFRate()),
        (nengodl.SpikingLeakyReLU(0.1), nengodl.LeakyReLU(0.1)),
    ],
    ids=lambda n: type(n).__name__,
)
def test_training_mode_swaps_spiking_for_rate_neurons(spiking, rate):
    def net_with(neuron_type, learning_phase):
        with nengo.Network(seed=6) as net:
            if learning_phase:
                nengodl.configure_settings(learning_phase=True)
            stim = nengo.Node(lambda t: np.sin(10 * t))
            ens = nengo.Ensemble(12, 1, neuron_type=neuron_type)
            nengo.Connection(stim, ens, synapse=None)
            net.p = nengo.Probe(ens.neurons)
        return net

    swapped = net_with(spiking, True)
    reference = net_with(rate, False)
    with nengodl.Simulator(swapped, progress_bar=False, dtype="float64") as sim:
        sim.run_steps(50)
    with nengo.Simulator(reference, progress_bar=False) as ref:
        ref.run_steps(50)
    np.testing.assert_allclose(sim.data[swapped.p], ref.data[reference.p], atol=1e-8)


def test_diverging_training_stops_with_finite_parameters():
    net = linear_net(np.ones((2, 3)))
    x = np.random.RandomState(0).randn(16, 1, 3)
    with nengodl.Simulator(net, minibatch_size=4, progress_bar=False) as sim:
        with pytest.raises(SimulationError, match="became"):
            # a far too large step size: the loss overflows after a few epochs
            sim.train({net.inp: x, net.p: x[..., :2]}, keras.optimizers.SGD(50.0), n_epochs=200)
        assert np.isfinite(sim.data[net.conn].weights).all()


def test_reset_with_include_trainable_restores_built_parameters():
    net = linear_net(np.zeros((2, 3)))
    x = np.random.RandomState(0).randn(8, 1, 3)
    with nengodl.Simulator(net, minibatch_size=4, progress_bar=False) as sim:
        sim.train({net.inp: x, net.p: x[..., :2]}, keras.optimizers.SGD(0.1), n_epochs=2)
        trained = sim.data[net.conn].weights.copy()
        assert not np.allclose(trained, 0)
        sim.run_steps(3)
        sim.soft_reset()  # keeps probe data and trained values
        assert sim.n_steps == 0 and sim.data[net.p].shape[1] == 3
        np.testing.assert_array_equal(sim.data[net.conn].weights, trained)
        sim.reset(include_trainable=True)
        np.testing.assert_array_equal(sim.data[net.conn].weights, np.zeros((2, 3)))


def test_training_a_spiking_model_twice_gives_the_same_parameters():
    # float32, spiking, several updates: any difference in how the two builds
    # are merged or ordered (e.g. following memory addresses) shows in the bits
    def train():
        with nengo.Network(seed=0) as net:
            stim = nengo.Node(np.zeros(1))
            mem = nengo.Ensemble(20, 1)
            nengo.Connection(stim, mem, transform=0.1, synapse=0.1)
            nengo.Connection(mem, mem, synapse=0.1)
            p = nengo.Probe(mem, synapse=0.01)
        x = np.zeros((16, 200, 1), dtype=np.float32)
        x[:, :50, 0] = np.linspace(-10, 10, 16)[:, None]
        y = np.cumsum(x, axis=1) * 0.001
        with nengodl.Simulator(net, minibatch_size=8, seed=0, progress_bar=False) as sim:
            sim.compile(optimizer=keras.optimizers.Adam(1e-3), loss={p: nengodl.obj.mse})
            history = sim.fit({stim: x}, {p: y}, epochs=3, shuffle=False, verbose=0)
            return history.history["loss"], sim.get_nengo_params(net.all_connections)

    (loss_a, params_a), (loss_b, params_b) = train(), train()
    assert loss_a[-1] < 0.75 * loss_a[0]  # it did train (measured 0.240 -> 0.119)
    assert loss_a == loss_b
    for a, b in zip(params_a, params_b):
        np.testing.assert_array_equal(a["transform"], b["transform"])


def test_training_with_nothing_trainable_computes_the_loss_and_changes_nothing():
    # Keras and NengoDL 3.6: fit on a model without trainable parameters runs,
    # logs the loss, and changes nothing (Converter.verify(training=True) needs it)
    rng = np.random.RandomState(3)
    W = rng.randn(2, 3)
    x, y = rng.randn(4, 1, 3), rng.randn(4, 1, 2)
    with nengo.Network(seed=0) as net:
        nengodl.configure_settings(trainable=False)
        inp = nengo.Node(np.zeros(3))
        out = nengo.Node(size_in=2)
        conn = nengo.Connection(inp, out, transform=W, synapse=None)
        p = nengo.Probe(out)
    want = np.mean((x[:, 0] @ W.T - y[:, 0]) ** 2)
    with nengodl.Simulator(net, minibatch_size=2, progress_bar=False, dtype="float64") as sim:
        sim.compile(keras.optimizers.SGD(0.1), loss="mse")
        history = sim.fit({inp: x}, {p: y}, epochs=2, verbose=0)
        np.testing.assert_allclose(history.history["loss"], [want, want], rtol=1e-12)
        loss = sim.train({inp: x, p: y}, keras.optimizers.SGD(0.1), n_epochs=1, progress_bar=False)
        np.testing.assert_allclose(loss, want, rtol=1e-12)
        np.testing.assert_array_equal(sim.data[conn].weights, W)
