"""Activations that mix a layer's elements (softmax) convert to non-spiking Nodes
whose function runs natively in nengodl and as numpy on nengo.Simulator.

Truths: Keras on the same model, nengo.Simulator (through `check`).
"""

import keras
import pytest
import tensorflow as tf
from test_converter import check, model_of

import nengodl
from nengodl.ops.functions import Softmax

L = keras.layers


@pytest.mark.parametrize(
    "layers, shape",
    [
        ([L.Dense(4, activation="softmax")], (3,)),
        ([L.Dense(4), L.Activation(tf.nn.softmax)], (3,)),
        ([L.Dense(4), L.Softmax()], (3,)),
        ([L.Conv1D(3, 2, activation="softmax")], (5, 2)),
        ([L.Softmax(axis=2)], (5, 3)),  # the last axis, counted with the batch axis
    ],
    ids=["dense", "tf-softmax", "softmax-layer", "conv1d-channels", "softmax-axis-2"],
)
def test_softmax_converts_natively(layers, shape):
    check(model_of(shape, *layers))


def test_softmax_over_another_axis_falls_back_and_equals_keras():
    # (5, 3) items: axis=1 normalises over the 5, which the Node's last-axis
    # softmax does not do: a TensorNode runs Keras's layer
    with pytest.warns(UserWarning, match="axis=1"):
        check(model_of((5, 3), L.Softmax(axis=1)), native=False)


def test_softmax_node_runs_in_the_compiled_loop():
    model = model_of((3,), L.Dense(4, activation="softmax"))
    conv = nengodl.Converter(model, allow_fallback=False)
    with nengodl.Simulator(conv.net, progress_bar=False) as sim:
        assert sim.jit and not sim.plan.has_host_loop_ops
    nodes = [n for n in conv.net.all_nodes if isinstance(n.output, Softmax)]
    assert len(nodes) == 1 and nodes[0].output == Softmax((4,))


@pytest.mark.parametrize(
    "activation",
    ["silu", "swish", "hard_silu", "hard_swish", "hard_sigmoid", keras.ops.silu, tf.nn.silu],
)
def test_smooth_activations_convert_to_rate_neurons(activation):
    # against Keras and nengo.Simulator (random weights in [-1, 1] on 3 inputs
    # and a bias: the Dense outputs reach the bends at +-3)
    check(model_of((3,), L.Dense(6), L.Activation(activation)), batch=8)


@pytest.mark.parametrize(
    "neuron_type",
    [nengodl.Swish(), nengodl.HardSwish(amplitude=0.5), nengodl.HardSigmoid()],
)
def test_keras_rate_neurons_in_nengo_and_nengodl(neuron_type):
    import nengo
    import numpy as np

    with nengo.Network(seed=0) as net:
        stim = nengo.Node(lambda t: 5 * np.sin(9 * t))
        ens = nengo.Ensemble(6, 1, neuron_type=neuron_type)
        nengo.Connection(stim, ens, synapse=None)
        p = nengo.Probe(ens.neurons)
        q = nengo.Probe(ens, synapse=0.01)
    with nengo.Simulator(net, progress_bar=False) as ref:
        ref.run_steps(200)
    with nengodl.Simulator(net, dtype="float64", progress_bar=False) as sim:
        sim.run_steps(200)
    np.testing.assert_allclose(sim.data[p], ref.data[p], atol=1e-10)
    np.testing.assert_allclose(sim.data[q], ref.data[q], atol=1e-10)


def test_scaling_the_spiking_counterpart_of_a_smooth_activation_warns():
    # RegularSpiking(Swish()) fires at Swish's rate of the scaled input, which is not
    # the scaled rate (swish(s x) != s swish(x)): the output changes, so it warns as
    # scaling Swish itself does
    import nengo

    model = model_of((3,), L.Dense(4), L.Activation("silu"))
    for swap, kind in [
        ({}, nengodl.Swish),
        ({"swish": nengo.RegularSpiking(nengodl.Swish())}, nengo.RegularSpiking),
    ]:
        with pytest.warns(UserWarning, match="not proportional"):
            conv = nengodl.Converter(model, scale_firing_rates=100, swap_activations=swap)
        (ens,) = conv.net.all_ensembles
        assert type(ens.neuron_type) is kind
