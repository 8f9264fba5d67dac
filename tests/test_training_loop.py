"""The one epoch loop under train/loss/fit/evaluate/predict: its two paths agree with
closed-form SGD, callbacks see what Keras's own loop shows them, -inf trains on."""

import keras
import nengo
import numpy as np
import pytest
from conftest import linear_net
from nengo.exceptions import SimulationError

import nengodl


def sgd_epochs(W0, x, y, lr, epochs, mb):
    # (learning rates here are binary fractions: Keras keeps them as float32)
    """Plain SGD on mean squared error over minibatches of ``mb``, in order."""
    W = W0.copy()
    losses = []
    for _ in range(epochs):
        batch_losses = []
        for b in range(0, len(x), mb):
            xs, ys = x[b : b + mb, 0], y[b : b + mb, 0]
            err = xs @ W.T - ys
            batch_losses.append(np.mean(err**2))
            W = W - lr * 2 * err.T @ xs / err.size
        losses.append(np.mean(batch_losses))
    return W, losses


class Recorder(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.events = []

    def on_train_batch_begin(self, batch, logs=None):
        self.events.append(("train_begin", batch))

    def on_train_batch_end(self, batch, logs=None):
        self.events.append(("train_batch", batch, logs["loss"]))

    def on_epoch_end(self, epoch, logs=None):
        self.events.append(("epoch", epoch, logs["loss"]))

    def on_test_begin(self, logs=None):
        self.events.append(("test_begin",))

    def on_test_batch_end(self, batch, logs=None):
        self.events.append(("test_batch", batch, logs["loss"]))

    def on_test_end(self, logs=None):
        self.events.append(("test_end", logs["loss"]))


@pytest.mark.parametrize(
    "with_callback, steps_per_execution",
    [(False, 1), (True, 1), (True, 2)],
    ids=["whole-epoch-calls", "one-minibatch-calls", "two-minibatch-calls"],
)
def test_fit_paths_match_closed_form_sgd(with_callback, steps_per_execution):
    # without callbacks or metrics fit runs whole epochs in one compiled call; with a
    # callback, steps_per_execution minibatches per call (3 minibatches: calls of 2 and
    # 1): all are the same SGD
    rng = np.random.RandomState(0)
    W0, x, y = rng.randn(2, 3), rng.randn(12, 1, 3), rng.randn(12, 1, 2)
    W, losses = sgd_epochs(W0, x, y, lr=0.0625, epochs=3, mb=4)
    net = linear_net(W0)
    recorder = Recorder()
    with nengodl.Simulator(net, minibatch_size=4, progress_bar=False, dtype="float64") as sim:
        sim.compile(
            keras.optimizers.SGD(0.0625),
            loss={net.p: "mse"},
            steps_per_execution=steps_per_execution,
        )
        hist = sim.fit(
            {net.inp: x},
            {net.p: y},
            epochs=3,
            shuffle=False,
            verbose=0,
            callbacks=[recorder] if with_callback else None,
        )
        np.testing.assert_allclose(sim.data[net.conn].weights, W, atol=1e-10)
    # Keras loss objects ("mse") compute in Keras's floatx (float32)
    np.testing.assert_allclose(hist.history["loss"], losses, rtol=1e-6)
    np.testing.assert_allclose(hist.history["probe_loss"], losses, rtol=1e-6)
    if with_callback:
        # every minibatch begins and ends, in order, however many a call runs
        assert [e[:2] for e in recorder.events if e[0].startswith("train_")] == [
            (kind, b)
            for _ in range(3)
            for b in range(3)
            for kind in ("train_begin", "train_batch")
        ]
        epochs = [e for e in recorder.events if e[0] == "epoch"]
        np.testing.assert_allclose([e[2] for e in epochs], losses, rtol=1e-6)


def test_seed_train_returns_last_epoch_mean_loss_of_sgd():
    rng = np.random.RandomState(1)
    W0, x, y = rng.randn(2, 3), rng.randn(8, 1, 3), rng.randn(8, 1, 2)
    W, losses = sgd_epochs(W0, x, y, lr=0.125, epochs=4, mb=2)
    net = linear_net(W0)
    with nengodl.Simulator(net, minibatch_size=2, progress_bar=False, dtype="float64") as sim:
        last = sim.train(
            {net.inp: x, net.p: y}, keras.optimizers.SGD(0.125), n_epochs=4, shuffle=False
        )
        np.testing.assert_allclose(sim.data[net.conn].weights, W, atol=1e-10)
        # sim.loss is the same pass without updates
        err = x[:, 0] @ W.T - y[:, 0]
        loss = sim.loss({net.inp: x, net.p: y})
    np.testing.assert_allclose(last, losses[-1], rtol=1e-10)
    np.testing.assert_allclose(loss, np.mean(err**2), rtol=1e-10)


def test_evaluate_calls_test_callbacks_with_the_mean_loss_so_far():
    rng = np.random.RandomState(2)
    W0, x, y = rng.randn(2, 3), rng.randn(6, 1, 3), rng.randn(6, 1, 2)
    net = linear_net(W0)
    recorder = Recorder()
    with nengodl.Simulator(net, minibatch_size=2, progress_bar=False, dtype="float64") as sim:
        sim.compile(loss={net.p: "mse"})
        logs = sim.evaluate({net.inp: x}, {net.p: y}, callbacks=[recorder], verbose=0)
    batch = [np.mean((x[b : b + 2, 0] @ W0.T - y[b : b + 2, 0]) ** 2) for b in (0, 2, 4)]
    assert recorder.events[0] == ("test_begin",)
    # as Keras 3: each batch hook gets the mean over the batches so far
    running = np.cumsum(batch) / np.arange(1, 4)
    np.testing.assert_allclose([e[2] for e in recorder.events[1:4]], running, rtol=1e-6)
    assert recorder.events[-1][0] == "test_end"
    np.testing.assert_allclose(recorder.events[-1][1], np.mean(batch), rtol=1e-6)
    np.testing.assert_allclose(logs["loss"], np.mean(batch), rtol=1e-6)


def minus_output(y_true, y_pred):
    """A loss unbounded below: -inf once the output overflows to +inf."""
    return -keras.ops.mean(y_pred)


@pytest.mark.parametrize("with_callback", [False, True])
def test_fit_goes_on_when_a_loss_reaches_minus_inf(with_callback):
    # the weight grows by lr each step (d(-w)/dw = -1) until the output is inf: Keras
    # (and NengoDL 3) keep training; a NaN loss still stops with an error
    with nengo.Network(seed=0) as net:
        inp = nengo.Node([1e38])
        out = nengo.Node(size_in=1)
        conn = nengo.Connection(inp, out, transform=3.0, synapse=None)
        p = nengo.Probe(out)
    with nengodl.Simulator(net, minibatch_size=1, progress_bar=False) as sim:  # float32
        sim.compile(keras.optimizers.SGD(1.0), loss={p: minus_output})
        hist = sim.fit(
            n_steps=1,
            y={p: np.zeros((1, 1, 1))},
            epochs=3,
            verbose=0,
            callbacks=[Recorder()] if with_callback else None,
        )
        # output 3e38, then 1e76 and 2e76: past float32's range
        np.testing.assert_allclose(hist.history["loss"][0], -3e38, rtol=1e-6)
        assert hist.history["loss"][1:] == [-np.inf, -np.inf]
        # the gradient (-1e38) is finite: every epoch updated the weight
        np.testing.assert_allclose(float(sim.data[conn].weights), 3.0 + 3e38, rtol=1e-6)


def test_nan_loss_still_stops_training():
    net = linear_net(np.ones((2, 3)))
    with nengodl.Simulator(net, minibatch_size=1, progress_bar=False) as sim:
        sim.compile(keras.optimizers.SGD(0.1), loss={net.p: lambda t, p: keras.ops.log(-p)})
        with pytest.raises(SimulationError, match="loss became nan"):
            sim.fit({net.inp: np.ones((1, 1, 3))}, {net.p: np.zeros((1, 1, 2))}, verbose=0)


def test_predict_tells_callbacks_of_each_minibatch():
    class Count(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.events = []

        def on_predict_begin(self, logs=None):
            self.events.append("begin")

        def on_predict_batch_end(self, batch, logs=None):
            self.events.append(batch)

        def on_predict_end(self, logs=None):
            self.events.append("end")

    W0 = np.arange(6.0).reshape(2, 3)
    x = np.random.RandomState(3).randn(6, 1, 3)
    net = linear_net(W0)
    count = Count()
    with nengodl.Simulator(net, minibatch_size=2, progress_bar=False, dtype="float64") as sim:
        out = sim.predict({net.inp: x}, callbacks=[count], verbose=0)
    assert count.events == ["begin", 0, 1, 2, "end"]
    np.testing.assert_allclose(out[net.p][:, 0], x[:, 0] @ W0.T, atol=1e-12)


def test_seed_objectives_work_as_keras_losses():
    # compile(loss=nengodl.obj.mse) ignores NaN targets, as sim.train does, and
    # obj.Regularize needs no target there either
    rng = np.random.RandomState(4)
    W0, x = rng.randn(2, 3), rng.randn(4, 1, 3)
    y = rng.randn(4, 1, 2)
    y[0, 0, 1] = y[2, 0, 0] = np.nan
    net = linear_net(W0)
    out = x[:, 0] @ W0.T
    known = ~np.isnan(y[:, 0])
    with nengodl.Simulator(net, minibatch_size=4, progress_bar=False, dtype="float64") as sim:
        sim.compile(loss={net.p: nengodl.obj.mse})
        logs = sim.evaluate({net.inp: x}, {net.p: y}, verbose=0)
        np.testing.assert_allclose(
            logs["loss"], np.mean((out[known] - y[:, 0][known]) ** 2), rtol=1e-10
        )
        sim.compile(loss={net.p: nengodl.obj.Regularize()})
        logs = sim.evaluate({net.inp: x}, verbose=0)
        np.testing.assert_allclose(logs["loss"], np.mean(out**2), rtol=1e-10)
