"""3-D ``nengo.Convolution`` (nengo's simulator stops at 2-D), against numpy."""

import itertools

import nengo
import numpy as np
import pytest

import nengodl


def numpy_conv(x, w, strides, padding):
    """Cross-correlation of channels-last ``x`` (spatial..., channels) with ``w``
    (kernel..., channels, filters), with TensorFlow's ``same``/``valid`` padding."""
    kernel = w.shape[:-2]
    if padding == "same":
        pads = []
        for n, k, s in zip(x.shape[:-1], kernel, strides):
            total = max((-(-n // s) - 1) * s + k - n, 0)
            pads.append((total // 2, total - total // 2))
        x = np.pad(x, pads + [(0, 0)])
    out_shape = [(n - k) // s + 1 for n, k, s in zip(x.shape[:-1], kernel, strides)]
    y = np.zeros(out_shape + [w.shape[-1]])
    for index in itertools.product(*(range(n) for n in out_shape)):
        window = tuple(slice(i * s, i * s + k) for i, k, s in zip(index, kernel, strides))
        y[index] = np.tensordot(x[window], w, axes=len(kernel) + 1)
    return y


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(input_shape=(5, 4, 6, 2), kernel_size=(3, 2, 3), strides=(1, 1, 1)),
        dict(input_shape=(6, 5, 4, 3), kernel_size=(3, 3, 2), strides=(2, 1, 2), padding="same"),
        dict(
            input_shape=(2, 4, 5, 4),
            kernel_size=(2, 3, 3),
            strides=(1, 2, 1),
            channels_last=False,
        ),
    ],
    ids=["valid", "strided-same", "channels-first"],
)
def test_3d_convolution_equals_numpy(kwargs):
    conv = nengo.Convolution(3, init=nengo.dists.Uniform(-1, 1), **kwargs)
    rng = np.random.RandomState(0)
    with nengo.Network(seed=3) as net:
        stim = nengo.Node(np.zeros(conv.size_in))
        out = nengo.Node(size_in=conv.size_out)
        conn = nengo.Connection(stim, out, transform=conv, synapse=None)
        p = nengo.Probe(out)
    x = rng.uniform(-1, 1, size=(2, 3, conv.size_in))
    with nengodl.Simulator(net, minibatch_size=2, dtype="float64", progress_bar=False) as sim:
        sim.run_steps(3, data={stim: x})
        w = sim.data[conn].weights
        (params,) = sim.get_nengo_params([conn])
    assert w.shape == conv.kernel_size + (conv.input_shape.n_channels, conv.n_filters)
    for item, step in itertools.product(range(2), range(3)):
        image = x[item, step].reshape(conv.input_shape.shape)
        if not conv.channels_last:
            image = np.moveaxis(image, 0, -1)
        want = numpy_conv(image, w, conv.strides, conv.padding)
        if not conv.channels_last:
            want = np.moveaxis(want, -1, 0)
        np.testing.assert_allclose(sim.data[p][item, step], want.ravel(), atol=1e-10)
    # the parameters come back as a 3-D nengo.Convolution with the same kernel
    assert isinstance(params["transform"], nengo.Convolution)
    assert params["transform"].dimensions == 3
    np.testing.assert_array_equal(params["transform"].init, w)
