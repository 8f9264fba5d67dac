"""Converter: converted Keras models against Keras's own output and nengo.Simulator."""

import warnings

import keras
import nengo
import numpy as np
import pytest
import tensorflow as tf
from nengo.exceptions import ValidationError

import nengodl
from nengodl.converter import ConversionError
from nengodl.ops.functions import MaxPool

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


def channels_first(model):
    return any(getattr(layer, "data_format", None) == "channels_first" for layer in model.layers)


def channels_last_twin(model):
    """``model`` (one input, its layers in sequence) rebuilt channels_last: the same layers
    and weights, taking the input with its channel axis moved last."""
    shape = tuple(model.inputs[0].shape[1:])
    inp = keras.Input(shape[1:] + shape[:1])
    x = inp
    twins = []
    for layer in model.layers[1:]:
        config = layer.get_config()
        config.pop("name", None)
        if "data_format" in config:
            config["data_format"] = "channels_last"
        twins.append((layer, type(layer).from_config(config)))
        x = twins[-1][1](x)
    for layer, twin in twins:
        # Keras keeps kernels as (*kernel_size, in_channels // groups, filters) in both
        twin.set_weights(layer.get_weights())
    return keras.Model(inp, x)


def keras_output(model, xs):
    """Keras's output for ``xs``; channels_first models run as their channels_last twin.

    Keras computes channels_first convolutions with TensorFlow's NCHW kernels, which the
    CPU has only where oneDNN is on (not, for one, on AMD CPUs with AVX2 only: "The Conv2D
    op currently only supports the NHWC tensor format on the CPU"). The channels_last twin
    on transposed inputs runs on every CPU, with or without XLA.
    """
    if not channels_first(model):
        expected = model.predict(xs if len(xs) > 1 else xs[0], verbose=0)
        return expected if isinstance(expected, list) else [expected]
    (x,) = xs
    y = channels_last_twin(model).predict(np.moveaxis(x, 1, -1), verbose=0)
    return [np.moveaxis(y, -1, 1) if y.ndim > 2 else y]  # channels back in front


def check(model, batch=3, native=True, atol=2e-5, **kwargs):
    """Convert ``model``; compare nengodl (minibatch) and nengo (item 0) with Keras."""
    randomize(model)
    xs = inputs_for(model, batch)
    expected = keras_output(model, xs)
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
        # channels_first (the reference: Keras running the channels_last twin, see
        # keras_output)
        (L.GlobalAveragePooling2D(data_format="channels_first"), (3, 4, 2)),
        (L.GlobalAveragePooling2D(data_format="channels_first", keepdims=True), (3, 4, 2)),
        (L.GlobalAveragePooling1D(data_format="channels_first"), (3, 5)),
        (L.GlobalAveragePooling3D(data_format="channels_first"), (2, 3, 2, 2)),
        (L.AveragePooling2D(2, padding="same", data_format="channels_first"), (2, 5, 4)),
        (L.ZeroPadding2D(((1, 0), (2, 1)), data_format="channels_first"), (2, 3, 4)),
        (L.Flatten(data_format="channels_first"), (2, 3, 4)),
        (L.Conv2D(3, 2, data_format="channels_first"), (2, 4, 5)),
        # sparse forms (Keras 3.15's own channels_first Conv2D, dilated or grouped, adds
        # the bias along the last axis when that is as long as the number of filters;
        # the output widths here differ from it, so a channels_first reference agrees too)
        (L.Conv2D(3, 2, dilation_rate=2, data_format="channels_first"), (2, 5, 6)),
        (L.Conv2D(4, 2, groups=2, data_format="channels_first"), (4, 5, 6)),
        (L.Conv1D(3, 2, dilation_rate=2, data_format="channels_first"), (2, 7)),
        (L.Conv3D(3, 2, strides=(1, 2, 1), data_format="channels_first"), (2, 3, 4, 3)),
        (L.Conv1D(3, 2, strides=2, padding="same", data_format="channels_first"), (2, 7)),
    ],
)
def test_spatial_layers(layer, shape):
    check(model_of(shape, layer))


@pytest.mark.parametrize(
    "layer, shape",
    [
        (L.MaxPooling2D(2), (4, 4, 3)),
        (L.MaxPooling2D(3, strides=2), (7, 7, 2)),  # ResNet50's, with padding below
        (L.MaxPooling2D(3, strides=2, padding="same"), (7, 6, 2)),
        (L.MaxPooling1D(2, strides=1, padding="same"), (5, 3)),
        (L.MaxPooling3D((2, 1, 2)), (4, 3, 4, 2)),
        (L.MaxPooling2D(2, data_format="channels_first"), (2, 4, 5)),
        (L.GlobalMaxPooling2D(), (3, 4, 2)),
        (L.GlobalMaxPooling1D(keepdims=True), (5, 3)),
        (L.GlobalMaxPooling2D(data_format="channels_first"), (2, 3, 4)),
    ],
)
def test_max_pooling_is_a_native_node(layer, shape):
    # without max_to_avg_pool: the maximum, in a non-spiking Node that runs in the
    # compiled loop and on nengo.Simulator (NengoDL 3.6 ran a TensorNode)
    conv = check(model_of(shape, layer))
    (node,) = [n for n in conv.net.all_nodes if isinstance(n.output, MaxPool)]
    assert node.label == layer.name


def test_max_pooling_becomes_average_pooling_with_max_to_avg_pool():
    model = model_of((2, 2, 1), L.MaxPooling2D(2))
    # max_to_avg_pool=True: average pooling, without a warning (as in NengoDL 3.6)
    x = np.array([1.0, 2.0, 3.0, 6.0])
    for pooled in [model, model_of((2, 2, 1), L.GlobalMaxPooling2D())]:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            conv = nengodl.Converter(pooled, max_to_avg_pool=True, allow_fallback=False)
        conv.inputs[pooled.inputs[0]].output = x
        with nengo.Simulator(conv.net, progress_bar=False) as sim:
            sim.step()
        assert sim.data[conv.outputs[pooled.outputs[0]]][0, 0] == pytest.approx(x.mean())
        with pytest.raises(ValueError, match="differs"):  # max != mean
            conv.verify(inputs=x.reshape(1, 2, 2, 1))


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
    model = model_of((4, 3), L.LayerNormalization(), L.Dense(2, activation="elu"))
    with pytest.warns(UserWarning, match="layer_normalization"):
        check(model, native=False)
    with pytest.raises(ConversionError, match="LayerNormalization"):
        nengodl.Converter(model, allow_fallback=False)
    with pytest.raises(ConversionError, match="elu"):
        nengodl.Converter(model_of((3,), L.Activation("elu")), allow_fallback=False)


def test_fallback_of_keras_ops_in_functional_model():
    inp = keras.Input((2, 3))
    x = L.Dense(3)(inp)
    model = keras.Model(inp, L.Dense(2)(keras.ops.exp(x) * 0.5 + x))
    with pytest.warns(UserWarning, match="running it in a TensorNode"):
        check(model, native=False)


def test_fallback_of_multi_input_op():
    a, b = keras.Input((3,)), keras.Input((3,))
    model = keras.Model([a, b], L.Maximum()([L.Dense(3)(a), b]))
    with pytest.warns(UserWarning, match="maximum"):
        check(model, native=False)


@pytest.mark.parametrize(
    "layer, shape, match",
    [
        (L.Softmax(axis=1), (5, 3), "axis=1"),
        (L.Conv2D(2, 2, kernel_constraint="non_neg"), (3, 3, 1), "constraint"),
        (L.UpSampling1D(2), (3, 1), "no native conversion"),
        (L.Dense(2, kernel_constraint="non_neg"), (3,), "constraint"),
        (L.BatchNormalization(), (3,), "inference_only"),
        (L.Dropout(0.2), (3,), "inference_only"),
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
    with pytest.raises(ConversionError, match="positive"):
        nengodl.Converter(model, scale_firing_rates=-1)
    with pytest.raises(ConversionError, match="dict"):
        nengodl.Converter(model, swap_activations=[("relu", nengo.LIF())])
    with pytest.raises(ConversionError, match="same activation"):
        nengodl.Converter(model, swap_activations={"relu": nengo.LIF(), tf.nn.relu: nengo.LIF()})
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
    x = L.GlobalAveragePooling2D()(L.LayerNormalization()(x))
    out = L.Dense(2)(x)
    model = keras.Model(inp, out)
    with pytest.warns(UserWarning, match="layer_normalization"):
        conv = nengodl.Converter(model)
    x = np.random.RandomState(0).uniform(0, 1, (32, 1, 36)).astype(np.float32)
    data = ({conv.inputs[inp]: x}, {conv.outputs[out]: np.stack([x.mean(-1), x.std(-1)], -1)})
    with nengodl.Simulator(conv.net, minibatch_size=16, progress_bar=False, seed=0) as sim:
        sim.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
        before = sim.evaluate(*data, verbose=0)["loss"]
        sim.fit(*data, epochs=10, verbose=0)
        # measured 0.031 of the loss before (0.036 and 0.031 with Keras seeds 1, 2)
        assert sim.evaluate(*data, verbose=0)["loss"] < 0.2 * before
        # the conv bias (zero in Keras): one parameter per filter, shared by all
        # positions (through a Node of its own), trained
        (bias,) = [
            c
            for c in conv.net.all_connections
            if getattr(c.post_obj, "label", None) == f"{model.layers[1].name}.bias"
        ]
        assert sim.data[bias].weights.shape == (4, 1)
        assert not np.allclose(sim.data[bias].weights, 0)


ACTIVATION_FORMS = [
    (tf.nn.relu, "relu"),
    (keras.activations.relu, "relu"),
    (keras.ops.relu, "relu"),
    (tf.nn.sigmoid, "sigmoid"),
    (keras.activations.sigmoid, "sigmoid"),
    (tf.nn.tanh, "tanh"),
    (keras.activations.tanh, "tanh"),
    (keras.activations.linear, "linear"),
    (tf.nn.leaky_relu, "leaky_relu"),
    (keras.activations.leaky_relu, "leaky_relu"),
]


@pytest.mark.parametrize("function, name", ACTIVATION_FORMS)
def test_activation_functions_convert_like_their_names(function, name):
    model = model_of((5,), L.Dense(4, activation=function), L.Activation(function))
    conv = check(model)  # native (no warning) and equal to Keras
    by_name = nengodl.Converter(model_of((5,), L.Dense(4, activation=name)))
    types = [type(e.neuron_type) for e in conv.net.all_ensembles]
    assert types == [type(e.neuron_type) for e in by_name.net.all_ensembles] * 2
    assert len(types) == (0 if name == "linear" else 2)


def copy_with(model, activation):
    """``model`` (Dense layers) with every activation replaced, same weights."""
    inp = keras.Input(model.inputs[0].shape[1:])
    x = inp
    for layer in model.layers[1:]:
        x = L.Dense(layer.units, activation=activation)(x)
    other = keras.Model(inp, x)
    other.set_weights(model.get_weights())
    return other


@pytest.mark.parametrize(
    "act, swaps, to",
    [
        ("relu", {tf.nn.relu: tf.nn.tanh}, "tanh"),
        (tf.nn.sigmoid, {keras.activations.sigmoid: keras.activations.relu}, "relu"),
        ("tanh", {"tanh": "linear"}, "linear"),
        ("elu", {keras.activations.elu: "relu"}, "relu"),
    ],
)
def test_swap_activations_between_keras_activations(act, swaps, to):
    model = randomize(model_of((4,), L.Dense(6, activation=act), L.Dense(3, activation=act)))
    x = inputs_for(model)[0]
    expected = copy_with(model, to).predict(x, verbose=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        conv = nengodl.Converter(model, allow_fallback=False, swap_activations=swaps)
    with nengodl.Simulator(conv.net, minibatch_size=3, progress_bar=False) as sim:
        out = sim.predict_on_batch({conv.inputs[model.inputs[0]]: x[:, None]})
    np.testing.assert_allclose(out[conv.outputs[model.outputs[0]]][:, 0], expected, atol=2e-5)


def test_swap_to_activation_without_neurons_and_chained_swaps():
    model = randomize(model_of((4,), L.Dense(5, activation="relu")))
    x = inputs_for(model)[0]
    # relu -> elu: runs Keras's elu in a TensorNode (with a warning), as the elu model does
    with pytest.warns(UserWarning, match="'elu' has no nengo neuron type"):
        conv = nengodl.Converter(model, swap_activations={"relu": "elu"})
    with nengodl.Simulator(conv.net, minibatch_size=3, progress_bar=False) as sim:
        out = sim.predict_on_batch({conv.inputs[model.inputs[0]]: x[:, None]})
    expected = copy_with(model, "elu").predict(x, verbose=0)
    np.testing.assert_allclose(out[conv.outputs[model.outputs[0]]][:, 0], expected, atol=2e-5)
    # a Keras swap, then a swap of the neuron type it gives (both keys used: no warning)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        conv = nengodl.Converter(
            model,
            swap_activations={
                tf.nn.relu: nengo.RectifiedLinear(),
                nengo.RectifiedLinear(): nengo.LIF(),
            },
        )
    assert isinstance(conv.net.all_ensembles[0].neuron_type, nengo.LIF)
    assert conv.swap_activations.unused_keys() == set()


def test_unused_swap_activations_key_warns():
    model = model_of((3,), L.Dense(2, activation="relu"))
    swaps = {"relu": nengo.SpikingRectifiedLinear(), tf.nn.sigmoid: nengo.LIF()}
    with pytest.warns(UserWarning, match="no layers in the model with that activation") as rec:
        conv = nengodl.Converter(model, swap_activations=swaps)
    assert "sigmoid" in str(rec[0].message)
    assert conv.swap_activations.unused_keys() == {tf.nn.sigmoid}
    assert set(conv.swap_activations) == set(swaps)
    assert isinstance(conv.net.all_ensembles[0].neuron_type, nengo.SpikingRectifiedLinear)


def test_scale_firing_rates_without_amplitude_warns_and_changes_output():
    model = randomize(model_of((3,), L.Dense(2, activation="sigmoid")))
    x = inputs_for(model)[0]
    with pytest.warns(UserWarning, match="does not support amplitude.*change the output"):
        conv = nengodl.Converter(model, scale_firing_rates=5)
    kernel, bias = model.get_weights()
    with nengodl.Simulator(conv.net, minibatch_size=3, progress_bar=False) as sim:
        out = sim.predict_on_batch({conv.inputs[model.inputs[0]]: x[:, None]})
    # the sigmoid of the scaled input (closed form)
    expected = 1 / (1 + np.exp(-5 * (x @ kernel + bias)))
    np.testing.assert_allclose(out[conv.outputs[model.outputs[0]]][:, 0], expected, atol=1e-5)
    with pytest.raises(ValueError, match="differs"):
        conv.verify()
    # no scaling for this layer (scale 1): no warning, and the Keras output
    # (recorded rather than made errors: nengo's decoder cache may warn about its lock)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert nengodl.Converter(model, scale_firing_rates={"other": 5}).verify()
    assert not [w for w in caught if "amplitude" in str(w.message)]


def test_constant_initializer_bias_and_spike_counts():
    # Keras 3's Constant([[50]]) stores a (1, 1) value in the (1,) bias
    inp = keras.Input((1,))
    relu = L.ReLU()(inp)
    dense = L.Dense(
        1,
        activation=tf.nn.relu,
        kernel_initializer=keras.initializers.Constant([[1.0]]),
        bias_initializer=keras.initializers.Constant([[50.0]]),
    )(inp)
    model = keras.Model(inp, [relu, dense])
    assert nengodl.Converter(model).verify(inputs=np.full((2, 1), 100.0), rtol=1e-5)
    conv = nengodl.Converter(
        model,
        swap_activations={tf.nn.relu: nengo.SpikingRectifiedLinear()},
        scale_firing_rates={model.layers[1]: 3, model.layers[2]: 4},
    )
    n_steps = 100
    with nengodl.Simulator(conv.net, progress_bar=False) as sim:
        sim.run_steps(n_steps, data={conv.inputs[inp]: np.full((1, n_steps, 1), 100.0)})
    for out, rate, scale in [(relu, 100, 3), (dense, 150, 4)]:
        spikes = sim.data[conv.outputs[out]]
        assert spikes.max() == pytest.approx(1 / sim.dt / scale)  # spikes 1/scale as large
        # ... and scale times as many: rate * scale * time
        assert abs(np.count_nonzero(spikes) - rate * scale * n_steps * sim.dt) <= 1


def test_regularizers_are_refused_only_when_training():
    for layer, name in [
        (L.Dense(2, kernel_regularizer="l2"), "kernel_regularizer"),
        (L.Dense(2, activity_regularizer="l1"), "activity_regularizer"),
        (L.Conv1D(2, 2, bias_regularizer=keras.regularizers.L1(0.1)), "bias_regularizer"),
    ]:
        model = model_of((3, 2), layer)
        # a regularizer does not change the output: the layer converts natively and
        # simulates as Keras predicts (on nengo.Simulator too)
        conv = check(model)
        # but training would leave the regularization loss out: refused, naming the
        # layer, also where the converted network is part of a larger model
        with nengo.Network() as outer:
            outer.add(conv.net)
        for net in (conv.net, outer):
            with nengodl.Simulator(net, progress_bar=False) as sim:
                sim.compile(keras.optimizers.SGD(0.1), loss="mse")
                x = {conv.inputs[model.input]: np.zeros((1, 1, 6))}
                y = {
                    conv.outputs[model.output]: np.zeros(
                        (1, 1, int(np.prod(model.output.shape[1:])))
                    )
                }
                sim.evaluate(x, y, verbose=0)
                with pytest.raises(ValidationError, match=f"'{layer.name}'.*{name}.*training"):
                    sim.fit(x, y, verbose=0)
        check(model, inference_only=True)  # dropped: nothing trains


def test_constraints_fall_back_unless_inference_only():
    model = model_of((3,), L.Dense(2, kernel_constraint=keras.constraints.NonNeg()))
    with pytest.warns(UserWarning, match="constraint"):
        check(model, native=False)  # the TensorNode's Keras optimizer applies it
    check(model, inference_only=True)


def test_verify_training_trains_both_alike_and_restores_the_model():
    keras.utils.set_random_seed(1)
    a, b = keras.Input((4,)), keras.Input((3, 2))
    relu = L.Dense(3, activation="relu", bias_initializer="ones")
    x = relu(a)
    y = L.Dense(3, activation=tf.nn.sigmoid)(b)  # rank-3 input: one shared kernel
    y = L.Flatten()(L.Conv1D(2, 2, padding="same", bias_initializer="ones")(y))
    z = L.Concatenate()([x, L.Activation("tanh")(y)])
    z = L.Add()([L.Dense(3)(z), L.Maximum()([x, L.Dense(3)(x)])])  # Maximum: a TensorNode
    w = L.BatchNormalization(trainable=False)(L.Dense(2)(z))
    model = keras.Model([a, b], [z, w])
    randomize(model)
    before = [v.numpy().copy() for v in model.weights]
    with pytest.warns(UserWarning, match="maximum"):
        conv = nengodl.Converter(model, scale_firing_rates={relu: 3})
    inputs = inputs_for(model, batch=4)
    assert conv.verify(inputs=inputs)
    assert conv.verify(training=True, inputs=inputs, atol=1e-4)
    for v, value in zip(model.weights, before):
        np.testing.assert_array_equal(v.numpy(), value)
    # training that differs is detected: the same number of trainable parameters,
    # but the nengo network trains the second Dense layer of two equal ones instead
    model = randomize(model_of((3,), L.Dense(3, use_bias=False), L.Dense(3, use_bias=False)))
    model.layers[1].trainable = False
    conv = nengodl.Converter(model)
    first, second = sorted(
        conv.net.all_connections, key=lambda c: c.pre_obj is not conv.inputs[model.inputs[0]]
    )
    conv.net.config[first].trainable = True
    conv.net.config[second].trainable = False
    assert conv.verify()
    with pytest.raises(ValueError, match="differs"):
        conv.verify(training=True)


def test_verify_training_checks_trainable_parameter_counts():
    # split shared weights: twice the parameters of the Keras model (NengoDL 3.6)
    inp = keras.Input((4,))
    dense = L.Dense(4)
    model = keras.Model(inp, dense(dense(inp)))
    conv = nengodl.Converter(model, split_shared_weights=True)
    assert conv.verify()
    with pytest.raises(
        ValueError, match=r"parameters in the nengo network \(40\).*Keras model \(20\)"
    ):
        conv.verify(training=True)
    # BatchNormalization folded by inference_only: gamma and beta do not train
    model = model_of((3,), L.BatchNormalization())
    conv = nengodl.Converter(model, inference_only=True)
    with pytest.raises(ValueError, match=r"nengo network \(0\).*Keras model \(6\)"):
        conv.verify(training=True)


def test_verify_training_steps_are_keras_fit_steps():
    from nengodl.converter.verify import EPOCHS, LEARNING_RATE, train_keras

    model = randomize(model_of((3,), L.Dense(4, activation="tanh"), L.Dense(2)))
    twin = keras.models.clone_model(model)
    twin.set_weights(model.get_weights())
    x = inputs_for(model, batch=5)
    y = np.ones((5, 2), np.float32)
    train_keras(model, x, [y])
    twin.compile(optimizer=keras.optimizers.SGD(LEARNING_RATE), loss="mse")
    twin.fit(x[0], y, epochs=EPOCHS, batch_size=5, shuffle=False, verbose=0)
    for w, v in zip(model.get_weights(), twin.get_weights()):
        np.testing.assert_allclose(w, v, atol=1e-6)
    assert not np.allclose(model.get_weights()[0], randomize(twin).get_weights()[0])


def temporal_model(n_steps=None):
    inp = keras.Input((n_steps, 3))
    x = L.Dense(4, activation="relu")(inp)
    x = L.TimeDistributed(L.Dense(6, activation="tanh"))(x)
    x = L.TimeDistributed(L.Reshape((3, 2)))(x)
    x = L.TimeDistributed(L.Conv1D(2, 2, padding="same"))(x)
    x = L.Reshape((-1, 6) if n_steps is None else (n_steps, 6))(x)
    return randomize(keras.Model(inp, L.Activation("elu")(x)))


def test_temporal_model_runs_one_time_step_per_simulation_step():
    model = temporal_model()
    with pytest.warns(UserWarning, match="elu"):  # per step: a TensorNode
        conv = nengodl.Converter(model, temporal_model=True)
    assert conv.inputs[model.inputs[0]].size_out == 3
    x = np.random.RandomState(2).uniform(-1, 1, (2, 7, 3)).astype(np.float32)
    expected = model(x).numpy()
    with nengodl.Simulator(conv.net, minibatch_size=2, progress_bar=False) as sim:
        out = sim.predict_on_batch({conv.inputs[model.inputs[0]]: x})
    np.testing.assert_allclose(out[conv.outputs[model.outputs[0]]], expected, atol=2e-5)
    assert conv.verify()
    assert conv.verify(training=True, inputs=x, atol=1e-4)
    # natively converted parts on nengo.Simulator, the input changing every step
    model = keras.Model(model.inputs, model.layers[4].output)
    conv = nengodl.Converter(model, temporal_model=True, allow_fallback=False)
    conv.inputs[model.inputs[0]].output = nengo.processes.PresentInput(x[0], 0.001)
    with nengo.Simulator(conv.net, progress_bar=False) as nsim:
        nsim.run_steps(7)
    expected = model(x).numpy()[0].reshape(7, -1)
    np.testing.assert_allclose(nsim.data[conv.outputs[model.outputs[0]]], expected, atol=2e-5)


def test_temporal_model_refuses_layers_that_combine_time_steps():
    for layer in [L.Conv1D(2, 2), L.GlobalAveragePooling1D(), L.Flatten(), L.LSTM(2)]:
        model = model_of((5, 3), layer)
        with pytest.raises(ConversionError, match=f"'{layer.name}'.*each time step"):
            nengodl.Converter(model, temporal_model=True)
    a = keras.Input((5, 3, 2))
    model = keras.Model(a, L.Concatenate(axis=1)([a, a]))  # along time
    with pytest.raises(ConversionError, match="changes the time axis"):
        nengodl.Converter(model, temporal_model=True, allow_fallback=False)
    model = model_of((5, 3), L.BatchNormalization(axis=1))  # statistics per time step
    with pytest.raises(ConversionError, match="axis=1 is the batch or time axis"):
        nengodl.Converter(model, temporal_model=True, allow_fallback=False, inference_only=True)
    with pytest.raises(ConversionError, match="each time step"):
        nengodl.Converter(model, temporal_model=True, inference_only=True)


def test_time_axis_needs_temporal_model():
    model = temporal_model()
    with pytest.raises(ConversionError, match="temporal_model=True"):
        nengodl.Converter(model)
    # a fixed number of steps without temporal_model: TimeDistributed runs in Keras
    full = temporal_model(4)
    model = keras.Model(full.inputs, full.layers[2].output)
    with pytest.warns(UserWarning, match="temporal_model=True"):
        check(model, native=False)
