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


def pes(dimensions, neurons_per_d, neuron_type):
    """A communication channel learned online with the PES rule."""
    with nengo.Network(seed=0) as net:
        inp = nengo.Node(np.sin(np.linspace(0, np.pi, dimensions)))
        pre = nengo.networks.EnsembleArray(neurons_per_d, dimensions, neuron_type=neuron_type)
        post = nengo.Node(size_in=dimensions)
        err = nengo.Node(size_in=dimensions)
        nengo.Connection(inp, pre.input)
        conns = [
            nengo.Connection(ens, post[i], function=lambda x: 0, learning_rule_type=nengo.PES())
            for i, ens in enumerate(pre.ea_ensembles)
        ]
        nengo.Connection(post, err)
        nengo.Connection(inp, err, transform=-1)
        for i, conn in enumerate(conns):
            nengo.Connection(err[i], conn.learning_rule)
        net.probe = nengo.Probe(post, synapse=0.01)
    return net


def random_network(dimensions, neurons_per_d, neuron_type, fan_in=2):
    """``dimensions`` one-dimensional ensembles, each driven by ``fan_in``
    randomly chosen others through decoded connections with random weights."""
    rng = np.random.RandomState(0)
    with nengo.Network(seed=0) as net:
        inp = nengo.Node(0.5)
        ensembles = [
            nengo.Ensemble(neurons_per_d, 1, neuron_type=neuron_type) for _ in range(dimensions)
        ]
        for ens in ensembles:
            nengo.Connection(inp, ens)
        for post in ensembles:
            for k in rng.choice(dimensions, size=min(fan_in, dimensions), replace=False):
                nengo.Connection(ensembles[k], post, transform=rng.uniform(-0.5, 0.5))
        net.probe = nengo.Probe(ensembles[0], synapse=0.01)
    return net


def lmu(dimensions, neurons_per_d, neuron_type, order=6, theta=0.1):
    """A Legendre Memory Unit: a linear memory of ``order`` Legendre
    coefficients per input dimension, read by a spiking hidden layer whose
    output feeds back into the memory's input."""
    q = np.arange(order)
    rows, cols = np.meshgrid(q, q, indexing="ij")
    A = np.where(rows < cols, -1.0, (-1.0) ** (rows - cols + 1)) * (2 * q[:, None] + 1) / theta
    B = (2 * q + 1) * (-1.0) ** q / theta
    dt = 0.001
    Abar = np.eye(order) + A * dt  # Euler discretisation of the memory dynamics
    Bbar = B * dt
    rng = np.random.RandomState(0)
    n_hidden = neurons_per_d * dimensions
    with nengo.Network(seed=0) as net:
        inp = nengo.Node(lambda t: np.sin(2 * np.pi * t * np.arange(1, dimensions + 1)))
        u = nengo.Node(size_in=dimensions)
        memory = nengo.Node(size_in=dimensions * order)
        hidden = nengo.Ensemble(n_hidden, 1, neuron_type=neuron_type)
        nengo.Connection(inp, u, synapse=None)
        nengo.Connection(
            u, memory, transform=np.kron(np.eye(dimensions), Bbar[:, None]), synapse=None
        )
        nengo.Connection(memory, memory, transform=np.kron(np.eye(dimensions), Abar), synapse=0)
        nengo.Connection(
            memory,
            hidden.neurons,
            transform=rng.randn(n_hidden, dimensions * order) / np.sqrt(dimensions * order),
            synapse=None,
        )
        nengo.Connection(
            hidden.neurons,
            u,
            transform=rng.randn(dimensions, n_hidden) * 1e-3 / np.sqrt(n_hidden),
            synapse=0.005,
        )
        net.probe = nengo.Probe(hidden.neurons[: min(n_hidden, 64)], synapse=0.01)
    return net


def convnet(dimensions, neurons_per_d, neuron_type, image_size=28):
    """A spiking convolutional network on a constant image: two convolution
    layers (``dimensions // 8`` filters each, at least 4) and a dense readout."""
    rng = np.random.RandomState(0)
    filters = max(4, dimensions // 8)
    with nengo.Network(seed=0) as net:
        image = nengo.Node(rng.uniform(0, 1, image_size * image_size))
        conv1 = nengo.Convolution(
            filters,
            (image_size, image_size, 1),
            kernel_size=(3, 3),
            init=nengo.dists.Uniform(-0.5, 0.5),
        )
        layer1 = nengo.Ensemble(conv1.output_shape.size, 1, neuron_type=neuron_type)
        nengo.Connection(image, layer1.neurons, transform=conv1)
        conv2 = nengo.Convolution(
            filters,
            conv1.output_shape.shape,
            kernel_size=(3, 3),
            strides=(2, 2),
            init=nengo.dists.Uniform(-0.1, 0.1),
        )
        layer2 = nengo.Ensemble(conv2.output_shape.size, 1, neuron_type=neuron_type)
        nengo.Connection(layer1.neurons, layer2.neurons, transform=conv2, synapse=0.005)
        out = nengo.Node(size_in=10)
        nengo.Connection(
            layer2.neurons,
            out,
            transform=rng.randn(10, conv2.output_shape.size) * 1e-3,
            synapse=0.005,
        )
        net.probe = nengo.Probe(out, synapse=0.01)
    return net


def chain(dimensions, neurons_per_d, neuron_type):
    """``dimensions`` one-dimensional ensembles of ``neurons_per_d`` neurons in
    a chain, with given (not solved) decoders: a cheap-to-build large model
    (``--dimensions 16 --neurons-per-d 65536`` has a million neurons)."""
    rng = np.random.RandomState(0)
    with nengo.Network(seed=0) as net:
        inp = nengo.Node(0.5)
        ensembles = [
            nengo.Ensemble(
                neurons_per_d,
                1,
                neuron_type=neuron_type,
                n_eval_points=1,
                eval_points=np.zeros((1, 1)),
            )
            for _ in range(dimensions)
        ]
        nengo.Connection(inp, ensembles[0])
        out = nengo.Node(size_in=1)
        for pre, post in zip(ensembles, ensembles[1:] + [out]):
            decoders = rng.normal(0, 1.0 / neurons_per_d, size=(neurons_per_d, 1))
            nengo.Connection(pre, post, solver=nengo.solvers.NoSolver(decoders))
        net.probe = nengo.Probe(out, synapse=0.01)
    return net


NETWORKS = {
    "integrator": integrator,
    "cconv": cconv,
    "basal_ganglia": basal_ganglia,
    "pes": pes,
    "random": random_network,
    "lmu": lmu,
    "convnet": convnet,
    "chain": chain,
}
