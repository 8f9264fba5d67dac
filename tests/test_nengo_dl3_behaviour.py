"""Smaller behaviours that NengoDL 3.6 documents and real NengoDL 3 code relies on."""

import keras
import nengo
import numpy as np
import pytest
from nengo.exceptions import SimulatorClosed

import nengodl


def two_input_net():
    with nengo.Network(seed=0) as net:
        net.a = nengo.Node(np.zeros(1))
        net.b = nengo.Node(np.zeros(1))
        out = nengo.Node(size_in=1)
        nengo.Connection(net.a, out, synapse=None)
        nengo.Connection(net.b, out, transform=2, synapse=None)
        net.p = nengo.Probe(out)
    return net


@pytest.mark.parametrize("method", ["save_params", "load_params"])
def test_params_io_after_close_raises_simulator_closed(method, tmp_path):
    net = two_input_net()
    with nengodl.Simulator(net, progress_bar=False) as sim:
        sim.save_params(str(tmp_path / "p"))
    with pytest.raises(SimulatorClosed, match=method):
        getattr(sim, method)(str(tmp_path / "p"))


def test_object_arrays_of_numbers_are_data():
    # a list of arrays that numpy stored with dtype object, each element a number
    net = two_input_net()
    x = np.arange(6.0).reshape(2, 3, 1)
    xo = np.empty((2, 3, 1), dtype=object)
    xo[...] = x
    with nengodl.Simulator(net, minibatch_size=2, progress_bar=False) as sim:
        want = sim.predict([x, x], verbose=0)[net.p]
        got = sim.predict([xo, xo], verbose=0)[net.p]
        np.testing.assert_array_equal(got, want)
        np.testing.assert_allclose(want, 3 * x)
        sim.run_steps(3, data={net.a: xo, net.b: x})
        np.testing.assert_allclose(sim.data[net.p], 3 * x)
        xs = np.empty((2, 3, 1), dtype=object)
        xs[...] = "a"
        with pytest.raises(nengo.exceptions.ValidationError, match="must be numeric"):
            sim.predict([xs, x], verbose=0)


def test_convolutions_in_more_than_three_dimensions_are_not_implemented():
    # as in nengo (which stops at 2-D at run time) and NengoDL 3.6
    with nengo.Network() as net:
        inp = nengo.Node(np.arange(16.0))
        conv = nengo.Convolution(1, (2, 2, 2, 2, 1), kernel_size=(2, 2, 2, 2), strides=(1,) * 4)
        out = nengo.Node(size_in=conv.size_out)
        nengo.Connection(inp, out, transform=conv, synapse=None)
    with pytest.raises(NotImplementedError, match="ConvInc"):
        with nengodl.Simulator(net, progress_bar=False) as sim:
            sim.run_steps(1)


def lowpass_net(W, stim=None):
    with nengo.Network(seed=0) as net:
        net.inp = nengo.Node(np.zeros(W.shape[1]) if stim is None else stim)
        out = nengo.Node(size_in=W.shape[0])
        net.conn = nengo.Connection(net.inp, out, transform=W, synapse=0.01)
        net.p = nengo.Probe(out)
    return net


def test_fit_stateful_carries_state_across_minibatches_and_after():
    # NengoDL 3.6's fit(stateful=True): each minibatch continues each item from
    # where the previous minibatch left it, and the simulator is left at the end.
    # With a learning rate of 0 that is one continuous run per item (nengo's).
    rng = np.random.RandomState(1)
    W = rng.randn(2, 3)
    x = rng.randn(4, 5, 3)  # minibatches (items 0, 1) then (2, 3)
    with nengodl.Simulator(
        lowpass_net(W), minibatch_size=2, progress_bar=False, dtype="float64"
    ) as sim:
        sim.compile(keras.optimizers.SGD(0.0), loss="mse")
        history = sim.fit(x, np.zeros((4, 5, 2)), stateful=True, shuffle=False, verbose=0)
        assert sim.n_steps == 10
        sim.run_steps(4, data={sim.model.toplevel.inp: np.zeros((2, 4, 3))})
        after = sim.data[sim.model.toplevel.p]
        np.testing.assert_array_equal(sim.data[sim.model.toplevel.conn].weights, W)
    outs = []
    for item in (0, 1):
        seq = np.concatenate([x[item], x[item + 2], np.zeros((4, 3))])
        net = lowpass_net(W, stim=lambda t, seq=seq: seq[round(t / 0.001) - 1])
        with nengo.Simulator(net, progress_bar=False) as ref:
            ref.run_steps(14)
        outs.append(ref.data[net.p])
    outs = np.stack(outs)
    np.testing.assert_allclose(after, outs[:, 10:], atol=1e-10)
    np.testing.assert_allclose(history.history["loss"][0], np.mean(outs[:, :10] ** 2), rtol=1e-9)


def test_fit_stateful_trains():
    # and it trains: a target that needs the carried state is learned
    rng = np.random.RandomState(2)
    W = 0.1 * rng.randn(1, 1)
    x = np.ones((2, 4, 1))
    net = lowpass_net(W)
    with nengodl.Simulator(net, minibatch_size=2, progress_bar=False, dtype="float64") as sim:
        sim.compile(keras.optimizers.SGD(0.5), loss="mse")
        history = sim.fit(x, np.ones((2, 4, 1)), epochs=20, stateful=True, verbose=0)
        losses = history.history["loss"]
    assert losses[-1] < 0.1 * losses[0], losses
