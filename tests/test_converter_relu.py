"""Keras's clipped and thresholded ReLUs (ReLU6: MobileNet's activation) convert to
nengodl's `ClippedReLU` neurons, with a spiking counterpart.

Truths: Keras on the same model, nengo.Simulator on the converted network, the
spike count over time of a constant input (the rate's integral).
"""

import keras
import nengo
import numpy as np
import pytest
import tensorflow as tf
from test_converter import check, model_of

import nengodl

L = keras.layers


@pytest.mark.parametrize(
    "layer",
    [
        L.ReLU(max_value=6.0),
        L.ReLU(max_value=0.5, threshold=0.2),
        L.ReLU(negative_slope=0.3, threshold=0.2),
        L.ReLU(max_value=0.4, negative_slope=0.1, threshold=0.1),
        L.Activation("relu6"),
        L.Activation(tf.nn.relu6),
        L.Dense(4, activation="relu6"),
    ],
    ids=["relu6", "max-threshold", "slope-threshold", "all", "act-relu6", "tf-relu6", "dense"],
)
def test_clipped_relus_convert_natively(layer):
    # against Keras and nengo.Simulator (random weights: the Dense outputs
    # reach past the small ceilings and below the thresholds)
    check(
        model_of((3,), layer) if isinstance(layer, L.Dense) else model_of((3,), L.Dense(5), layer)
    )


def test_relu6_saturates_in_the_converted_network():
    model = model_of((1,), L.Dense(1, use_bias=False), L.ReLU(max_value=6.0))
    model.layers[1].set_weights([np.array([[10.0]])])
    conv = nengodl.Converter(model, allow_fallback=False)
    x = np.array([[-1.0], [0.3], [0.9]])
    with nengodl.Simulator(conv.net, minibatch_size=3, progress_bar=False) as sim:
        out = sim.predict_on_batch({conv.inputs[model.input]: x[:, None]})
    np.testing.assert_allclose(out[conv.outputs[model.output]][:, 0, 0], [0, 3, 6], atol=1e-6)


@pytest.mark.parametrize("scale", [1, 20])
def test_spiking_relu6_counts_its_rate_and_scales(scale):
    # the spiking counterpart, swapped in, fires at the clipped rate: over 1 s
    # the decoded output's mean is the rate network's (the ceiling scales
    # with scale_firing_rates, so ReLU6 still clips at 6 of the layer's units)
    model = model_of((1,), L.Dense(1, use_bias=False), L.ReLU(max_value=6.0))
    model.layers[1].set_weights([np.array([[10.0]])])
    conv = nengodl.Converter(
        model,
        swap_activations={keras.activations.relu6: nengodl.SpikingClippedReLU(max_value=6)},
        scale_firing_rates=scale,
        allow_fallback=False,
    )
    x = np.array([[-1.0], [0.3], [0.9]])
    n_steps = 1000
    with nengodl.Simulator(conv.net, minibatch_size=3, progress_bar=False) as sim:
        out = sim.predict_on_batch(
            {conv.inputs[model.input]: np.tile(x[:, None], (1, n_steps, 1))}
        )
    mean = out[conv.outputs[model.output]][:, :, 0].mean(axis=1)
    # each spike carries amplitude / dt = 1000 / scale: the mean is within one spike
    np.testing.assert_allclose(mean, [0, 3, 6], atol=1.0 / scale + 1e-6)
    conv.inputs[model.input].output = x[2]
    with nengo.Simulator(conv.net, progress_bar=False) as ref:
        ref.run_steps(n_steps)
    np.testing.assert_allclose(ref.data[conv.outputs[model.output]].mean(), 6, atol=1.0 / scale)


def test_clipped_relu_rates_and_spikes_in_nengo_and_nengodl():
    # the numpy step (nengo.Simulator) and the TensorFlow step agree
    for neuron_type in (
        nengodl.ClippedReLU(max_value=3, threshold=0.5, negative_slope=0.2),
        nengodl.SpikingClippedReLU(max_value=30, negative_slope=0.5),
    ):
        with nengo.Network(seed=0) as net:
            stim = nengo.Node(lambda t: 40 * np.sin(7 * t))
            ens = nengo.Ensemble(8, 1, neuron_type=neuron_type)
            nengo.Connection(stim, ens, synapse=None)
            p = nengo.Probe(ens.neurons)
        with nengo.Simulator(net, progress_bar=False) as ref:
            ref.run_steps(300)
        with nengodl.Simulator(net, dtype="float64", progress_bar=False) as sim:
            sim.run_steps(300)
        np.testing.assert_allclose(sim.data[p], ref.data[p], atol=1e-8)
