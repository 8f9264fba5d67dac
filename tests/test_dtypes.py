"""The simulator's dtype: float16 runs and trains, and Keras's floatx follows it
inside TensorNode functions."""

import keras
import nengo
import numpy as np
import pytest
import tensorflow as tf

import nengodl


def lif_network():
    with nengo.Network(seed=0) as net:
        stim = nengo.Node(lambda t: np.sin(6 * t))
        ens = nengo.Ensemble(50, 1)
        nengo.Connection(stim, ens)
        out = nengo.Node(size_in=1)
        nengo.Connection(ens, out)
        p = nengo.Probe(out, synapse=0.02)
        spikes = nengo.Probe(ens.neurons)
    return net, stim, p, spikes


@pytest.mark.parametrize("jit", [True, False])
def test_float16_run_follows_nengo_to_float16_precision(jit):
    net, _, p, spikes = lif_network()
    with nengo.Simulator(net, progress_bar=False) as ref:
        ref.run(0.5)
    with nengodl.Simulator(net, dtype="float16", jit=jit, progress_bar=False) as sim:
        assert sim.dtype == tf.float16
        sim.run(0.5)
    # probe data comes back in nengo's dtype; values to float16's precision
    assert sim.data[p].dtype == ref.data[p].dtype
    np.testing.assert_allclose(sim.data[p], ref.data[p], atol=0.02)
    # spike counts: a few spikes early or late over 50 neurons x 500 steps
    assert abs(sim.data[spikes].sum() - ref.data[spikes].sum()) <= 0.01 * ref.data[spikes].sum()


def test_float16_training_step_equals_float64_to_float16_precision():
    """One SGD step in float16 and float64 moves the parameters alike (the LIF
    rate's gradient just above threshold would overflow float16: it is widened)."""

    def one_step(dtype):
        with nengo.Network(seed=1) as net:
            stim = nengo.Node([0.0])
            ens = nengo.Ensemble(30, 1)
            nengo.Connection(stim, ens)
            out = nengo.Node(size_in=1)
            conn = nengo.Connection(ens, out, synapse=None)
            p = nengo.Probe(out)
        x = np.tile(np.linspace(-1, 1, 8).reshape(8, 1, 1), (1, 5, 1))
        with nengodl.Simulator(net, minibatch_size=8, dtype=dtype, progress_bar=False) as sim:
            before = [sim.data[conn].weights.copy(), sim.data[ens].bias.copy()]
            sim.compile(optimizer=keras.optimizers.SGD(1.0), loss="mse")
            history = sim.fit({stim: x}, {p: x**2}, epochs=1, verbose=0)
            after = [sim.data[conn].weights, sim.data[ens].bias]
        return before, after, history.history["loss"][0]

    before16, after16, loss16 = one_step("float16")
    before64, after64, loss64 = one_step("float64")
    assert np.isfinite(loss16) and abs(loss16 - loss64) < 1e-3 * loss64
    for b16, a16, b64, a64 in zip(before16, after16, before64, after64):
        change64 = a64 - b64
        assert np.abs(change64).max() > 0
        # float16 parameters hold the new value to their spacing there
        ulp = np.spacing(np.abs(a64).astype(np.float16)).astype(np.float64)
        np.testing.assert_array_less(
            np.abs((a16 - b16) - change64), 2 * ulp + 1e-2 * abs(change64)
        )


@pytest.mark.parametrize("dtype", ["float16", "float64"])
def test_keras_floatx_is_the_simulator_dtype_inside_tensor_nodes(dtype):
    seen = []

    def func(t, x):
        seen.append(keras.config.floatx())
        return x + keras.ops.ones((1, 1), dtype=keras.config.floatx())

    with nengo.Network() as net:
        stim = nengo.Node([0.5])
        node = nengodl.TensorNode(func, size_in=1, size_out=1)
        nengo.Connection(stim, node, synapse=None)
        p = nengo.Probe(node)
    before = keras.config.floatx()
    with nengodl.Simulator(net, dtype=dtype, progress_bar=False) as sim:
        sim.run_steps(2)
        assert keras.config.floatx() == before  # outside the node function
    assert seen and set(seen) == {dtype}
    np.testing.assert_allclose(sim.data[p], 1.5)


def test_an_unknown_dtype_is_refused():
    net, *_ = lif_network()
    with pytest.raises(nengo.exceptions.ValidationError, match="float16.*float32.*float64"):
        nengodl.Simulator(net, dtype="int32", progress_bar=False)


@pytest.mark.parametrize("dtype", ["float16", "float64"])
def test_keras_floatx_is_the_simulator_dtype_inside_node_functions(dtype):
    # NengoDL 3: Node functions see keras.backend.floatx() as the simulator's dtype,
    # whether computed ahead of a run (no input), inside the loop (with input), in
    # one sim.step(), or for training data
    seen = {"input": [], "inner": []}

    def record(kind):
        def f(t, *x):
            seen[kind].append(keras.config.floatx())
            return 0.5 if not x else x[0]

        return f

    with nengo.Network() as net:
        stim = nengo.Node(record("input"))
        inner = nengo.Node(record("inner"), size_in=1, size_out=1)
        nengo.Connection(stim, inner, synapse=None)
        p = nengo.Probe(inner)
    before = keras.config.floatx()
    with nengodl.Simulator(net, dtype=dtype, progress_bar=False) as sim:
        for calls in seen.values():
            calls.clear()  # nengo calls them once when the Node is made
        sim.run_steps(3)
        sim.step()
        sim.compile(loss="mse")
        sim.evaluate(n_steps=2, y={p: np.zeros((1, 2, 1))}, verbose=0)
        assert keras.config.floatx() == before
    assert len(seen["input"]) >= 6 and len(seen["inner"]) >= 6
    assert set(seen["input"]) == set(seen["inner"]) == {dtype}
    np.testing.assert_allclose(sim.data[p], 0.5)
