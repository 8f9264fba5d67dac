"""Builders for the classic benchmark networks."""

import nengo
import numpy as np


def integrator(dimensions, neurons_per_d, neuron_type):
    """An integrator (recurrent EnsembleArray) driven by a constant input."""
    with nengo.Network(seed=0) as net:
        inp = nengo.Node(np.linspace(-0.5, 0.5, dimensions))
        ens = nengo.networks.EnsembleArray(neurons_per_d, dimensions, neuron_type=neuron_type)
        nengo.Connection(inp, ens.input, transform=0.1, synapse=0.1)
        nengo.Connection(ens.output, ens.input, synapse=0.1)
        net.probe = nengo.Probe(ens.output, synapse=0.01)
    return net


def cconv(dimensions, neurons_per_d, neuron_type):
    """Circular convolution of two constant vectors."""
    rng = np.random.RandomState(0)
    with nengo.Network(seed=0) as net:
        a = nengo.Node(rng.randn(dimensions) / np.sqrt(dimensions))
        b = nengo.Node(rng.randn(dimensions) / np.sqrt(dimensions))
        cc = nengo.networks.CircularConvolution(neurons_per_d, dimensions)
        for ens in cc.all_ensembles:
            ens.neuron_type = neuron_type
        nengo.Connection(a, cc.input_a)
        nengo.Connection(b, cc.input_b)
        net.probe = nengo.Probe(cc.output, synapse=0.01)
    return net


def basal_ganglia(dimensions, neurons_per_d, neuron_type):
    """nengo's basal ganglia model selecting among ``dimensions`` actions."""
    with nengo.Network(seed=0) as net:
        inp = nengo.Node(np.linspace(0.2, 0.8, dimensions))
        bg = nengo.networks.BasalGanglia(dimensions, neurons_per_d)
        for ens in bg.all_ensembles:
            ens.neuron_type = neuron_type
        nengo.Connection(inp, bg.input)
        net.probe = nengo.Probe(bg.output, synapse=0.01)
    return net


NETWORKS = {"integrator": integrator, "cconv": cconv, "basal_ganglia": basal_ganglia}
