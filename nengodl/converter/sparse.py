"""Sparse matrices for the converter's spatial layers, in Keras's channels_last layout.

Each function returns a `nengo.transforms.Sparse` (or the shape it works on)
mapping a flattened channels_last input to a flattened channels_last output, so
that pooling, padding, concatenation and convolutions that
`nengo.Convolution` does not cover are plain nengo transforms. `channels_first`
re-indexes such a matrix for layers with ``data_format="channels_first"``.
"""

import nengo
import numpy as np


def same_padding(size, kernel, stride, dilation=1):
    """Padding added before the data along one axis by ``padding="same"``.

    TensorFlow's rule: the output has ``ceil(size / stride)`` elements and the
    total padding is split with the smaller half before the data.

    Parameters
    ----------
    size, kernel, stride, dilation : int
        Input length, window length, step and dilation along the axis.

    Returns
    -------
    before : int
        Number of padded elements before the data.

    Examples
    --------
    >>> same_padding(5, 3, 2)
    1
    >>> same_padding(4, 2, 2)
    0
    """
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2


def window_pairs(in_shape, kernel, strides, padding, dilation=None):
    """All (output position, input position, window offset) triples of a sliding window.

    Parameters
    ----------
    in_shape : tuple of int
        Spatial input shape (no channels).
    kernel, strides : tuple of int
        Window size and step per spatial axis.
    padding : {"valid", "same", "causal"}
        Keras padding mode (``"causal"`` pads only before the data); padded
        positions are left out of the triples.
    dilation : tuple of int, optional
        Spacing of the window elements (default 1).

    Returns
    -------
    out_shape : tuple of int
        Spatial output shape.
    out_idx, in_idx, k_idx : ndarray
        Flat (C-order) output position, input position and window offset of
        each valid triple.

    Examples
    --------
    >>> out_shape, o, i, k = window_pairs((3,), (2,), (1,), "valid")
    >>> out_shape, o.tolist(), i.tolist(), k.tolist()
    ((2,), [0, 0, 1, 1], [0, 1, 1, 2], [0, 1, 0, 1])
    """
    nd = len(in_shape)
    in_shape = np.array(in_shape)
    kernel = np.array(kernel)
    strides = np.array(strides)
    dilation = np.ones(nd, dtype=int) if dilation is None else np.array(dilation)
    span = (kernel - 1) * dilation + 1
    if padding == "causal":
        before = span - 1
        out_shape = (in_shape - 1) // strides + 1
    elif padding == "same":
        out_shape = -(-in_shape // strides)
        before = np.array([same_padding(*a) for a in zip(in_shape, kernel, strides, dilation)])
    else:
        out_shape = (in_shape - span) // strides + 1
        before = np.zeros(nd, dtype=int)
    if np.any(out_shape < 1):
        raise ValueError(f"window {tuple(kernel)} does not fit input {tuple(in_shape)}")
    grid = np.indices(tuple(out_shape) + tuple(kernel)).reshape(2 * nd, -1)
    outs, offs = grid[:nd], grid[nd:]
    ins = outs * strides[:, None] + offs * dilation[:, None] - before[:, None]
    valid = np.all((ins >= 0) & (ins < in_shape[:, None]), axis=0)
    return (
        tuple(int(s) for s in out_shape),
        np.ravel_multi_index(outs[:, valid], out_shape),
        np.ravel_multi_index(ins[:, valid], in_shape),
        np.ravel_multi_index(offs[:, valid], kernel),
    )


def sparse(shape, rows, cols, values):
    """A `nengo.transforms.Sparse` of ``shape`` with the given entries."""
    rows = np.asarray(rows, dtype=np.int64)
    cols = np.asarray(cols, dtype=np.int64)
    values = np.broadcast_to(np.asarray(values, dtype=np.float64), rows.shape)
    order = np.lexsort((cols, rows))
    indices = np.stack([rows[order], cols[order]], axis=1)
    return nengo.transforms.Sparse(shape, indices=indices, init=values[order].copy())


def avg_pool(in_shape, pool, strides, padding):
    """Average pooling of a ``spatial + (channels,)`` input.

    Padded positions do not count towards the average (as in Keras).

    Returns
    -------
    out_shape : tuple of int
        Output shape, channels last.
    transform : nengo.transforms.Sparse
        The pooling matrix.

    Examples
    --------
    >>> shape, t = avg_pool((2, 2, 1), (2, 2), (2, 2), "valid")
    >>> shape, t.init.data.tolist()
    ((1, 1, 1), [0.25, 0.25, 0.25, 0.25])
    """
    channels = in_shape[-1]
    out_sp, o, i, _ = window_pairs(in_shape[:-1], pool, strides, padding)
    counts = np.bincount(o, minlength=int(np.prod(out_sp)))
    c = np.arange(channels)
    rows = (o[:, None] * channels + c).ravel()
    cols = (i[:, None] * channels + c).ravel()
    values = np.repeat(1.0 / counts[o], channels)
    out_shape = out_sp + (channels,)
    shape = (int(np.prod(out_shape)), int(np.prod(in_shape)))
    return out_shape, sparse(shape, rows, cols, values)


def conv(in_shape, kernel, strides, padding, dilation=None, groups=1):
    """A convolution (Keras semantics, any number of spatial axes) as a sparse matrix.

    Parameters
    ----------
    in_shape : tuple of int
        ``spatial + (channels,)``.
    kernel : ndarray
        Keras kernel, ``window + (channels // groups, filters)``.
    strides, dilation : tuple of int
        Per spatial axis.
    padding : {"valid", "same", "causal"}
        Keras padding mode.
    groups : int
        Number of channel groups.

    Returns
    -------
    out_shape : tuple of int
        Output shape, channels last.
    transform : nengo.transforms.Sparse
        The convolution matrix.
    """
    window = kernel.shape[:-2]
    group_in, filters = kernel.shape[-2:]
    channels = in_shape[-1]
    out_sp, o, i, k = window_pairs(in_shape[:-1], window, strides, padding, dilation)
    f = np.arange(filters)
    g = f // (filters // groups)
    cin = g[None, :] * group_in + np.arange(group_in)[:, None]  # (group_in, filters)
    flat_k = kernel.reshape(-1, group_in, filters)
    rows = np.broadcast_to(o[:, None, None] * filters + f, (len(o), group_in, filters))
    cols = i[:, None, None] * channels + cin[None]
    values = flat_k[k]
    out_shape = out_sp + (filters,)
    shape = (int(np.prod(out_shape)), int(np.prod(in_shape)))
    return out_shape, sparse(shape, rows.ravel(), cols.ravel(), values.ravel())


def zero_pad(in_shape, pads):
    """Zero padding of a ``spatial + (channels,)`` input.

    Parameters
    ----------
    in_shape : tuple of int
        Input shape, channels last.
    pads : sequence of (int, int)
        Elements added before and after, per spatial axis.

    Returns
    -------
    out_shape : tuple of int
        Padded shape.
    transform : nengo.transforms.Sparse
        Matrix placing each input element in the padded output.

    Examples
    --------
    >>> shape, t = zero_pad((2, 1), [(1, 0)])
    >>> shape, t.init.indices.tolist()
    ((3, 1), [[1, 0], [2, 1]])
    """
    out_shape = tuple(s + a + b for s, (a, b) in zip(in_shape[:-1], pads)) + (in_shape[-1],)
    idx = np.zeros(out_shape, dtype=np.int64) - 1
    inner = tuple(slice(a, a + s) for s, (a, _) in zip(in_shape[:-1], pads))
    idx[inner] = np.arange(int(np.prod(in_shape))).reshape(in_shape)
    rows = np.flatnonzero(idx.ravel() >= 0)
    cols = idx.ravel()[rows]
    shape = (int(np.prod(out_shape)), int(np.prod(in_shape)))
    return out_shape, sparse(shape, rows, cols, 1.0)


def concat_positions(shapes, axis):
    """Where each input's elements go in the concatenation of ``shapes`` along ``axis``.

    Returns
    -------
    positions : list of ndarray
        For each input, the flat output index of each of its (flat) elements.

    Examples
    --------
    >>> [p.tolist() for p in concat_positions([(2, 1), (2, 2)], axis=1)]
    [[0, 3], [1, 2, 4, 5]]
    """
    sizes = [s[axis] for s in shapes]
    out_shape = list(shapes[0])
    out_shape[axis] = sum(sizes)
    idx = np.arange(int(np.prod(out_shape))).reshape(out_shape)
    parts = np.split(idx, np.cumsum(sizes)[:-1], axis=axis)
    return [p.ravel() for p in parts]


def selection(positions, size_out):
    """Sparse matrix putting input element ``j`` at output ``positions[j]``."""
    return sparse((size_out, len(positions)), positions, np.arange(len(positions)), 1.0)


def channels_last_order(shape):
    """Where each element of a channels_last array sits in the channels_first array.

    Parameters
    ----------
    shape : tuple of int
        ``spatial + (channels,)``.

    Returns
    -------
    order : ndarray
        ``order[i]`` is the flat channels_first index of flat channels_last index ``i``.

    Examples
    --------
    >>> channels_last_order((3, 2)).tolist()  # 3 positions, 2 channels
    [0, 3, 1, 4, 2, 5]
    """
    cf = np.arange(int(np.prod(shape))).reshape((shape[-1],) + tuple(shape[:-1]))
    return np.moveaxis(cf, 0, -1).ravel()


def channels_first(transform, in_shape, out_shape):
    """A channels_last sparse matrix re-indexed for channels_first inputs and outputs.

    Parameters
    ----------
    transform : nengo.transforms.Sparse
        Matrix from the flat channels_last input to the flat channels_last output.
    in_shape, out_shape : tuple of int
        The channels_last input and output shapes.

    Returns
    -------
    transform : nengo.transforms.Sparse
        The same map between the flat channels_first arrays.

    Examples
    --------
    >>> _, t = avg_pool((2, 1, 2), (2, 1), (2, 1), "valid")  # 2 rows, 1 column, 2 channels
    >>> channels_first(t, (2, 1, 2), (1, 1, 2)).init.indices.tolist()
    [[0, 0], [0, 1], [1, 2], [1, 3]]
    """
    rows, cols = transform.init.indices.T
    return sparse(
        transform.shape,
        channels_last_order(out_shape)[rows],
        channels_last_order(in_shape)[cols],
        transform.init.data,
    )
