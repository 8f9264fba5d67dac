"""Converter: converted Keras models against Keras's own output and nengo.Simulator."""

import warnings

import keras
import nengo
import numpy as np
import pytest

import nengodl
from nengodl.converter import ConversionError

L = keras.layers


def model_of(shape, *layers, inputs=None):
    """A functional model applying ``layers`` in sequence to an input of ``shape``."""
    inp = keras.Input(shape)
    x = inp
    for layer in layers:
        x = layer(x)
    return keras.Model(inp, x)


def randomize(model, seed=0):
    """Random weights everywhere (so biases and batch statistics are not trivial)."""
    rng = np.random.RandomState(seed)
    for w in model.weights:
        value = rng.uniform(-1, 1, size=w.shape)
        if "variance" in w.path:
            value = rng.uniform(0.5, 2, size=w.shape)
        w.assign(value.astype(np.float32))
    return model


def inputs_for(model, batch=3, seed=1):
    rng = np.random.RandomState(seed)
    return [
        rng.uniform(-1, 1, size=(batch,) + tuple(t.shape[1:])).astype(np.float32)
        for t in model.inputs
    ]


def check(model, batch=3, native=True, atol=2e-5, **kwargs):
    """Convert ``model``; compare nengodl (minibatch) and nengo (item 0) with Keras."""
    randomize(model)
    xs = inputs_for(model, batch)
    expected = model.predict(xs if len(xs) > 1 else xs[0], verbose=0)
    expected = expected if isinstance(expected, list) else [expected]
    with warnings.catch_warnings():
        if native:
            warnings.simplefilter("error", UserWarning)
        conv = nengodl.Converter(model, allow_fallback=not native, **kwargs)
    in_nodes = [conv.inputs[t] for t in model.inputs]
    probes = [conv.outputs[t] for t in model.outputs]
    with nengodl.Simulator(conv.net, minibatch_size=batch, progress_bar=False) as sim:
        out = sim.predict_on_batch(
            {node: x.reshape(batch, 1, -1) for node, x in zip(in_nodes, xs)}
        )
    for probe, y in zip(probes, expected):
        np.testing.assert_allclose(out[probe][:, 0], y.reshape(batch, -1), atol=atol)
    if native:
        for node, x in zip(in_nodes, xs):
            node.output = x[0].ravel()
        with nengo.Simulator(conv.net, progress_bar=False) as nsim:
            nsim.step()
        for probe, y in zip(probes, expected):
            np.testing.assert_allclose(nsim.data[probe][0], y[0].ravel(), atol=atol)
    return conv


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh", "linear", None])
def test_dense_activations(activation):
    check(model_of((5,), L.Dense(4, activation=activation), L.Dense(3, use_bias=False)))


def test_dense_on_rank3_input_and_activation_layers():
    check(
        model_of(
            (2, 5),
            L.Dense(4),
            L.Activation("tanh"),
            L.ReLU(),
            L.LeakyReLU(negative_slope=0.2),
            L.Activation("sigmoid"),
        )
    )


@pytest.mark.parametrize(
    "layer, shape",
    [
        (L.Conv1D(3, 3, activation="relu"), (9, 2)),
        (L.Conv1D(3, 2, strides=2, padding="same"), (9, 2)),
        (L.Conv1D(2, 3, strides=2, dilation_rate=1, padding="causal"), (8, 2)),
        (L.Conv1D(2, 2, dilation_rate=2, padding="causal"), (6, 3)),
        (L.Conv2D(4, 3, activation="relu"), (6, 7, 2)),
        (L.Conv2D(4, (3, 2), strides=(2, 1), padding="same"), (7, 6, 3)),
        (L.Conv2D(4, 3, dilation_rate=2), (7, 7, 2)),
        (L.Conv2D(4, 3, groups=2, padding="same"), (5, 5, 4)),
        (
            L.Conv3D(2, 2, strides=(1, 2, 1), padding="same", activation="tanh"),
            (4, 5, 3, 2),
        ),
    ],
)
def test_convolutions(layer, shape):
    check(model_of(shape, layer, L.Flatten(), L.Dense(2)))


def test_batch_normalization_folded_and_dropout_removed():
    check(
        model_of((4, 3), L.BatchNormalization(), L.Dropout(0.5), L.Dense(2)),
        inference_only=True,
    )
    check(model_of((4, 3), L.BatchNormalization(axis=1)), inference_only=True)


@pytest.mark.parametrize(
    "layer, shape",
    [
        (L.AveragePooling1D(2), (7, 3)),
        (L.AveragePooling2D(2, strides=1, padding="same"), (5, 4, 2)),
        (L.AveragePooling2D((3, 2), padding="same"), (7, 5, 2)),
        (L.AveragePooling3D(2), (4, 4, 4, 2)),
        (L.GlobalAveragePooling1D(), (5, 3)),
        (L.GlobalAveragePooling2D(keepdims=True), (4, 3, 2)),
        (L.GlobalAveragePooling3D(), (2, 3, 2, 2)),
        (L.ZeroPadding1D((1, 2)), (4, 3)),
        (L.ZeroPadding2D(((1, 0), (2, 1))), (3, 4, 2)),
        (L.ZeroPadding3D(1), (2, 2, 2, 1)),
        (L.Reshape((6, 2)), (3, 4)),
    ],
)
def test_spatial_layers(layer, shape):
    check(model_of(shape, layer))


def test_max_to_avg_pool_uses_averages():
    model = model_of((2, 2, 1), L.MaxPooling2D(2))
    conv = nengodl.Converter(model, max_to_avg_pool=True)
    conv.inputs[model.inputs[0]].output = [1.0, 2.0, 3.0, 6.0]
    with nengo.Simulator(conv.net, progress_bar=False) as sim:
        sim.step()
    assert sim.data[conv.outputs[model.outputs[0]]][0, 0] == pytest.approx(3.0)


def test_functional_merges_and_nested_models():
    a = keras.Input((4,))
    b = keras.Input((2, 3))
    inner = keras.Sequential([keras.Input((6,)), L.Dense(4, activation="relu")])
    bb = inner(L.Flatten()(b))
    x = L.Add()([a, bb])
    y = L.Subtract()([x, a])
    z = L.Average()([x, y, a])
    c = L.Concatenate()([z, L.Dense(3)(a)])
    r = L.Concatenate(axis=1)([b, L.Reshape((1, 3))(L.Dense(3)(a))])
    model = keras.Model([a, b], [c, L.Flatten()(r)])
    conv = check(model)
    assert isinstance(conv.layers[inner], nengo.ensemble.Neurons)


def test_sequential_model():
    model = keras.Sequential(
        [keras.Input((6, 6, 1)), L.Conv2D(2, 3, activation="relu"), L.Flatten(), L.Dense(3)]
    )
    conv = check(model)
    inner = keras.Sequential([keras.Input((4,)), L.Dense(3, activation="tanh")])
    check(keras.Sequential([keras.Input((5,)), L.Dense(4), inner, L.Dense(2)]))
    called = keras.Sequential([L.Dense(3, activation="relu"), L.Dense(2)])
    called(np.zeros((1, 4), np.float32))  # built by a call, without keras.Input
    check(called)
    input_layer = model.inputs[0]._keras_history.operation
    assert conv.inputs[input_layer] is conv.inputs[model.inputs[0]]
    assert conv.inputs[input_layer.name] is conv.inputs[model.inputs[0]]
    assert conv.layers[model.layers[0]].ensemble.n_neurons == 4 * 4 * 2


def test_fallback_runs_keras_code_and_strict_mode_names_the_layer():
    model = model_of((4, 3), L.GlobalMaxPooling1D(), L.Dense(2, activation="softmax"))
    with pytest.warns(UserWarning, match="global_max_pooling1d"):
        check(model, native=False)
    with pytest.raises(ConversionError, match="GlobalMaxPooling1D"):
        nengodl.Converter(model, allow_fallback=False)
    with pytest.raises(ConversionError, match="softmax"):
        nengodl.Converter(model_of((3,), L.Activation("softmax")), allow_fallback=False)


def test_fallback_of_keras_ops_in_functional_model():
    inp = keras.Input((2, 3))
    x = L.Dense(3)(inp)
    model = keras.Model(inp, L.Dense(2)(keras.ops.exp(x) * 0.5 + x))
    with pytest.warns(UserWarning, match="running it in a TensorNode"):
        check(model, native=False)


def test_fallback_of_multi_input_op():
    a, b = keras.Input((3,)), keras.Input((3,))
    model = keras.Model([a, b], L.Multiply()([L.Dense(3)(a), b]))
    with pytest.warns(UserWarning, match="multiply"):
        check(model, native=False)


@pytest.mark.parametrize(
    "layer, shape, match",
    [
        (L.Conv2D(2, 2, data_format="channels_first"), (2, 4, 4), "data_format"),
        (L.AveragePooling2D(2, data_format="channels_first"), (2, 4, 4), "data_format"),
        (L.Dense(2, activation="softmax"), (3,), "softmax"),
        (L.GlobalMaxPooling2D(), (2, 2, 1), "no native conversion"),
        (L.MaxPooling1D(2), (4, 2), "max_to_avg_pool"),
        (L.BatchNormalization(), (3,), "inference_only"),
        (L.Dropout(0.2), (3,), "inference_only"),
        (L.ReLU(max_value=6.0), (3,), "max_value"),
    ],
)
def test_unsupported_arguments_name_layer_and_argument(layer, shape, match):
    model = model_of(shape, layer)
    with pytest.raises(ConversionError, match=f"'{layer.name}'.*{match}"):
        nengodl.Converter(model, allow_fallback=False)


def test_shared_weights_need_split():
    inp = keras.Input((3,))
    dense = L.Dense(3)
    model = keras.Model(inp, dense(dense(inp)))
    with pytest.raises(ConversionError, match="split_shared_weights"):
        nengodl.Converter(model)
    check(model, split_shared_weights=True)
    inner = keras.Sequential([keras.Input((3,)), L.Dense(3, activation="tanh")])
    a, b = keras.Input((3,)), keras.Input((3,))
    model = keras.Model([a, b], L.Add()([inner(a), inner(b)]))
    with pytest.raises(ConversionError, match="called more than once"):
        nengodl.Converter(model)
    check(model, split_shared_weights=True)


def test_bad_arguments():
    with pytest.raises(ConversionError, match="keras.Model"):
        nengodl.Converter(L.Dense(3))
    with pytest.raises(ConversionError, match="'unbuilt'.*keras.Input"):
        nengodl.Converter(keras.Sequential([L.Dense(3)], name="unbuilt"))
    with pytest.raises(ConversionError, match="neuron type"):
        nengodl.Converter(model_of((3,), L.Dense(2)), swap_activations={"relu": "lif"})
    model = model_of((3,), L.Dense(2, activation="sigmoid"))
    with pytest.raises(ConversionError, match="amplitude"):
        nengodl.Converter(model, scale_firing_rates=10)
    with pytest.raises(KeyError, match="outputs"):
        nengodl.Converter(model).outputs["nope"]


def test_swap_and_scale_keep_relu_rates():
    model = randomize(model_of((4,), L.Dense(8, activation="relu"), L.Dense(2)))
    layer = model.layers[1]
    conv = nengodl.Converter(
        model,
        swap_activations={nengo.RectifiedLinear(): nengodl.LeakyReLU(negative_slope=0)},
        scale_firing_rates={layer: 7.0},
    )
    ens = conv.layers[layer].ensemble
    assert isinstance(ens.neuron_type, nengodl.LeakyReLU)
    assert ens.neuron_type.amplitude == pytest.approx(1 / 7)
    assert conv.verify(inputs=inputs_for(model))
    spiking = nengodl.Converter(
        model,
        swap_activations={"relu": nengo.SpikingRectifiedLinear()},
        scale_firing_rates=5,
    )
    with pytest.raises(ValueError, match="spiking"):
        spiking.verify()
    assert spiking.verify(training=True)  # spiking ReLUs run as (scaled) rate ReLUs


def test_spiking_with_scale_and_synapse_approaches_rates():
    model = randomize(model_of((4,), L.Dense(6, activation="relu"), L.Dense(2)))
    x = inputs_for(model, batch=2)[0]
    expected = model.predict(x, verbose=0)
    errors = []
    for scale in [1, 100]:
        conv = nengodl.Converter(
            model,
            swap_activations={"relu": nengo.SpikingRectifiedLinear()},
            scale_firing_rates=scale,
            synapse=0.01,
        )
        with pytest.raises(ValueError, match="synapse"):
            conv.verify()
        p = conv.outputs[model.outputs[0]]
        conv.net.seed = 0  # the neurons' initial voltages (else the error varies by ~0.02)
        data = {conv.inputs[model.inputs[0]]: np.tile(x[:, None], (1, 300, 1))}
        with nengodl.Simulator(conv.net, minibatch_size=2, progress_bar=False, seed=0) as sim:
            out = sim.predict_on_batch(data)
        errors.append(np.abs(out[p][:, -100:].mean(axis=1) - expected).max())
    # 1 Hz-scale spikes are far too few in 0.3 s; 100x the rate matches the rates
    assert errors[1] < 0.05 and errors[0] > 0.5


def test_verify_detects_mismatch():
    model = randomize(model_of((3,), L.Dense(2)))
    conv = nengodl.Converter(model)
    model.layers[1].bias.assign([5.0, 5.0])
    with pytest.raises(ValueError, match="differs"):
        conv.verify()


def test_converted_network_trains_including_fallback_layers():
    keras.utils.set_random_seed(0)  # Keras's initial weights (else the loss ratio varies)
    inp = keras.Input((6, 6, 1))
    x = L.Conv2D(4, 3, activation="relu")(inp)
    x = L.GlobalMaxPooling2D()(x)
    out = L.Dense(2)(x)
    model = keras.Model(inp, out)
    with pytest.warns(UserWarning, match="global_max_pooling2d"):
        conv = nengodl.Converter(model)
    x = np.random.RandomState(0).uniform(0, 1, (32, 1, 36)).astype(np.float32)
    data = ({conv.inputs[inp]: x}, {conv.outputs[out]: np.stack([x.mean(-1), x.std(-1)], -1)})
    with nengodl.Simulator(conv.net, minibatch_size=16, progress_bar=False, seed=0) as sim:
        sim.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
        before = sim.evaluate(*data, verbose=0)["loss"]
        sim.fit(*data, epochs=10, verbose=0)
        assert sim.evaluate(*data, verbose=0)["loss"] < 0.2 * before
        # the conv bias, now the bias of the converted neurons (zero in Keras), trained
        assert not np.allclose(sim.data[conv.layers[model.layers[1]].ensemble].bias, 0)
