"""nengodl.losses against numpy closed forms, Keras' own reductions and training runs."""

import keras
import nengo
import numpy as np
import pytest
import tensorflow as tf
from conftest import linear_net
from nengo.exceptions import ValidationError

import nengodl
from nengodl.losses import Regularize, nan_mse


def np_norm(x, order, axis):
    """Vector ``order``-norm along ``axis``, written out."""
    if order == np.inf:
        return np.max(np.abs(x), axis=axis)
    return np.sum(np.abs(x) ** order, axis=axis) ** (1 / order)


# --- nan_mse ------------------------------------------------------------------------


def nan_data(seed=0, shape=(4, 5, 3)):
    rng = np.random.RandomState(seed)
    y_true, y_pred = rng.randn(*shape), rng.randn(*shape)
    y_true[rng.rand(*shape) < 0.3] = np.nan
    return y_true, y_pred


def test_nan_mse_divides_by_all_elements():
    y_true, y_pred = nan_data()
    nan = np.isnan(y_true)
    assert 0 < nan.sum() < nan.size
    sq = np.where(nan, 0, (y_true - y_pred) ** 2)
    value = float(nan_mse(tf.constant(y_true), tf.constant(y_pred)))
    np.testing.assert_allclose(value, sq.sum() / y_true.size, rtol=1e-12)
    # ... not by the number of non-NaN targets, as nengodl.obj.mse does
    assert not np.isclose(value, sq.sum() / (~nan).sum())
    np.testing.assert_allclose(
        float(nengodl.obj.mse(tf.constant(y_pred), tf.constant(y_true))), sq.sum() / (~nan).sum()
    )


def test_nan_mse_without_nans_is_keras_mse():
    rng = np.random.RandomState(1)
    y_true, y_pred = rng.randn(3, 4, 2), rng.randn(3, 4, 2)
    ref = keras.losses.MeanSquaredError()(y_true, y_pred)
    np.testing.assert_allclose(float(nan_mse(y_true, y_pred)), float(ref), rtol=1e-6)


def test_nan_mse_gradient_is_zero_at_nan_targets():
    y_true, y_pred = nan_data(2)
    pred = tf.Variable(y_pred)
    with tf.GradientTape() as tape:
        loss = nan_mse(tf.constant(y_true), pred)
    grad = tape.gradient(loss, pred).numpy()
    nan = np.isnan(y_true)
    expected = np.where(nan, 0, -2 * (y_true - y_pred) / y_true.size)
    np.testing.assert_allclose(grad, expected, atol=1e-14)


def test_nan_mse_broadcasts_targets_and_casts_dtype():
    y_pred = tf.constant(np.arange(6.0).reshape(1, 2, 3), tf.float32)
    y_true = np.array([[[1], [np.nan]]])  # float64, one value for every output
    value = nan_mse(y_true, y_pred)
    assert value.dtype == tf.float32
    np.testing.assert_allclose(float(value), (1 + 0 + 1) / 6)


def test_nan_mse_in_fit_one_sgd_step_matches_numpy():
    rng = np.random.RandomState(3)
    W0 = rng.randn(2, 3)
    x, y = rng.randn(8, 1, 3), rng.randn(8, 1, 2)
    y[rng.rand(*y.shape) < 0.4] = np.nan
    lr = 0.1
    net = linear_net(W0)  # NaN targets are accepted (as missing) with check_finite on
    with nengodl.Simulator(net, minibatch_size=8, progress_bar=False, dtype="float64") as sim:
        sim.compile(keras.optimizers.SGD(lr), loss={net.p: nan_mse}, metrics={net.p: nan_mse})
        before = sim.evaluate({net.inp: x}, {net.p: y}, verbose=0)
        sim.fit({net.inp: x}, {net.p: y}, epochs=1, shuffle=False, verbose=0)
        W1 = sim.data[net.conn].weights
    xs, ys = x[:, 0], y[:, 0]
    err = np.where(np.isnan(ys), 0, xs @ W0.T - ys)
    np.testing.assert_allclose(before["loss"], np.sum(err**2) / ys.size, rtol=1e-10)
    np.testing.assert_allclose(before["probe_nan_mse"], before["loss"], rtol=1e-10)
    grad = 2 * err.T @ xs / ys.size
    np.testing.assert_allclose(W1, W0 - lr * grad, atol=1e-12)


# --- Regularize: values -------------------------------------------------------------

X = np.random.RandomState(4).randn(2, 3, 4, 5)  # (batch, steps) + a (4, 5) output


@pytest.mark.parametrize("order", [1, 2, "euclidean", "fro", 3, 0.5, np.inf])
def test_regularize_axis_none_is_mean_norm_of_each_flattened_step(order):
    p = 2 if order in ("euclidean", "fro") else order
    expected = np.mean(np_norm(X.reshape(2, 3, 20), p, axis=-1))
    value = Regularize(order=order)(None, tf.constant(X))
    assert value.dtype == tf.float64
    np.testing.assert_allclose(float(value), expected, rtol=1e-12)


@pytest.mark.parametrize("axis, full_axis", [(0, 2), (1, 3), (-1, 3), (-2, 2)])
@pytest.mark.parametrize("order", [1, 2])
def test_regularize_axis_counts_within_one_step(axis, full_axis, order):
    norms = Regularize(order=order, axis=axis, reduction=None)(None, X)
    expected = np_norm(X, order, axis=full_axis)
    assert norms.shape == expected.shape
    np.testing.assert_allclose(norms.numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(
        float(Regularize(order=order, axis=axis)(None, X)), expected.mean(), rtol=1e-12
    )


def test_regularize_weight_multiplies_and_targets_are_ignored():
    base = float(Regularize()(None, X))
    np.testing.assert_allclose(float(Regularize(weight=0.25)(None, X)), 0.25 * base)
    assert float(Regularize()(np.full_like(X, 7.0), X)) == base
    assert float(Regularize(weight=None)(X * 0 + 1, X)) == base


class KerasNorms(keras.losses.Loss):
    """A Keras loss whose elements are norms along the last axis (reduced by Keras)."""

    def __init__(self, reshape, order, reduction):
        super().__init__(reduction=reduction)
        self.reshape, self.order = reshape, order

    def call(self, y_true, y_pred):
        return keras.ops.norm(self.reshape(y_pred), ord=self.order, axis=-1)


SAMPLE_WEIGHTS = {
    "none": None,
    "per_norm": np.arange(6, dtype=np.float32).reshape(2, 3),
    "per_norm_1": np.arange(6, dtype=np.float32).reshape(2, 3, 1),
    "per_item": np.array([[0.5], [2.0]], np.float32),
}


@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "sum", "mean", None, "none"])
@pytest.mark.parametrize("weights", list(SAMPLE_WEIGHTS))
def test_regularize_reductions_as_keras(reduction, weights):
    """Keras' own reduction of the same norms is the reference."""
    x = X.astype(np.float32)
    reference = KerasNorms(lambda p: keras.ops.reshape(p, (2, 3, -1)), 2, reduction=reduction)
    sw = SAMPLE_WEIGHTS[weights]
    got = Regularize(reduction=reduction)(None, x, sample_weight=sw)
    np.testing.assert_allclose(got.numpy(), reference(x, x, sample_weight=sw).numpy(), rtol=1e-5)


def test_regularize_mean_with_sample_weight_as_keras():
    x = X[:, :, 0].astype(np.float32)  # (2, 3, 5): per-step norms (2, 3)
    sw = np.array([[1.0], [3.0]], np.float32)
    reference = KerasNorms(lambda p: p, 1, reduction="mean_with_sample_weight")
    got = Regularize(order=1, reduction="mean_with_sample_weight")(None, x, sample_weight=sw)
    np.testing.assert_allclose(float(got), float(reference(x, x, sample_weight=sw)), rtol=1e-5)


@pytest.mark.parametrize("order", [1, 2, 3, 0.5, np.inf])
def test_regularize_gradient_is_zero_not_nan_at_zero(order):
    x = tf.Variable(np.zeros((1, 2, 3)))
    with tf.GradientTape() as tape:
        loss = Regularize(order=order)(None, x)
    grad = tape.gradient(loss, x).numpy()
    assert float(loss) == 0
    np.testing.assert_array_equal(grad, 0)


def test_regularize_l2_gradient_is_unit_direction():
    x = tf.Variable(X)
    with tf.GradientTape() as tape:
        loss = Regularize(reduction="sum")(None, x)
    flat = X.reshape(2, 3, 20)
    expected = (flat / np.linalg.norm(flat, axis=-1, keepdims=True)).reshape(X.shape)
    np.testing.assert_allclose(tape.gradient(loss, x).numpy(), expected, rtol=1e-10)


def test_regularize_config_round_trip():
    reg = Regularize(order=1, axis=-1, weight=0.5, reduction="sum", name="l1")
    copy = keras.losses.deserialize(keras.losses.serialize(reg))
    assert isinstance(copy, Regularize)
    assert (copy.order, copy.axis, copy.weight, copy.reduction, copy.name) == (
        1,
        -1,
        0.5,
        "sum",
        "l1",
    )
    assert float(copy(None, X)) == float(reg(None, X))
    assert Regularize.needs_targets is False


@pytest.mark.parametrize(
    "kwargs, attr",
    [
        ({"order": 0}, "order"),
        ({"order": -1}, "order"),
        ({"order": "nuc"}, "order"),
        ({"order": True}, "order"),
        ({"order": np.nan}, "order"),
        ({"axis": 1.5}, "axis"),
        ({"axis": "0"}, "axis"),
        ({"weight": "x"}, "weight"),
        ({"weight": np.inf}, "weight"),
        ({"reduction": "average"}, "reduction"),
    ],
)
def test_regularize_bad_arguments_name_the_parameter(kwargs, attr):
    with pytest.raises(ValidationError, match=rf"Regularize\.{attr}: ") as info:
        Regularize(**kwargs)
    assert info.value.attr == attr


def test_regularize_bad_shapes_are_refused():
    with pytest.raises(ValidationError, match=r"Regularize\.axis: axis 2 is out of range"):
        Regularize(axis=2)(None, X)
    with pytest.raises(ValidationError, match=r"Regularize\.axis: axis -3 is out of range"):
        Regularize(axis=-3)(None, X)
    with pytest.raises(ValidationError, match=r"3 or more axes \(got shape \(2, 3\)\)"):
        Regularize()(None, np.ones((2, 3)))


# --- Regularize in compile / fit / evaluate --------------------------------------------


def weights_net():
    with nengo.Network(seed=1) as net:
        net.inp = nengo.Node([1.0, 0.5])
        net.out = nengo.Node(size_in=3)
        net.conn = nengo.Connection(
            net.inp, net.out, transform=nengodl.dists.Glorot(), synapse=None
        )
        net.w_p = nengo.Probe(net.conn, "weights")
        net.out_p = nengo.Probe(net.out)
    return net


@pytest.mark.parametrize("no_target", ["left_out", "none"])
def test_fit_regularize_on_weights_shrinks_norm_as_sgd_on_the_norm(no_target):
    """SGD on ||W|| steps W by lr along -W/||W||: the norm falls by lr per update."""
    net = weights_net()
    lr, epochs = 0.05, 6
    with nengodl.Simulator(net, minibatch_size=2, progress_bar=False, dtype="float64") as sim:
        W0 = sim.data[net.conn].weights.copy()
        norm0 = np.linalg.norm(W0)
        assert norm0 > epochs * lr
        sim.compile(keras.optimizers.SGD(lr), loss={net.w_p: Regularize()})
        y = None if no_target == "left_out" else {net.w_p: None}
        np.testing.assert_allclose(sim.evaluate(y=y, n_steps=3, verbose=0)["loss"], norm0)
        history = sim.fit(y=y, n_steps=3, epochs=epochs, verbose=0)
        W1 = sim.data[net.conn].weights
    # the loss logged in each epoch is the norm before its update
    np.testing.assert_allclose(history.history["loss"], norm0 - lr * np.arange(epochs))
    # (SGD's learning rate is a float32 variable: 0.05 to 1e-9)
    np.testing.assert_allclose(np.linalg.norm(W1), norm0 - lr * epochs, rtol=1e-7)
    np.testing.assert_allclose(W1, W0 * (1 - lr * epochs / norm0), rtol=1e-7)


def test_fit_regularize_goes_to_zero_and_adds_to_a_target_loss():
    net = weights_net()
    x = {net.inp: np.ones((2, 3, 2))}
    with nengodl.Simulator(net, minibatch_size=2, progress_bar=False) as sim:
        W0 = sim.data[net.conn].weights.copy()
        sim.compile(
            keras.optimizers.Adam(0.05),
            loss={net.w_p: Regularize(weight=0.5), net.out_p: "mse"},
        )
        target = {net.out_p: np.zeros((2, 3, 3))}
        logs = sim.evaluate(x, target, verbose=0)
        out0 = W0 @ np.ones(2)
        np.testing.assert_allclose(logs["probe_loss"], 0.5 * np.linalg.norm(W0), rtol=1e-6)
        np.testing.assert_allclose(logs["probe_1_loss"], np.mean(out0**2), rtol=1e-5)
        np.testing.assert_allclose(
            logs["loss"], logs["probe_loss"] + logs["probe_1_loss"], rtol=1e-6
        )
        sim.fit(x, target, epochs=150, verbose=0)
        assert np.linalg.norm(sim.data[net.conn].weights) < 0.05 * np.linalg.norm(W0)


def test_single_regularize_loss_applies_to_every_probe():
    net = weights_net()
    with nengodl.Simulator(net, progress_bar=False, dtype="float64") as sim:
        W0 = sim.data[net.conn].weights
        sim.compile(loss=Regularize(order=1))
        logs = sim.evaluate(n_steps=2, verbose=0)
    np.testing.assert_allclose(logs["probe_loss"], np.abs(W0).sum())
    np.testing.assert_allclose(logs["probe_1_loss"], np.abs(W0 @ [1.0, 0.5]).sum())


def test_a_loss_that_needs_targets_without_one_is_refused():
    net = weights_net()
    with nengodl.Simulator(net, minibatch_size=2, progress_bar=False) as sim:
        sim.compile(keras.optimizers.SGD(0.1), loss={net.w_p: Regularize(), net.out_p: "mse"})
        W0 = sim.data[net.conn].weights.copy()
        for y in (None, {net.out_p: None}):
            with pytest.raises(ValidationError, match=r"has a loss \('mse'\) but no target in y"):
                sim.fit(y=y, n_steps=3, verbose=0)
            with pytest.raises(ValidationError, match="no target in y"):
                sim.evaluate(y=y, n_steps=3, verbose=0)
        np.testing.assert_array_equal(sim.data[net.conn].weights, W0)
        sim.compile(keras.optimizers.SGD(0.1), loss="mse")
        with pytest.raises(ValidationError, match="no Probe has targets in y"):
            sim.fit(n_steps=3, verbose=0)
