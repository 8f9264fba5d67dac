"""Whole keras.applications networks convert natively (no TensorNode), equal
Keras, and run on nengo.Simulator with the same output.

Truths: Keras's predict on the same weights; nengo.Simulator on the converted net.
"""

import time

import keras
import nengo
import numpy as np
import pytest

import nengodl


def random_weights(model, seed=0):
    """Weights that make every layer matter (keras' initial BatchNormalization
    statistics are the identity, and a random net's softmax saturates)."""
    rng = np.random.RandomState(seed)
    for w in model.weights:
        value = rng.uniform(-1, 1, size=w.shape) * (0.5 if "kernel" in w.path else 1)
        if "variance" in w.path:
            value = rng.uniform(0.5, 2, size=w.shape)
        w.assign(value.astype(np.float32))


@pytest.mark.parametrize(
    "name, kwargs, fewer_steps",
    [
        ("MobileNetV2", dict(alpha=0.35), True),
        ("MobileNetV3Small", dict(minimalistic=False), False),
    ],
)
def test_application_converts_natively_and_runs_on_nengo(name, kwargs, fewer_steps):
    model = getattr(keras.applications, name)(
        input_shape=(32, 32, 3), weights=None, classes=10, **kwargs
    )
    random_weights(model)
    x = np.random.RandomState(1).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    want = model.predict(x, verbose=0)
    conv = nengodl.Converter(model, inference_only=True, allow_fallback=False)
    inp, out = conv.inputs[model.input], conv.outputs[model.output]
    with nengodl.Simulator(conv.net, minibatch_size=2, progress_bar=False) as sim:
        assert sim.jit and not sim.plan.has_host_loop_ops
        if fewer_steps:  # each convolution, its batch normalisation and activation: 2 steps
            assert len(sim.plan.steps) < len(model.layers)
        got = sim.predict_on_batch({inp: x.reshape(2, 1, -1)})[out][:, 0]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())
    inp.output = x[1].ravel()
    start = time.perf_counter()
    with nengo.Simulator(conv.net, progress_bar=False) as ref:
        ref.step()
    print(f"nengo.Simulator: {time.perf_counter() - start:.1f} s")
    np.testing.assert_allclose(ref.data[out][0], want[1], rtol=1e-5, atol=1e-5)
