"""The converter's registry: `Converter.register`, `converters`, `get_converter`.

Truth: each Keras model's own output (``model.predict`` or calling the model);
a converter registered for a custom layer must give the same output from
nengo objects it builds, and nengodl's layers and the TensorNode fallback are
registry entries like any other.
"""

import warnings

import keras
import nengo
import numpy as np
import pytest

import nengodl
from nengodl.converter import ConversionError, LayerConverter

L = keras.layers


class Scale(keras.layers.Layer):
    """Multiplies its input by ``factor`` (plus ``offset``, which converters refuse)."""

    def __init__(self, factor, offset=None, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor
        self.offset = offset

    def call(self, x):
        return x * self.factor + (0 if self.offset is None else self.offset)

    def compute_output_shape(self, input_shape):
        return input_shape


class WeightedSum(keras.layers.Layer):
    """``relu(a + factor * b)`` of two inputs of the same shape."""

    def __init__(self, factor, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, inputs):
        a, b = inputs
        return keras.ops.relu(a + self.factor * b)


class CumSum(keras.layers.Layer):
    """Running sum over the time axis (combines time steps)."""

    def call(self, x):
        return keras.ops.cumsum(x, axis=1)


SEEN = []  # ConvertScale's (input_shape, full input shape, output_shape) of each call


class ConvertScale(LayerConverter):
    unsupported_args = ("offset",)

    def convert(self, node_id):
        SEEN.append(
            (
                self.input_shape(node_id),
                self.input_shape(node_id, full_shape=True),
                self.output_shape(node_id),
            )
        )
        out = self.add_nengo_obj(node_id)
        self.add_connection(node_id, out, transform=self.layer.factor)
        return out


@pytest.fixture
def registry():
    """`Converter.converters`, restored after the test."""
    saved = dict(nengodl.Converter.converters)
    SEEN.clear()
    yield nengodl.Converter.converters
    nengodl.Converter.converters.clear()
    nengodl.Converter.converters.update(saved)


def run_nengodl(conv, model, xs):
    """The converted network's output for ``xs`` (one step), per model output."""
    batch = len(xs[0])
    with nengodl.Simulator(conv.net, minibatch_size=batch, progress_bar=False) as sim:
        out = sim.predict_on_batch(
            {conv.inputs[t]: x.reshape(batch, 1, -1) for t, x in zip(model.inputs, xs)}
        )
    return [out[conv.outputs[t]][:, -1] for t in model.outputs]


def random_inputs(model, batch=4, seed=0):
    rng = np.random.RandomState(seed)
    return [rng.uniform(-1, 1, (batch, *t.shape[1:])).astype(np.float32) for t in model.inputs]


def scale_model():
    keras.utils.set_random_seed(0)
    inp = keras.Input((2, 3))
    scale = Scale(2.5, name="scale")
    x = scale(L.Dense(4, activation="relu")(inp))
    return keras.Model(inp, L.Dense(2)(L.Flatten()(x))), scale


def test_registered_converter_converts_custom_layer_natively(registry):
    model, scale = scale_model()
    assert nengodl.Converter.register(Scale)(ConvertScale) is ConvertScale
    assert registry[Scale] is ConvertScale
    xs = random_inputs(model)
    expected = model.predict(xs[0], verbose=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback
        conv = nengodl.Converter(model, allow_fallback=False)
    np.testing.assert_allclose(run_nengodl(conv, model, xs)[0], expected, atol=1e-5)
    # plain nengo objects: nengo.Simulator gives the same (first item)
    conv.inputs[model.inputs[0]].output = xs[0][0].ravel()
    with nengo.Simulator(conv.net, progress_bar=False) as nsim:
        nsim.step()
    np.testing.assert_allclose(
        nsim.data[conv.outputs[model.outputs[0]]][0], expected[0], atol=1e-5
    )
    # get_converter: the instance that converted the layer, the same on each call
    lc = conv.get_converter(scale)
    assert type(lc) is ConvertScale and lc is conv.get_converter(scale)
    assert lc.layer is scale and lc.converter is conv
    assert isinstance(conv.layers[scale], nengo.Node)  # add_nengo_obj: linear, a Node
    assert SEEN == [((2, 4), (None, 2, 4), (2, 4))]


def test_unregistered_or_refused_layer_falls_back(registry):
    model, scale = scale_model()
    xs = random_inputs(model)
    expected = model.predict(xs[0], verbose=0)
    with pytest.warns(UserWarning, match="'scale'.*no native conversion for Scale.*TensorNode"):
        conv = nengodl.Converter(model)
    np.testing.assert_allclose(run_nengodl(conv, model, xs)[0], expected, atol=1e-5)
    fallback = conv.get_converter(scale)
    assert type(fallback) is registry[None]
    assert isinstance(conv.layers[scale], nengodl.TensorNode)
    with pytest.raises(ConversionError, match="no native conversion for Scale"):
        nengodl.Converter(model, allow_fallback=False)
    # a converter's convertible refusing the layer (unsupported_args): the fallback
    nengodl.Converter.register(Scale)(ConvertScale)
    inp = keras.Input((3,))
    model = keras.Model(inp, Scale(2.0, offset=0.5)(inp))
    xs = random_inputs(model)
    with pytest.warns(UserWarning, match=r"offset=0\.5 is not supported"):
        conv = nengodl.Converter(model)
    np.testing.assert_allclose(run_nengodl(conv, model, xs)[0], xs[0] * 2 + 0.5, atol=1e-6)
    with pytest.raises(ConversionError, match=r"offset=0\.5.*allow_fallback=True"):
        nengodl.Converter(model, allow_fallback=False)

    # a converter that allows no fallback: an error even with allow_fallback=True
    class Strict(ConvertScale):
        allow_fallback = False

    with pytest.warns(UserWarning, match="Strict replaces it"):
        nengodl.Converter.register(Scale)(Strict)

    with pytest.raises(ConversionError, match="Strict does not allow a TensorNode fallback"):
        nengodl.Converter(model)


def test_convertible_may_return_a_bare_bool_as_in_3_6(registry):
    class NoOffset(ConvertScale):
        @classmethod
        def convertible(cls, layer, converter):
            return layer.offset is None  # NengoDL 3.6's form: a bool

    nengodl.Converter.register(Scale)(NoOffset)
    inp = keras.Input((3,))
    plain = keras.Model(inp, Scale(2.0)(inp))
    xs = random_inputs(plain)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # True: converted natively, no fallback
        conv = nengodl.Converter(plain, allow_fallback=False)
    np.testing.assert_allclose(run_nengodl(conv, plain, xs)[0], xs[0] * 2, atol=1e-6)
    offset = keras.Model(inp, Scale(2.0, offset=0.5)(inp))
    with pytest.raises(ConversionError, match="NoOffset cannot convert it"):
        nengodl.Converter(offset, allow_fallback=False)


def test_get_converter_of_layers_outside_the_model(registry):
    model, _ = scale_model()
    with pytest.warns(UserWarning, match="no native conversion"):
        conv = nengodl.Converter(model)
    dense = L.Dense(3)
    lc = conv.get_converter(dense)
    assert isinstance(lc, registry[L.Dense]) and lc is conv.get_converter(dense)
    assert type(conv.get_converter(Scale(1.0))) is registry[None]
    strict = nengodl.Converter(keras.Model(model.inputs, model.layers[1].output), False)
    with pytest.raises(ConversionError, match="no native conversion for Scale"):
        strict.get_converter(Scale(1.0))
    nengodl.Converter.register(Scale)(ConvertScale)
    assert type(strict.get_converter(Scale(1.0))) is ConvertScale


def test_builtin_layers_are_registry_entries():
    converters = nengodl.Converter.converters
    for cls in [L.Dense, L.Conv2D, L.Activation, L.Add, L.Flatten, L.InputLayer]:
        assert issubclass(converters[cls], LayerConverter), cls
    assert converters[L.Conv1D] is converters[L.Conv2D]  # one rule, several classes
    assert issubclass(converters[None], LayerConverter)  # the TensorNode fallback
    assert L.Maximum not in converters
    model = keras.Model(inp := keras.Input((3,)), L.Dense(2, activation="tanh")(inp))
    conv = nengodl.Converter(model)
    assert type(conv.get_converter(model.layers[1])) is converters[L.Dense]


def test_registering_again_warns_and_replaces(registry):
    nengodl.Converter.register(Scale)(ConvertScale)

    class Other(ConvertScale):
        pass

    with pytest.warns(UserWarning, match=r"Scale already has a converter \(ConvertScale\)"):
        nengodl.Converter.register(Scale)(Other)
    assert registry[Scale] is Other

    # replacing nengodl's own Dense conversion: a 3.6-style converter with biases
    # and the layer's activation
    class ConvertDense(LayerConverter):
        def convert(self, node_id):
            layer = self.layer
            out = self.add_nengo_obj(
                node_id, biases=layer.bias.numpy(), activation=layer.activation
            )
            self.add_connection(node_id, out, transform=layer.kernel.numpy().T, trainable=True)
            return out

    with pytest.warns(UserWarning, match="Dense already has a converter"):
        nengodl.Converter.register(L.Dense)(ConvertDense)
    keras.utils.set_random_seed(1)
    model = keras.Model(inp := keras.Input((3,)), L.Dense(4, activation="relu")(inp))
    model.layers[1].bias.assign(np.array([0.5, -0.5, 0.1, 0.0], np.float32))
    conv = nengodl.Converter(model, allow_fallback=False)
    assert type(conv.get_converter(model.layers[1])) is ConvertDense
    assert isinstance(conv.layers[model.layers[1]], nengo.ensemble.Neurons)
    xs = random_inputs(model)
    np.testing.assert_allclose(
        run_nengodl(conv, model, xs)[0], model.predict(xs[0], verbose=0), atol=1e-5
    )
    assert conv.verify(training=True, inputs=xs, atol=1e-4)  # its kernel and bias train


def test_register_refuses_what_it_cannot_use(registry):
    with pytest.raises(TypeError, match="Keras layer class"):
        nengodl.Converter.register(Scale(1.0))
    with pytest.raises(TypeError, match="not a subclass of nengodl.converter.LayerConverter"):
        nengodl.Converter.register(Scale)(object)
    assert Scale not in registry


def test_several_inputs_and_calls_and_size_check(registry):
    shapes = []

    @nengodl.Converter.register(WeightedSum)
    class ConvertWeightedSum(LayerConverter):
        def convert(self, node_id):
            shapes.append(self.input_shape(node_id))
            out = self.add_nengo_obj(node_id, activation="relu")
            self.add_connection(node_id, out, input_idx=0)
            self.add_connection(node_id, out, input_idx=1, transform=self.layer.factor)
            return out

    nengodl.Converter.register(Scale)(ConvertScale)
    a, b = keras.Input((3,)), keras.Input((3,))
    scale = Scale(-2.0)
    y = WeightedSum(0.5)([scale(a), scale(b)])  # Scale called twice (no weights)
    model = keras.Model([a, b], y)
    xs = random_inputs(model)
    conv = nengodl.Converter(model, allow_fallback=False)
    np.testing.assert_allclose(
        run_nengodl(conv, model, xs)[0], model.predict(xs, verbose=0), atol=1e-6
    )
    assert shapes == [[(3,), (3,)]]
    assert [s[0] for s in SEEN] == [(3,), (3,)]

    class Wrong(LayerConverter):
        def convert(self, node_id):
            return nengo.Node(size_in=2)

    with pytest.warns(UserWarning, match="Wrong replaces it"):
        nengodl.Converter.register(Scale)(Wrong)

    with pytest.raises(ConversionError, match=r"Wrong.convert returned .*size_out=2.*\(3,\)"):
        nengodl.Converter(keras.Model(a, Scale(1.0)(a)))


def test_temporal_model_checks_registered_layers_act_per_step(registry):
    nengodl.Converter.register(Scale)(ConvertScale)
    inp = keras.Input((None, 3))
    x = L.TimeDistributed(Scale(3.0))(Scale(-1.5)(L.Dense(2)(inp)))
    model = keras.Model(inp, x)
    conv = nengodl.Converter(model, temporal_model=True, allow_fallback=False)
    x = np.random.RandomState(3).uniform(-1, 1, (2, 5, 3)).astype(np.float32)
    with nengodl.Simulator(conv.net, minibatch_size=2, progress_bar=False) as sim:
        out = sim.predict_on_batch({conv.inputs[model.inputs[0]]: x})
    np.testing.assert_allclose(out[conv.outputs[model.outputs[0]]], model(x), atol=1e-5)
    # the layer inside TimeDistributed sees one time step
    assert [s[1] for s in SEEN] == [(None, None, 2), (None, 2)]

    # a registered layer combining time steps: refused, as its fallback would be
    @nengodl.Converter.register(CumSum)
    class ConvertCumSum(LayerConverter):
        def convert(self, node_id):
            out = self.add_nengo_obj(node_id)
            self.add_connection(node_id, out)
            return out

    model = keras.Model(inp, CumSum(name="cum_sum")(inp))
    with pytest.raises(ConversionError, match="'cum_sum'.*each time step"):
        nengodl.Converter(model, temporal_model=True)
    ConvertCumSum.per_step = True  # the converter's word for it
    conv = nengodl.Converter(model, temporal_model=True, allow_fallback=False)
    assert type(conv.get_converter(model.layers[1])) is ConvertCumSum


def test_keras_tensor_dict_and_tracked_dict_are_the_converter_maps():
    model = keras.Model(inp := keras.Input((3,)), L.Dense(2, activation="relu")(inp))
    conv = nengodl.Converter(model)
    for table in (conv.inputs, conv.outputs, conv.layers):
        assert isinstance(table, nengodl.Converter.KerasTensorDict)
    assert isinstance(conv.swap_activations, nengodl.Converter.TrackedDict)
    empty = nengodl.Converter.KerasTensorDict()
    assert len(empty) == 0 and list(empty) == []
    with pytest.raises(KeyError):
        empty[inp]
    swaps = nengodl.Converter.TrackedDict({"relu": nengo.LIF()})
    assert dict(swaps) == {"relu": swaps["relu"]} and swaps.unused_keys() == {"relu"}
