"""Shared fixtures for nengodl's own tests."""

import nengo
import numpy as np
import pytest
import tensorflow as tf

# No decoder cache: the test workers would share one, and its lock warnings would
# break the tests that turn warnings into errors.
nengo.rc.set("decoder_cache", "enabled", "False")

# Two logical CPU devices, for the MirroredStrategy tests in test_distribute.py.
# This must happen before TensorFlow initialises its devices, so at import.
try:
    tf.config.set_logical_device_configuration(
        tf.config.list_physical_devices("CPU")[0],
        [tf.config.LogicalDeviceConfiguration()] * 2,
    )
except RuntimeError:  # devices already initialised: test_distribute.py says so
    pass


def seed_network(seed=0):
    """The seed tutorial's network: x -> x^2 -> sin(x^2)."""
    with nengo.Network(seed=seed) as net:
        net.inpt = nengo.Node(nengo.processes.WhiteSignal(1, 5, rms=0.3))
        net.square = nengo.Ensemble(20, 1)
        net.sin = nengo.Ensemble(20, 1)
        net.outpt = nengo.Node(size_in=1)
        nengo.Connection(net.inpt, net.square)
        nengo.Connection(net.square, net.sin, function=np.square)
        nengo.Connection(net.sin, net.outpt, function=np.sin)
        net.inpt_p = nengo.Probe(net.inpt)
        net.outpt_p = nengo.Probe(net.outpt, synapse=0.01)
        net.spikes_p = nengo.Probe(net.square.neurons)
    return net


def linear_net(W0):
    """``inp`` (3 values) -> ``out`` (2) through the weights ``W0``, probed as ``p``."""
    with nengo.Network(seed=0) as net:
        net.inp = nengo.Node(np.zeros(3))
        net.out = nengo.Node(size_in=2)
        net.conn = nengo.Connection(net.inp, net.out, transform=W0, synapse=None)
        net.p = nengo.Probe(net.out)
    return net


@pytest.fixture
def seed_net():
    return seed_network()
