"""TensorNode and Layer against the same computations done in numpy."""

import copy
import pickle

import keras
import nengo
import numpy as np
import pytest
import tensorflow as tf
from nengo.exceptions import ConfigError, SimulationError, ValidationError

import nengodl


def run(net, steps=20, **kwargs):
    with nengodl.Simulator(net, progress_bar=False, **kwargs) as sim:
        sim.run_steps(steps)
    return sim


def test_seed_tensor_node_matches_numpy_node(seed_net):
    with seed_net:
        exp_np = nengo.Node(lambda t, x: np.exp(x), size_in=1)
        nengo.Connection(seed_net.sin, exp_np)
        np_probe = nengo.Probe(exp_np, synapse=0.01)
        exp_tf = nengodl.TensorNode(lambda t, x: tf.exp(x), size_in=1)
        nengo.Connection(seed_net.sin, exp_tf)
        tf_probe = nengo.Probe(exp_tf, synapse=0.01)
    sim = run(seed_net, steps=300, seed=0)
    np.testing.assert_allclose(sim.data[tf_probe], sim.data[np_probe], atol=1e-5)


def test_time_is_passed_and_minibatch_axis_is_leading():
    seen = []

    def func(t, x):
        seen.append(tuple(x.shape))
        return x * t

    with nengo.Network() as net:
        inp = nengo.Node([1.0, 2.0])
        node = nengodl.TensorNode(func, shape_in=(2,), shape_out=(2,))
        nengo.Connection(inp, node, synapse=None)
        p = nengo.Probe(node)
        pt = nengodl.TensorNode(lambda t: tf.fill((3, 1), t), shape_out=(1,))
        ptp = nengo.Probe(pt)
    sim = run(net, steps=10, minibatch_size=3, dtype="float64")
    assert (3, 2) in seen
    t = sim.trange()
    np.testing.assert_allclose(sim.data[p], np.tile(t[:, None] * [1.0, 2.0], (3, 1, 1)))
    np.testing.assert_allclose(sim.data[ptp][:, :, 0], np.tile(t, (3, 1)))


def test_shape_inference_and_multidimensional_shapes():
    with nengo.Network() as net:
        node = nengodl.TensorNode(
            lambda x: tf.reduce_sum(x, axis=2), shape_in=(2, 3), pass_time=False
        )
        assert node.shape_out == (2,) and node.size_in == 6 and node.size_out == 2
        inp = nengo.Node(np.arange(6.0))
        nengo.Connection(inp, node, synapse=None)
        p = nengo.Probe(node)
    sim = run(net, steps=3)
    np.testing.assert_allclose(sim.data[p][-1], [0 + 1 + 2, 3 + 4 + 5])


def test_keras_layer_tensor_node_matches_numpy():
    layer = keras.layers.Dense(4, activation="tanh")
    with nengo.Network() as net:
        inp = nengo.Node([0.3, -0.5, 0.9])
        node = nengodl.Layer(layer)(inp)
        p = nengo.Probe(node)
    sim = run(net, steps=3, dtype="float32")
    w, b = (v.numpy() for v in layer.weights)
    expected = np.tanh(np.array([0.3, -0.5, 0.9]) @ w + b)
    np.testing.assert_allclose(sim.data[p][-1], expected, atol=1e-5)


def test_layer_chains_neurons_and_tensor_nodes():
    with nengo.Network() as net:
        inp = nengo.Node(np.linspace(-1, 1, 5))
        x = nengodl.Layer(lambda x: 2 * x)(inp, shape_in=(5,))
        x = nengodl.Layer(nengo.RectifiedLinear())(x)
        p = nengo.Probe(x)
    assert isinstance(x, nengo.ensemble.Neurons) and x.size_out == 5
    sim = run(net, steps=3)
    # neurons get gain 1 and bias 0 in an Ensemble built from Layer? no: default
    # nengo gains/biases apply; check against nengo's own computation
    ens = x.ensemble
    gain, bias = sim.data[ens].gain, sim.data[ens].bias
    expected = np.maximum(0, gain * 2 * np.linspace(-1, 1, 5) + bias)
    np.testing.assert_allclose(sim.data[p][-1], expected, rtol=1e-5, atol=1e-5)


def test_bad_tensor_nodes_give_clear_errors():
    with nengo.Network():
        bad_tensor_nodes()


def bad_tensor_nodes():
    with pytest.raises(ValidationError, match="callable"):
        nengodl.TensorNode(3.0, shape_in=(1,), shape_out=(1,))
    with pytest.raises(ValidationError, match="shape_in"):
        nengodl.TensorNode(lambda t, x: x, shape_in=(0,))
    with pytest.raises(SimulationError, match=r"must return a tensor"):
        nengodl.TensorNode(lambda t, x: "oops", shape_in=(2,))
    with pytest.raises(SimulationError, match=r"failed on input shape \(1, 3\)"):
        nengodl.TensorNode(lambda t, x: tf.matmul(x, tf.ones((2, 2))), shape_in=(3,))

    with nengo.Network() as net:
        inp = nengo.Node([1.0, 2.0])
        bad = nengodl.TensorNode(
            lambda t, x: tf.concat([x, x], axis=1),
            shape_in=(2,),
            shape_out=(2,),
            label="doubler",
        )
        nengo.Connection(inp, bad)
    with pytest.raises(SimulationError, match=r"doubler.*\(1, 4\).*\(1,\) \+ \(2,\)"):
        nengodl.Simulator(net, progress_bar=False)


def test_tensor_node_cannot_run_in_nengo():
    with nengo.Network() as net:
        nengodl.TensorNode(lambda t: tf.ones((1, 1)), shape_out=(1,))
    with pytest.raises(SimulationError, match="nengodl.Simulator"):
        with nengo.Simulator(net, progress_bar=False):
            pass


def test_tensor_node_that_xla_cannot_compile_runs_and_trains_without_xla():
    def model(double):
        with nengo.Network(seed=0) as net:
            a = nengo.Node([0.25])
            t = nengodl.TensorNode(double, shape_in=(1,), shape_out=(1,), pass_time=False)
            e = nengo.Ensemble(10, 1, neuron_type=nengo.RectifiedLinear())
            nengo.Connection(a, t, synapse=None)
            # a trainable weight on the TensorNode's output (transform=None has none),
            # which training lowers from 1 towards ~0.33
            nengo.Connection(t, e, transform=1.0, synapse=None)
            p = nengo.Probe(e)
        return net, a, p

    def py_double(x):  # tf.numpy_function has no XLA kernel
        out = tf.numpy_function(lambda v: (2 * v).astype(v.dtype), [x], x.dtype)
        return tf.ensure_shape(out, x.shape)

    results = []
    for double in [py_double, lambda x: 2 * x]:
        net, a, p = model(double)
        data = {a: np.ones((4, 1, 1)), p: np.full((4, 1, 1), 0.8)}
        options = nengodl.options.Options(xla_after_steps=0)  # XLA from the first run
        with nengodl.Simulator(net, minibatch_size=2, progress_bar=False, options=options) as sim:
            if double is py_double:
                with pytest.warns(UserWarning, match="XLA cannot compile"):
                    sim.run_steps(3)
                assert not sim.jit
            else:
                sim.run_steps(3)
                assert sim.jit
            before = sim.loss(data, progress_bar=False)  # 2.72 (decodes ~2.45 for 0.8)
            sim.train(
                data,
                tf.compat.v1.train.GradientDescentOptimizer(2e-2),
                n_epochs=5,
                progress_bar=False,
            )
            # measured 0.0007: a drop of 2.72, 1e7 times float32's resolution at 2.72
            # (2.4e-7); network seeds 0-7 all end below 0.11 * before
            assert sim.loss(data, progress_bar=False) < 0.25 * before
            sim.run_steps(1)
            results.append(sim.data[p])
    np.testing.assert_allclose(results[0], results[1], rtol=1e-5)


def test_tensor_node_may_mix_minibatch_items():
    # the minibatch is never split into shards when a TensorNode could see all items
    options = nengodl.options.Options(shard_bytes=1, shard_workers=2, xla_after_steps=0)
    with nengo.Network() as net:
        inp = nengo.Node([0.0])
        mean = nengodl.TensorNode(
            lambda t, x: tf.broadcast_to(tf.reduce_mean(x, axis=0, keepdims=True), tf.shape(x)),
            size_in=1,
        )
        nengo.Connection(inp, mean, synapse=None)
        p = nengo.Probe(mean)
    items = np.arange(4.0)[:, None, None] * np.ones((1, 5, 1))
    with nengodl.Simulator(net, minibatch_size=4, progress_bar=False, options=options) as sim:
        sim.run_steps(5, data={inp: items})
    np.testing.assert_allclose(sim.data[p], np.full((4, 5, 1), 1.5))


def nengo_reference(node_output, size_in, steps):
    """``sim.data`` of a nengo.Node (run by nengo.Simulator) fed ``[0.3, -0.6]``."""
    with nengo.Network() as net:
        inp = nengo.Node([0.3, -0.6])
        node = nengo.Node(node_output, size_in=size_in)
        if size_in:
            nengo.Connection(inp, node, synapse=None)
        p = nengo.Probe(node)
    with nengo.Simulator(net, progress_bar=False) as sim:
        sim.run_steps(steps)
    return sim.data[p]


def test_keras_layer_with_pass_time_is_called_with_one_list_of_t_and_x():
    seen = []

    class TimesT(keras.layers.Layer):
        def call(self, inputs):
            seen.append(len(inputs))
            t, x = inputs
            return x * t

    class OnlyT(keras.layers.Layer):
        def call(self, t):
            seen.append(t.shape.rank)
            return tf.stack([t, 2 * t])

    with nengo.Network() as net:
        inp = nengo.Node([0.3, -0.6])
        with_x = nengodl.TensorNode(TimesT(), shape_in=(2,))  # pass_time=True
        nengo.Connection(inp, with_x, synapse=None)
        only_t = nengodl.TensorNode(OnlyT(), shape_out=(2,))  # broadcast to the minibatch
        p_x, p_t = nengo.Probe(with_x), nengo.Probe(only_t)
    sim = run(net, steps=5, minibatch_size=2, dtype="float64")
    assert set(seen) == {2, 0}  # [t, x] as one list; t alone, a scalar
    expected_x = nengo_reference(lambda t, x: x * t, 2, 5)
    expected_t = nengo_reference(lambda t: [t, 2 * t], 0, 5)
    for item in range(2):
        np.testing.assert_allclose(sim.data[p_x][item], expected_x, rtol=1e-6)
        np.testing.assert_allclose(sim.data[p_t][item], expected_t, rtol=1e-6)


def test_pass_time_errors_name_the_call():
    with nengo.Network():
        with pytest.raises(ValidationError, match="shape_in.*or pass_time=True"):
            nengodl.TensorNode(lambda: tf.ones((1, 1)), shape_out=(1,), pass_time=False)
        # a Dense layer cannot take [t, x]: the error says how it was called
        with pytest.raises(SimulationError, match=r"layer\(\[t, x\]\).*pass_time=False"):
            nengodl.TensorNode(keras.layers.Dense(2), shape_in=(3,))


class TrainingScale(keras.layers.Layer):
    """Returns ``3 x`` when called with ``training=True``, ``x`` otherwise."""

    def call(self, x, training=None):
        return x * (3.0 if training else 1.0)


def training_model(learning_phase=None):
    with nengo.Network() as net:
        if learning_phase is not None:
            nengodl.configure_settings(learning_phase=learning_phase)
        inp = nengo.Node([1.0])
        node = nengodl.TensorNode(TrainingScale(), shape_in=(1,), pass_time=False)
        nengo.Connection(inp, node, transform=0.5, synapse=None)  # something to train
        p = nengo.Probe(node)
    return net, inp, p


def test_keras_layers_get_training_from_the_learning_phase():
    layer = TrainingScale()
    x = np.full((1, 1), 0.5, np.float32)  # what the node sees: 0.5 * input
    trained = float(layer(x, training=True)[0, 0]) ** 2  # squared error to target 0
    inferred = float(layer(x, training=False)[0, 0]) ** 2
    assert trained != inferred
    data_x, data_y = np.ones((1, 2, 1)), np.zeros((1, 2, 1))
    for learning_phase in (None, False, True):
        net, inp, p = training_model(learning_phase)
        run_value = trained if learning_phase else inferred
        with nengodl.Simulator(net, progress_bar=False) as sim:
            sim.run_steps(2)
            np.testing.assert_allclose(sim.data[p] ** 2, run_value, rtol=1e-6)
            out = sim.predict({inp: data_x}, verbose=0)[p]
            np.testing.assert_allclose(out**2, run_value, rtol=1e-6)
            sim.compile(optimizer=keras.optimizers.SGD(0.0), loss={p: "mse"})
            assert sim.evaluate({inp: data_x}, {p: data_y}, verbose=0)["loss"] == pytest.approx(
                run_value
            )
            history = sim.fit({inp: data_x}, {p: data_y}, verbose=0)
            assert history.history["loss"] == pytest.approx([trained])
            loss = sim.train(
                {inp: data_x, p: data_y},
                keras.optimizers.SGD(0.0),
                objective={p: lambda out, target: tf.reduce_mean(tf.square(out - target))},
                progress_bar=False,
            )
            assert loss == pytest.approx(trained)


def test_layer_input_connection_does_not_train():
    rng = np.random.RandomState(0)
    x = rng.uniform(-1, 1, (8, 1, 2))
    y = x @ [[1.0], [-2.0]]
    weights = {}
    for via_layer in (True, False):
        dense = keras.layers.Dense(1, use_bias=False, kernel_initializer="ones")
        with nengo.Network(seed=0) as net:
            inp = nengo.Node(np.zeros(2))
            with nengo.Network() as sub:  # set on the network being defined
                if via_layer:
                    node, conn = nengodl.Layer(dense)(inp, transform=2.0, return_conn=True)
                    assert sub.config[conn].trainable is False
                else:  # the same model without Layer: the connection trains
                    node = nengodl.TensorNode(dense, shape_in=(2,), pass_time=False)
                    conn = nengo.Connection(inp, node, transform=2.0, synapse=None)
            p = nengo.Probe(node)
        with nengodl.Simulator(net, minibatch_size=8, progress_bar=False) as sim:
            sim.compile(keras.optimizers.SGD(0.1), loss="mse")
            sim.fit({inp: x}, {p: y}, epochs=3, verbose=0)
            weights[via_layer] = float(sim.data[conn].weights)
        assert not np.allclose(dense.kernel.numpy(), 1.0)  # the layer itself trains
    assert weights[True] == 2.0
    assert weights[False] != pytest.approx(2.0)


def test_layer_str_names_the_function_or_layer():
    def double(x):
        return 2 * x

    class Scale:  # a callable with neither ``name`` nor ``__name__``
        def __call__(self, x):
            return x

        def __str__(self):
            return "Scale()"

    assert str(nengodl.Layer(keras.layers.Dense(3, name="readout"))) == "Layer(readout)"
    assert str(nengodl.Layer(double)) == "Layer(double)"
    assert str(nengodl.Layer(Scale())) == "Layer(Scale())"
    assert str(nengodl.Layer(tf.nn.relu)) == "Layer(relu)"


class NumpyInBuild(keras.layers.Layer):
    """Reads its weight with ``.numpy()`` in ``build`` (eager execution only)."""

    def build(self, input_shape):
        self.shape_seen = input_shape
        x_shape = input_shape[-1] if isinstance(input_shape, list) else input_shape
        self.w = self.add_weight(shape=(x_shape[-1],), initializer=keras.initializers.Constant(2))
        self.total = float(np.sum(self.w.numpy()))

    def call(self, inputs):
        x = inputs[-1] if isinstance(inputs, (list, tuple)) else inputs
        return x * self.total


class ClonedModel(keras.layers.Layer):
    """Clones a Keras model, weights and all, in ``build``."""

    def __init__(self, model, **kwargs):
        super().__init__(**kwargs)
        self.source = model

    def build(self, input_shape):
        self.inner = keras.models.clone_model(self.source)
        self.inner.set_weights(self.source.get_weights())

    def call(self, x):
        return self.inner(x)


def test_keras_layers_whose_build_needs_eager_execution():
    source = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="tanh")])
    numpy_build, with_time, cloned = NumpyInBuild(), NumpyInBuild(), ClonedModel(source)
    value = [0.1, -0.4, 0.7]
    with nengo.Network() as net:
        inp = nengo.Node(value)
        nodes = [  # shape_out given: nothing calls the layers before the simulator
            nengodl.TensorNode(numpy_build, shape_in=(3,), shape_out=(3,), pass_time=False),
            nengodl.TensorNode(with_time, shape_in=(3,), shape_out=(3,)),
            nengodl.TensorNode(cloned, shape_in=(3,), shape_out=(2,), pass_time=False),
        ]
        probes = []
        for node in nodes:
            nengo.Connection(inp, node, synapse=None)
            probes.append(nengo.Probe(node))
    sim = run(net, steps=2, minibatch_size=2)
    assert numpy_build.shape_seen == (2, 3)  # the simulation's minibatch and shape_in
    assert with_time.shape_seen == [(), (2, 3)]  # [t, x]
    np.testing.assert_allclose(sim.data[probes[0]], np.tile(6.0 * np.array(value), (2, 2, 1)))
    np.testing.assert_allclose(sim.data[probes[1]], sim.data[probes[0]])
    expected = source(np.array([value])).numpy()  # the Keras model on the same input
    np.testing.assert_allclose(sim.data[probes[2]], np.tile(expected, (2, 2, 1)), rtol=1e-5)


def test_tensor_layer_warns_and_builds_what_layer_builds():
    # NengoDL 3.6's deprecated tensor_layer(input, layer_func, ...) = Layer(layer_func)(input, ...)
    with nengo.Network() as net:
        a = nengo.Node([1.0, -2.0])
        with pytest.warns(DeprecationWarning, match="use Layer"):
            b, conn = nengodl.tensor_layer(
                a, lambda x: x * 3, transform=2, synapse=None, return_conn=True
            )
            ones, zeros = nengo.dists.Choice([1]), nengo.dists.Choice([0])
            c = nengodl.tensor_layer(b, nengo.RectifiedLinear(), gain=ones, bias=zeros)
        p_b, p_c = nengo.Probe(b), nengo.Probe(c)
    assert conn.pre is a and conn.post is b and isinstance(b, nengodl.TensorNode)
    assert isinstance(c, nengo.ensemble.Neurons) and c.ensemble.n_neurons == 2
    with nengodl.Simulator(net, progress_bar=False) as sim:
        sim.run_steps(2)
    np.testing.assert_allclose(sim.data[p_b][-1], [6.0, -12.0])
    np.testing.assert_allclose(sim.data[p_c][-1], [6.0, 0.0])  # ReLU of 6, -12 (gain 1, bias 0)


# --- tensor_func, shape_in, shape_out, pass_time as nengo Parameters (NengoDL 3.6) ---

CALLS = []


def times_t(t, x):
    """Module level, so that a network holding it pickles; counts its calls."""
    CALLS.append(tuple(x.shape))
    return x * t


def test_parameters_are_declared_on_the_class_with_3_6_defaults():
    # NengoDL 3.6: tensor_func is required and has no default; shape_in and
    # shape_out default to None (optional); pass_time defaults to True
    params = {
        name: getattr(nengodl.TensorNode, name)
        for name in ("tensor_func", "shape_in", "shape_out", "pass_time")
    }
    assert all(isinstance(p, nengo.params.Parameter) for p in params.values())
    assert not params["tensor_func"].configurable and not params["tensor_func"].optional
    assert params["shape_in"].default is None and params["shape_in"].optional
    assert params["shape_out"].default is None and params["shape_out"].optional
    assert params["pass_time"].default is True
    with nengo.Network():
        node = nengodl.TensorNode(lambda t, x: x, shape_in=(2,))
    assert set(params) <= set(node.params)  # what nengo copies and pickles
    assert node.pass_time is True and node.shape_out == (2,)


def test_assignment_after_construction_is_validated():
    with nengo.Network():
        node = nengodl.TensorNode(lambda t, x: 2 * x, shape_in=(2,), label="dbl")
        no_input = nengodl.TensorNode(lambda t: tf.fill((1, 1), t))
    func = node.tensor_func
    bad = [
        (node, "shape_in", (0,), "positive"),
        (node, "shape_in", (2.5,), "tuple of ints"),
        (node, "shape_out", (2, -1), "positive"),
        (node, "pass_time", "yes", "True or False"),
        (node, "tensor_func", 3, "callable"),
        (no_input, "pass_time", False, "needs a shape_in"),
    ]
    for obj, attr, value, message in bad:
        before = getattr(obj, attr)
        with pytest.raises(ValidationError, match=message) as info:
            setattr(obj, attr, value)
        assert info.value.attr == attr and f"TensorNode.{attr}" in str(info.value)
        assert getattr(obj, attr) == before  # the node keeps its value
    with pytest.raises(ValidationError, match=r"TensorNode\.shape_in: TensorNode 'dbl'"):
        node.shape_in = (0,)  # the error names the node by its label
    assert node.tensor_func is func
    with nengo.Network():
        with pytest.raises(ValidationError, match="shape_in.*or pass_time=True"):
            nengodl.TensorNode(lambda: tf.ones((1, 1)), shape_out=(1,), pass_time=False)

    node.shape_in = np.int64(4)  # an int is a 1-d shape; numpy ints become ints
    assert node.shape_in == (4,) and type(node.shape_in[0]) is int and node.size_in == 4
    node.shape_out = [np.int32(2), 2]
    assert node.shape_out == (2, 2) and node.size_out == 4
    node.pass_time = np.bool_(False)
    assert node.pass_time is False


def test_shape_out_none_is_inferred_from_the_function_again():
    width = [2]
    with nengo.Network():
        node = nengodl.TensorNode(lambda t: tf.zeros((1, width[0])))
    assert node.shape_out == (2,) and node.size_out == 2
    width[0] = 5
    node.shape_out = None  # 3.6: None means "infer by calling tensor_func"
    assert node.shape_out == (5,) and node.size_out == 5
    node.tensor_func = lambda t: tf.zeros((1, 3))  # an explicit shape_out is kept
    assert node.shape_out == (5,)
    del node.shape_out  # unset: the next function is called to infer it
    old = node.tensor_func
    with pytest.raises(SimulationError, match="must return a tensor"):
        node.tensor_func = lambda t: "oops"
    assert node.tensor_func is old  # a function that cannot be called is not kept
    node.tensor_func = lambda t: tf.zeros((1, 7))
    assert node.shape_out == (7,)


def test_config_sets_defaults_for_the_configurable_parameters():
    with nengo.Network() as net:
        inp = nengo.Node([0.3, -0.6])
        net.config.configures(nengodl.TensorNode)
        net.config[nengodl.TensorNode].pass_time = False
        net.config[nengodl.TensorNode].shape_in = (2,)
        with pytest.raises(ConfigError, match="not configurable"):
            net.config[nengodl.TensorNode].tensor_func = tf.identity
        with pytest.raises(ValidationError, match="positive"):
            net.config[nengodl.TensorNode].shape_out = (0,)
        square = nengodl.TensorNode(lambda x: x * x)  # shape_in, pass_time: config
        timed = nengodl.TensorNode(lambda t, x: x * t, pass_time=True)  # given: wins
        with pytest.raises(ValidationError, match="needs a shape_in"):
            nengodl.TensorNode(lambda: tf.ones((1, 1)), shape_in=None, shape_out=(1,))
        probes = []
        for node in (square, timed):
            nengo.Connection(inp, node, synapse=None)
            probes.append(nengo.Probe(node))
        with nengo.Network():  # no config of its own: the outer network's defaults
            inner = nengodl.TensorNode(lambda x: -x)
    with nengo.Network():  # outside: the class defaults
        plain = nengodl.TensorNode(lambda t: tf.fill((1, 1), t))
    assert (square.shape_in, square.pass_time, square.shape_out) == ((2,), False, (2,))
    assert (timed.shape_in, timed.pass_time) == ((2,), True)
    assert (inner.shape_in, inner.pass_time) == ((2,), False)
    assert (plain.shape_in, plain.pass_time) == (None, True)
    sim = run(net, steps=5, dtype="float64")
    expected = [nengo_reference(lambda t, x: x * x, 2, 5), nengo_reference(times_t, 2, 5)]
    for probe, want in zip(probes, expected):
        np.testing.assert_allclose(sim.data[probe], want, rtol=1e-10, atol=1e-12)


def copies_of(net):
    yield "copy.deepcopy", copy.deepcopy(net)
    yield "pickle", pickle.loads(pickle.dumps(net))
    yield "Network.copy", net.copy()


def test_copies_and_pickles_keep_the_parameters_and_simulate_the_same():
    with nengo.Network() as net:
        inp = nengo.Node([0.3, -0.6])
        node = nengodl.TensorNode(times_t, shape_in=(2,), label="times_t")
        nengo.Connection(inp, node, synapse=None)
        nengo.Probe(node)
    expected = nengo_reference(times_t, 2, 4)
    CALLS.clear()
    shallow = copy.copy(node)
    assert shallow.tensor_func is times_t and shallow.shape_out == (2,)
    shallow.shape_out = (1, 2)  # each node keeps its own values
    assert node.shape_out == (2,)
    for how, copied in copies_of(net):
        (cnode,) = [n for n in copied.nodes if isinstance(n, nengodl.TensorNode)]
        assert cnode is not node, how
        values = [getattr(cnode, a) for a in ("shape_in", "shape_out", "pass_time", "label")]
        assert values == [(2,), (2,), True, "times_t"], how
        assert cnode.tensor_func is times_t, how  # a module function: by reference
        assert CALLS == [], how  # copies do not call the function to infer shape_out
        cnode.pass_time = False
        assert node.pass_time is True, how
        cnode.pass_time = True
        sim = run(copied, steps=4, dtype="float64")
        np.testing.assert_allclose(sim.data[copied.probes[0]], expected, rtol=1e-10)
        CALLS.clear()
