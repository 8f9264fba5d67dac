"""NengoDL 3's Keras-style API: compile / fit / evaluate / predict."""

import keras
import nengo
import numpy as np
import pytest
from nengo.exceptions import ValidationError

import nengodl


def linear_net():
    with nengo.Network(seed=0) as net:
        net.inp = nengo.Node(np.zeros(2), label="inp")
        net.out = nengo.Node(size_in=1)
        net.conn = nengo.Connection(net.inp, net.out, transform=[[0.0, 0.0]], synapse=None)
        net.p = nengo.Probe(net.out, label="out")
    return net


def data(n=32, steps=1):
    rng = np.random.RandomState(0)
    x = rng.randn(n, steps, 2)
    return x, x @ np.array([[1.0], [-2.0]])


def test_fit_evaluate_predict_round_trip(tmp_path):
    net = linear_net()
    x, y = data()
    with nengodl.Simulator(net, minibatch_size=8, progress_bar=False) as sim:
        with pytest.raises(ValidationError, match="compile"):
            sim.evaluate({net.inp: x}, {net.p: y})
        sim.compile(keras.optimizers.Adam(0.1), loss="mse", metrics=["mae"])
        before = sim.evaluate(x, y)  # plain arrays: one input, one output
        assert set(before) == {"loss", "out_loss", "out_mae"}  # Keras 3 logs "mae" as given
        ckpt = tmp_path / "best"
        hist = sim.fit(
            {"inp": x},
            {"out": y},
            epochs=100,
            validation_data=(x, y),
            callbacks=[
                keras.callbacks.EarlyStopping(monitor="loss", patience=2, min_delta=1e-7),
                keras.callbacks.ModelCheckpoint(str(ckpt) + ".weights.h5", save_weights_only=True),
            ],
        )
        assert isinstance(hist, keras.callbacks.History)
        assert {"loss", "val_loss", "out_mae"} <= set(hist.history)
        assert hist.history["loss"][-1] < 0.05 * hist.history["loss"][0]
        after = sim.evaluate({net.inp: x}, {net.p: y})
        assert after["loss"] < 0.05 * before["loss"]
        np.testing.assert_allclose(sim.data[net.conn].weights, [[1.0, -2.0]], atol=0.3)
        pred = sim.predict({net.inp: x})
        np.testing.assert_allclose(pred[net.p], x @ sim.data[net.conn].weights.T, atol=1e-5)
        assert sim.predict_on_batch({net.inp: x[:8]})[net.p].shape == (8, 1, 1)
        assert (tmp_path / "best.npz").exists()


def test_keras_layer_weights_train_inside_nengo_model(tmp_path):
    layer = keras.layers.Dense(1, use_bias=False)
    with nengo.Network(seed=0) as net:
        inp = nengo.Node(np.zeros(2))
        node, conn = nengodl.Layer(layer)(inp, return_conn=True)
        p = nengo.Probe(node)
    x, y = data()
    with nengodl.Simulator(net, minibatch_size=8, progress_bar=False) as sim:
        w0 = layer.kernel.numpy().copy()
        sim.compile(keras.optimizers.Adam(0.1), loss="mse")
        hist = sim.fit({inp: x}, {p: y}, epochs=200)
        assert hist.history["loss"][-1] < 0.01 * hist.history["loss"][0]
        assert not np.allclose(layer.kernel.numpy(), w0)
        # Layer's input connection does not train (as in NengoDL 3): the kernel is the fit
        assert float(sim.data[conn].weights) == 1.0
        np.testing.assert_allclose(layer.kernel.numpy()[:, 0], [1.0, -2.0], atol=0.05)
        trained = layer.kernel.numpy().copy()
        sim.save_params(tmp_path / "k")
        layer.kernel.assign(w0)
        sim.load_params(tmp_path / "k")
        np.testing.assert_array_equal(layer.kernel.numpy(), trained)
        sim.reset(include_trainable=True)  # back to the layer's weights as built
        np.testing.assert_array_equal(layer.kernel.numpy(), w0)
        assert float(sim.data[conn].weights) == 1.0


def test_sparse_categorical_targets_are_class_indices():
    # three linearly separable classes; targets are class indices (batch, steps, 1)
    rng = np.random.RandomState(1)
    x = rng.randn(64, 1, 2)
    labels = np.argmax(np.concatenate([x, np.zeros((64, 1, 1))], axis=-1), axis=-1)[..., None]
    with nengo.Network(seed=0) as net:
        inp = nengo.Node(np.zeros(2))
        out = nengodl.Layer(keras.layers.Dense(3))(inp)
        p = nengo.Probe(out)
    with nengodl.Simulator(net, minibatch_size=16, progress_bar=False) as sim:
        sim.compile(
            keras.optimizers.Adam(0.05),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        before = sim.evaluate({inp: x}, {p: labels})["loss"]
        sim.fit({inp: x}, {p: labels}, epochs=30, verbose=0)
        after = sim.evaluate({inp: x}, {p: labels})["loss"]
        pred = sim.predict({inp: x})[p][:, 0].argmax(axis=-1)
    # the loss is Keras' own on the same logits
    ref = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    assert after < 0.6 * before
    assert np.mean(pred == labels[:, 0, 0]) > 0.9
    with nengodl.Simulator(net, minibatch_size=16, progress_bar=False) as sim:
        sim.compile(loss=ref)
        logits = sim.predict({inp: x})[p]
        np.testing.assert_allclose(
            sim.evaluate({inp: x}, {p: labels})["loss"],
            float(ref(labels.reshape(-1, 1), logits.reshape(-1, 3))),
            rtol=1e-4,
        )
