"""Keras 3's own arguments of fit / evaluate / predict / compile, against Keras on
the equivalent Keras model (a linear map: one nengo Connection, one Dense layer)."""

import warnings

import keras
import nengo
import numpy as np
import pytest
from nengo.exceptions import ValidationError

import nengodl

W = np.array([[0.5, -0.3]])
RNG = np.random.RandomState(0)
X = RNG.randn(16, 2).astype(np.float32)
Y = (X @ np.array([[1.0], [2.0]])).astype(np.float32)


def linear_net():
    with nengo.Network() as net:
        net.a = nengo.Node(np.zeros(2))
        b = nengo.Node(size_in=1)
        net.conn = nengo.Connection(net.a, b, transform=W, synapse=None)
        net.p = nengo.Probe(b)
    return net


def keras_model():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, use_bias=False)])
    model.layers[0].set_weights([W.T])
    model.compile(keras.optimizers.SGD(0.1), "mse")
    return model


def ran_out(caught):
    return [w for w in caught if "ran out of data" in str(w.message)]


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(epochs=3, validation_split=0.25),
        dict(epochs=3, steps_per_epoch=3),  # the second epoch runs out of data
        dict(epochs=4, validation_split=0.5, validation_freq=2),
        dict(epochs=3, validation_split=0.5, validation_freq=[1, 3]),
        dict(epochs=2, validation_split=0.5, validation_steps=1),
    ],
    ids=["split", "steps-per-epoch", "freq", "freq-list", "validation-steps"],
)
def test_fit_arguments_train_as_keras_does(kwargs):
    net = linear_net()
    with warnings.catch_warnings(record=True) as ours:
        warnings.simplefilter("always")
        with nengodl.Simulator(net, minibatch_size=4, progress_bar=False) as sim:
            sim.compile(keras.optimizers.SGD(0.1), "mse")
            history = sim.fit(
                {net.a: X[:, None]}, {net.p: Y[:, None]}, shuffle=False, verbose=0, **kwargs
            )
            weights = sim.data[net.conn].weights
    model = keras_model()
    with warnings.catch_warnings(record=True) as theirs:
        warnings.simplefilter("always")
        want = model.fit(X, Y, batch_size=4, shuffle=False, verbose=0, **kwargs)
    assert set(want.history) <= set(history.history)
    for key, values in want.history.items():
        np.testing.assert_allclose(history.history[key], values, rtol=1e-5, err_msg=key)
    np.testing.assert_allclose(weights, model.layers[0].get_weights()[0].T, atol=1e-6)
    assert len(ran_out(ours)) == len(ran_out(theirs))


def test_validation_batch_size_warns_as_batch_size_does():
    net = linear_net()
    with nengodl.Simulator(net, minibatch_size=4, progress_bar=False) as sim:
        sim.compile(keras.optimizers.SGD(0.1), "mse")
        with pytest.warns(UserWarning, match="ignores validation_batch_size=8"):
            sim.fit(
                {net.a: X[:, None]},
                {net.p: Y[:, None]},
                validation_split=0.5,
                validation_batch_size=8,
                verbose=0,
            )


@pytest.mark.parametrize(
    "kwargs, attr",
    [
        (dict(validation_split=1.0), "validation_split"),
        (dict(validation_split="half"), "validation_split"),
        (dict(validation_split=0.01), "validation_split"),  # no item left to validate
        (dict(validation_freq=0), "validation_freq"),
        (dict(steps_per_epoch=0), "steps"),
    ],
)
def test_bad_fit_arguments_are_refused_before_training(kwargs, attr):
    net = linear_net()
    with nengodl.Simulator(net, minibatch_size=4, progress_bar=False) as sim:
        before = sim.data[net.conn].weights.copy()
        sim.compile(keras.optimizers.SGD(0.1), "mse")
        with pytest.raises(ValidationError) as info:
            sim.fit({net.a: X[:, None]}, {net.p: Y[:, None]}, verbose=0, **kwargs)
        assert info.value.attr == attr
        np.testing.assert_array_equal(sim.data[net.conn].weights, before)


def test_evaluate_steps_and_return_dict_as_keras():
    net = linear_net()
    model = keras_model()
    with nengodl.Simulator(net, minibatch_size=4, progress_bar=False) as sim:
        sim.compile(keras.optimizers.SGD(0.1), "mse", metrics=["mae"])
        model.compile(keras.optimizers.SGD(0.1), "mse", metrics=["mae"])
        logs = sim.evaluate({net.a: X[:, None]}, {net.p: Y[:, None]}, steps=2, verbose=0)
        values = sim.evaluate(
            {net.a: X[:, None]}, {net.p: Y[:, None]}, steps=2, return_dict=False, verbose=0
        )
        sim.compile(keras.optimizers.SGD(0.1), "mse")
        alone = sim.evaluate({net.a: X[:, None]}, {net.p: Y[:, None]}, return_dict=False)
    loss, mae = model.evaluate(X, Y, batch_size=4, steps=2, verbose=0)
    np.testing.assert_allclose([logs["loss"], logs["probe_mae"]], [loss, mae], rtol=1e-5)
    assert values == list(logs.values()) and values[0] == logs["loss"]
    # one probe, no metrics: Keras returns its loss alone; nengodl's logs also hold the
    # per-probe loss, so this is [loss, probe_loss]
    want = keras_model().evaluate(X, Y, batch_size=4, verbose=0)
    np.testing.assert_allclose(alone, [want, want], rtol=1e-6)


def test_predict_steps_as_keras():
    net = linear_net()
    with nengodl.Simulator(net, minibatch_size=4, progress_bar=False) as sim:
        out = sim.predict({net.a: X[:, None]}, steps=3, verbose=0)
        with pytest.warns(UserWarning, match="ran out of data"):
            more = sim.predict({net.a: X[:, None]}, steps=5, verbose=0)
    want = keras_model().predict(X, batch_size=4, steps=3, verbose=0)
    np.testing.assert_allclose(out[net.p][:, 0], want, rtol=1e-5)
    assert more[net.p].shape == (16, 1, 1)  # all there is


def test_compile_keras_arguments():
    net = linear_net()
    with nengodl.Simulator(net, minibatch_size=4, progress_bar=False) as sim:
        sim.compile(keras.optimizers.SGD(0.1), "mse", steps_per_execution=4, jit_compile="auto")
        loss = sim.evaluate({net.a: X[:, None]}, {net.p: Y[:, None]}, verbose=0)["loss"]
        with pytest.warns(UserWarning, match="Simulator\\(jit=...\\)"):
            sim.compile(keras.optimizers.SGD(0.1), "mse", jit_compile=not sim.jit)
        with pytest.raises(ValidationError, match="run_eagerly"):
            sim.compile(keras.optimizers.SGD(0.1), "mse", run_eagerly=True)
        with pytest.raises(ValidationError, match="at least 1"):
            sim.compile(keras.optimizers.SGD(0.1), "mse", steps_per_execution=0)
        # the compiled settings in force are the last accepted ones
        again = sim.evaluate({net.a: X[:, None]}, {net.p: Y[:, None]}, verbose=0)["loss"]
    np.testing.assert_allclose(again, loss)
    np.testing.assert_allclose(loss, keras_model().evaluate(X, Y, batch_size=4, verbose=0))


# --- sample_weight and class_weight ----------------------------------------------------

SW = RNG.uniform(0, 2, size=16).astype(np.float32)


def fit_both(fit_kwargs, keras_kwargs=None, metrics=()):
    """nengodl's fit on `linear_net` and Keras's on `keras_model`: (history, weights)."""
    net = linear_net()
    with nengodl.Simulator(net, minibatch_size=4, progress_bar=False) as sim:
        sim.compile(keras.optimizers.SGD(0.1), "mse", metrics=list(metrics))
        history = sim.fit(
            {net.a: X[:, None]}, {net.p: Y[:, None]}, shuffle=False, verbose=0, **fit_kwargs
        )
        weights = sim.data[net.conn].weights
    model = keras_model()
    model.compile(keras.optimizers.SGD(0.1), "mse", metrics=list(metrics))
    kw = fit_kwargs if keras_kwargs is None else keras_kwargs
    want = model.fit(X, Y, batch_size=4, shuffle=False, verbose=0, **kw)
    return history.history, want.history, weights, model.layers[0].get_weights()[0].T


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(epochs=2, sample_weight=SW),
        dict(epochs=2, sample_weight=SW, validation_split=0.25),
        dict(epochs=2, validation_data=(X[:8], Y[:8], SW[:8])),
    ],
    ids=["items", "split", "validation-data"],
)
def test_sample_weight_trains_as_keras(kwargs):
    def both(kwargs):
        ours = dict(kwargs)
        if "validation_data" in kwargs:  # nengodl's data are (batch, n_steps, size)
            x, y, *w = kwargs["validation_data"]
            ours["validation_data"] = (x[:, None], y[:, None], *w)
        return fit_both(ours, kwargs, metrics=["mae"])

    ours, theirs, w_ours, w_theirs = both(kwargs)
    for key, values in theirs.items():
        # Keras weighs the loss, not the metrics given to compile(metrics=...)
        name = key.replace("mae", "probe_mae")
        np.testing.assert_allclose(ours[name], values, rtol=1e-5, err_msg=key)
    np.testing.assert_allclose(w_ours, w_theirs, atol=1e-6)
    # and the weights mattered
    unweighted = {k: v for k, v in kwargs.items() if k != "sample_weight"}
    if "validation_data" in unweighted:
        unweighted["validation_data"] = unweighted["validation_data"][:2]
    plain, *_ = both(unweighted)
    key = "val_loss" if "validation_data" in unweighted else "loss"
    assert not np.allclose(plain[key], ours[key], rtol=1e-3)


def test_temporal_sample_weight_and_evaluate_sample_weight_as_keras():
    rng = np.random.RandomState(1)
    x = rng.randn(8, 3, 2).astype(np.float32)  # 3 steps
    y = rng.randn(8, 3, 1).astype(np.float32)
    sw = rng.uniform(0, 2, size=(8, 3)).astype(np.float32)
    net = linear_net()
    with nengodl.Simulator(net, minibatch_size=4, progress_bar=False) as sim:
        sim.compile(keras.optimizers.SGD(0.1), "mse")
        history = sim.fit({net.a: x}, {net.p: y}, sample_weight=sw, shuffle=False, verbose=0)
        logs = sim.evaluate({net.a: x}, {net.p: y}, sample_weight=sw[:, 0], verbose=0)
    model = keras.Sequential([keras.Input((3, 2)), keras.layers.Dense(1, use_bias=False)])
    model.layers[0].set_weights([W.T])
    model.compile(keras.optimizers.SGD(0.1), "mse")
    want = model.fit(x, y, batch_size=4, sample_weight=sw, shuffle=False, verbose=0)
    np.testing.assert_allclose(history.history["loss"], want.history["loss"], rtol=1e-5)
    # one weight per item weighs each of its steps (Keras wants them spelled out here)
    per_step = np.repeat(sw[:, :1], 3, axis=1)
    loss = model.evaluate(x, y, batch_size=4, sample_weight=per_step, verbose=0)
    np.testing.assert_allclose(logs["loss"], loss, rtol=1e-5)


def test_class_weight_as_keras():
    rng = np.random.RandomState(2)
    w0 = rng.randn(3, 2)
    x = rng.randn(16, 2).astype(np.float32)
    labels = rng.randint(3, size=(16, 1))
    class_weight = {0: 1.0, 1: 3.0, 2: 0.5}
    with nengo.Network() as net:
        a = nengo.Node(np.zeros(2))
        b = nengo.Node(size_in=3)
        conn = nengo.Connection(a, b, transform=w0, synapse=None)
        p = nengo.Probe(b)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    with nengodl.Simulator(net, minibatch_size=4, progress_bar=False) as sim:
        sim.compile(keras.optimizers.SGD(0.5), loss)
        history = sim.fit(
            {a: x[:, None]},
            {p: labels[:, None]},
            class_weight=class_weight,
            epochs=2,
            shuffle=False,
            verbose=0,
        )
        trained = sim.data[conn].weights
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3, use_bias=False)])
    model.layers[0].set_weights([w0.T])
    model.compile(keras.optimizers.SGD(0.5), loss)
    want = model.fit(
        x, labels, batch_size=4, class_weight=class_weight, epochs=2, shuffle=False, verbose=0
    )
    np.testing.assert_allclose(history.history["loss"], want.history["loss"], rtol=1e-5)
    np.testing.assert_allclose(trained, model.layers[0].get_weights()[0].T, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(sample_weight=np.ones(15)), r"shape \(15,\); expected \(16,\) or \(16, 1\)"),
        (dict(sample_weight=np.full(16, np.nan)), "finite"),
        (dict(class_weight=[1.0, 2.0]), "dict from class index"),
        # Keras 3 refuses both too ("You cannot `class_weight` and `sample_weight`...")
        (dict(class_weight={0: 1.0}, sample_weight=np.ones(16)), "not both"),
        # no probe with targets: the weights would weigh nothing
        (dict(sample_weight=np.ones(16), y=None), "no probe with a loss has targets"),
    ],
)
def test_bad_weights_are_refused_before_training(kwargs, match):
    net = linear_net()
    with nengodl.Simulator(net, minibatch_size=4, progress_bar=False) as sim:
        before = sim.data[net.conn].weights.copy()
        sim.compile(keras.optimizers.SGD(0.1), "mse")
        y = kwargs.pop("y", {net.p: Y[:, None]})
        if y is None:  # a loss that needs no targets
            sim.compile(keras.optimizers.SGD(0.1), nengodl.losses.Regularize())
        with pytest.raises(ValidationError, match=match):
            sim.fit({net.a: X[:, None]}, y, verbose=0, **kwargs)
        np.testing.assert_array_equal(sim.data[net.conn].weights, before)


def test_weighted_metrics_see_the_sample_weights_as_keras():
    net = linear_net()

    def metrics():  # each model its own Metric objects
        return dict(metrics=["mae"], weighted_metrics=["mae", keras.metrics.MeanSquaredError()])

    with nengodl.Simulator(net, minibatch_size=4, progress_bar=False) as sim:
        sim.compile(keras.optimizers.SGD(0.1), "mse", **metrics())
        logs = sim.evaluate({net.a: X[:, None]}, {net.p: Y[:, None]}, sample_weight=SW, verbose=0)
        unweighted = sim.evaluate({net.a: X[:, None]}, {net.p: Y[:, None]}, verbose=0)
    model = keras_model()
    model.compile(keras.optimizers.SGD(0.1), "mse", **metrics())
    want = model.evaluate(X, Y, batch_size=4, sample_weight=SW, verbose=0, return_dict=True)
    assert set(want) == {"loss", "mae", "weighted_mae", "mean_squared_error"}
    for key, value in want.items():
        name = key if key == "loss" else f"probe_{key}"
        np.testing.assert_allclose(logs[name], value, rtol=1e-5, err_msg=key)
    assert not np.isclose(logs["probe_weighted_mae"], logs["probe_mae"], rtol=1e-3)
    # without sample weights, weighted metrics are the plain ones (as in Keras)
    np.testing.assert_allclose(unweighted["probe_weighted_mae"], unweighted["probe_mae"])


@pytest.mark.parametrize("per_step", [True, False], ids=["per-step", "per-item"])
def test_weighted_metrics_over_steps_as_keras(per_step):
    """Weighted metrics of a run of several steps: Keras's on the same model over
    (batch, steps, dims) data, with per-item weights spelled out per step."""
    rng = np.random.RandomState(4)
    x = rng.randn(8, 3, 2).astype(np.float32)
    y = rng.randn(8, 3, 1).astype(np.float32)
    sw = rng.uniform(0, 2, size=(8, 3) if per_step else (8,)).astype(np.float32)
    net = linear_net()

    def metrics():
        return dict(metrics=["mae"], weighted_metrics=["mae", keras.metrics.MeanSquaredError()])

    with nengodl.Simulator(net, minibatch_size=4, progress_bar=False) as sim:
        sim.compile(keras.optimizers.SGD(0.1), "mse", **metrics())
        logs = sim.evaluate({net.a: x}, {net.p: y}, sample_weight=sw, verbose=0)
    model = keras.Sequential([keras.Input((3, 2)), keras.layers.Dense(1, use_bias=False)])
    model.layers[0].set_weights([W.T])
    model.compile(keras.optimizers.SGD(0.1), "mse", **metrics())
    weights = sw if per_step else np.repeat(sw[:, None], 3, axis=1)
    want = model.evaluate(x, y, batch_size=4, sample_weight=weights, verbose=0, return_dict=True)
    for key, value in want.items():
        name = key if key == "loss" else f"probe_{key}"
        np.testing.assert_allclose(logs[name], value, rtol=1e-5, err_msg=key)
    assert not np.isclose(logs["probe_weighted_mae"], logs["probe_mae"], rtol=1e-3)


@pytest.mark.parametrize("one_hot", [False, True])
def test_accuracy_by_name_is_chosen_by_the_shapes_as_keras(one_hot):
    rng = np.random.RandomState(3)
    w0 = rng.randn(3, 2)
    x = rng.randn(16, 2).astype(np.float32)
    labels = rng.randint(3, size=(16, 1))
    y = np.eye(3, dtype=np.float32)[labels[:, 0]] if one_hot else labels
    loss = (
        keras.losses.CategoricalCrossentropy(from_logits=True)
        if one_hot
        else keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    with nengo.Network() as net:
        a = nengo.Node(np.zeros(2))
        b = nengo.Node(size_in=3)
        nengo.Connection(a, b, transform=w0, synapse=None)
        p = nengo.Probe(b)
    with nengodl.Simulator(net, minibatch_size=4, progress_bar=False) as sim:
        sim.compile(keras.optimizers.SGD(0.5), loss, metrics=["accuracy", "acc"])
        logs = sim.evaluate({a: x[:, None]}, {p: y[:, None]}, verbose=0)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3, use_bias=False)])
    model.layers[0].set_weights([w0.T])
    model.compile(keras.optimizers.SGD(0.5), loss, metrics=["accuracy", "acc"])
    want = model.evaluate(x, y, batch_size=4, verbose=0, return_dict=True)
    predicted = np.argmax(x @ w0.T, axis=1)
    np.testing.assert_allclose(want["accuracy"], np.mean(predicted == labels[:, 0]))
    for key in ("accuracy", "acc"):
        np.testing.assert_allclose(logs[f"probe_{key}"], want[key], rtol=1e-6)


def test_validation_split_without_data_is_refused():
    net = linear_net()
    with nengodl.Simulator(net, minibatch_size=4, progress_bar=False) as sim:
        sim.compile(keras.optimizers.SGD(0.1), nengodl.losses.Regularize())
        with pytest.raises(ValidationError, match="none is given"):
            sim.fit(n_steps=5, validation_split=0.5, verbose=0)


class BatchLogs(keras.callbacks.Callback):
    """Records the logs each batch hook is given."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def on_train_batch_end(self, batch, logs=None):
        self.seen.append(("train", batch, dict(logs)))

    def on_test_batch_end(self, batch, logs=None):
        self.seen.append(("test", batch, dict(logs)))

    def on_predict_batch_end(self, batch, logs=None):
        self.seen.append(("predict", batch, dict(logs)))


def test_batch_callbacks_get_running_logs_as_keras():
    """Keras 3 gives each batch hook the means so far over the epoch (or pass),
    and each predict batch hook that batch's outputs."""
    net = linear_net()
    ours, theirs = BatchLogs(), BatchLogs()
    with nengodl.Simulator(net, minibatch_size=4, progress_bar=False) as sim:
        sim.compile(keras.optimizers.SGD(0.1), "mse", metrics=["mae"])
        sim.fit(
            {net.a: X[:, None]},
            {net.p: Y[:, None]},
            epochs=2,
            validation_split=0.25,
            shuffle=False,
            verbose=0,
            callbacks=[ours],
        )
        sim.evaluate({net.a: X[:, None]}, {net.p: Y[:, None]}, verbose=0, callbacks=[ours])
        sim.predict({net.a: X[:, None]}, verbose=0, callbacks=[ours])
    model = keras_model()
    model.compile(keras.optimizers.SGD(0.1), "mse", metrics=["mae"])
    model.fit(
        X,
        Y,
        batch_size=4,
        epochs=2,
        validation_split=0.25,
        shuffle=False,
        verbose=0,
        callbacks=[theirs],
    )
    model.evaluate(X, Y, batch_size=4, verbose=0, callbacks=[theirs])
    model.predict(X, batch_size=4, verbose=0, callbacks=[theirs])
    assert [s[:2] for s in ours.seen] == [s[:2] for s in theirs.seen]
    losses = [(s[2]["loss"], s[2]["mae"]) for s in theirs.seen if s[0] != "predict"]
    assert len(set(losses)) > len(losses) // 2  # running means: most differ from each other
    for (kind, batch, got), (_, _, want) in zip(ours.seen, theirs.seen):
        where = f"{kind} batch {batch}"
        if kind == "predict":
            np.testing.assert_allclose(got["outputs"][:, 0], want["outputs"], rtol=1e-5)
            continue
        np.testing.assert_allclose(got["loss"], want["loss"], rtol=1e-5, err_msg=where)
        np.testing.assert_allclose(got["probe_mae"], want["mae"], rtol=1e-5, err_msg=where)


def test_fit_with_validation_traces_its_steps_once():
    # the loss is called only while a step is traced: as many traces for 6
    # epochs as for 2 (each epoch used to trace its validation step anew)
    def count_traces(epochs):
        traces = []

        def loss(y_true, y_pred):
            traces.append(1)
            return keras.ops.mean(keras.ops.square(y_true - y_pred))

        x, y = np.ones((4, 1, 2)), np.ones((4, 1, 1))
        with nengodl.Simulator(linear_net(), minibatch_size=2, progress_bar=False) as sim:
            sim.compile(keras.optimizers.SGD(0.1), loss=loss)
            sim.fit(x, y, epochs=epochs, validation_data=(x, y), verbose=0)
            sim.evaluate(x, y, verbose=0)
        return len(traces)

    two, six = count_traces(2), count_traces(6)
    assert two == six <= 4, (two, six)
