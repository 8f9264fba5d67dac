"""Smaller behaviours that NengoDL 3.6 documents and real NengoDL 3 code relies on."""

import nengo
import numpy as np
import pytest
from nengo.exceptions import SimulatorClosed

import nengodl


def two_input_net():
    with nengo.Network(seed=0) as net:
        net.a = nengo.Node(np.zeros(1))
        net.b = nengo.Node(np.zeros(1))
        out = nengo.Node(size_in=1)
        nengo.Connection(net.a, out, synapse=None)
        nengo.Connection(net.b, out, transform=2, synapse=None)
        net.p = nengo.Probe(out)
    return net


@pytest.mark.parametrize("method", ["save_params", "load_params"])
def test_params_io_after_close_raises_simulator_closed(method, tmp_path):
    net = two_input_net()
    with nengodl.Simulator(net, progress_bar=False) as sim:
        sim.save_params(str(tmp_path / "p"))
    with pytest.raises(SimulatorClosed, match=method):
        getattr(sim, method)(str(tmp_path / "p"))


def test_object_arrays_of_numbers_are_data():
    # a list of arrays that numpy stored with dtype object, each element a number
    net = two_input_net()
    x = np.arange(6.0).reshape(2, 3, 1)
    xo = np.empty((2, 3, 1), dtype=object)
    xo[...] = x
    with nengodl.Simulator(net, minibatch_size=2, progress_bar=False) as sim:
        want = sim.predict([x, x], verbose=0)[net.p]
        got = sim.predict([xo, xo], verbose=0)[net.p]
        np.testing.assert_array_equal(got, want)
        np.testing.assert_allclose(want, 3 * x)
        sim.run_steps(3, data={net.a: xo, net.b: x})
        np.testing.assert_allclose(sim.data[net.p], 3 * x)
        xs = np.empty((2, 3, 1), dtype=object)
        xs[...] = "a"
        with pytest.raises(nengo.exceptions.ValidationError, match="must be numeric"):
            sim.predict([xs, x], verbose=0)


def test_convolutions_in_more_than_three_dimensions_are_not_implemented():
    # as in nengo (which stops at 2-D at run time) and NengoDL 3.6
    with nengo.Network() as net:
        inp = nengo.Node(np.arange(16.0))
        conv = nengo.Convolution(1, (2, 2, 2, 2, 1), kernel_size=(2, 2, 2, 2), strides=(1,) * 4)
        out = nengo.Node(size_in=conv.size_out)
        nengo.Connection(inp, out, transform=conv, synapse=None)
    with pytest.raises(NotImplementedError, match="ConvInc"):
        with nengodl.Simulator(net, progress_bar=False) as sim:
            sim.run_steps(1)
