"""Transforms that nengo's simulator cannot check (3-D ``nengo.Convolution``) or that
nengodl computes its own way (``nengo.Sparse``), against numpy and nengo."""

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


def sparse_product(matrix, x, dtype):
    """``matrix @ x`` by nengodl: ``x`` fed to an input Node in the loop (not
    computed ahead on the host), through ``nengo.Sparse(matrix)``."""
    rows, cols = np.nonzero(matrix)
    indices = np.stack([rows, cols], axis=1)
    transform = nengo.Sparse(matrix.shape, indices=indices, init=matrix[rows, cols])
    with nengo.Network(seed=0) as net:
        stim = nengo.Node(np.zeros(matrix.shape[1]))
        out = nengo.Node(size_in=matrix.shape[0])
        nengo.Connection(stim, out, transform=transform, synapse=None)
        p = nengo.Probe(out)
    with nengodl.Simulator(net, dtype=dtype, progress_bar=False) as sim:
        sim.run_steps(1, data={stim: np.reshape(x, (1, 1, -1))})
    return sim.data[p][0]


def sparse_matrix(kind, rng):
    """A test matrix of each form the sparse product computes its own way."""
    if kind in ("equal", "unequal"):
        matrix = np.zeros((6, 20))
        for i in range(6):
            n = 5 if kind == "equal" else [0, 1, 7, 3, 20, 2][i]
            matrix[i, rng.choice(20, n, replace=False)] = rng.uniform(-1, 1, n)
        return matrix
    rows = np.arange(12)
    if kind == "tile":  # a channels-last per-channel bias
        cols, shape = rows % 4, (12, 4)
    elif kind == "repeat":  # channels first
        cols, shape = rows // 3, (12, 4)
    elif kind == "placement":  # two of five channels of a concatenation, channels last
        rows = (1 + np.arange(3)[:, None] * 5 + np.arange(2)).ravel()
        cols, shape = np.arange(6), (15, 6)
    else:  # "block": a channels-first concatenation's part
        rows, cols, shape = np.arange(3, 9), np.arange(6), (10, 6)
    matrix = np.zeros(shape)
    matrix[rows, cols] = 0.5
    return matrix


@pytest.mark.parametrize("kind", ["equal", "unequal", "tile", "repeat", "placement", "block"])
def test_sparse_product_equals_numpy(kind):
    """Rows with equal numbers of entries are summed along an axis of their own,
    broadcasts and concatenations are reshapes and pads, other matrices a
    scatter: each computes the product."""
    from nengodl.ops.basic import placement_pattern, spread_pattern

    rng = np.random.RandomState(1)
    matrix = sparse_matrix(kind, rng)
    rows, cols = np.nonzero(matrix)
    if kind in ("tile", "repeat"):
        assert spread_pattern(cols, matrix.shape[1])[0] == kind
    if kind in ("placement", "block"):
        assert placement_pattern(rows, cols, matrix.shape) is not None
    x = rng.uniform(-1, 1, matrix.shape[1])
    np.testing.assert_allclose(sparse_product(matrix, x, "float64"), matrix @ x, atol=1e-12)


def test_sparse_average_is_summed_pairwise():
    """Global averages over 4096 inputs (a pooling layer's matrix) in float32:
    adding the terms one by one would be 4e-5 off, pairwise sums 1e-7."""
    n = 4
    matrix = np.zeros((n, 4096 * n))
    for i in range(n):
        matrix[i, i::n] = 1 / 4096
    got = sparse_product(matrix, np.full(4096 * n, 0.1), "float32")
    np.testing.assert_allclose(got, np.float32(0.1), rtol=1e-6)
