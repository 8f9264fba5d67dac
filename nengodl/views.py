"""Views of base signals: which elements of its base a view covers, how it is
read from a flattened base tensor, and how a run of pending writes is applied
to one (slices, gathers, sums of slices), in ways that XLA fuses.

`nengodl.signals` lays out the base tensors and keeps the writes of a step
pending; this module holds what does not depend on that layout.
"""

import itertools
import math

import numpy as np
import tensorflow as tf

# what XLA recomputes in each reader at little cost: elementwise arithmetic,
# comparisons and reshaping, at most CHEAP_CHAIN operations in all back to
# the step's inputs (a sum, a matrix product or an exp is worth computing once)
CHEAP_OPS = frozenset(
    {
        "AddV2",
        "Sub",
        "Mul",
        "Neg",
        "Maximum",
        "Minimum",
        "Cast",
        "SelectV2",
        "Greater",
        "GreaterEqual",
        "Less",
        "LessEqual",
        "Identity",
        "Reshape",
        "StridedSlice",
        "Slice",
        "ConcatV2",
        "SplitV",
        "Fill",
        "BroadcastTo",
        "ExpandDims",
        "Squeeze",
    }
)
CHEAP_CHAIN = 16


def reshape(tensor, shape):
    """`tf.reshape`, skipped when ``tensor`` already has the static ``shape``
    (which may have one -1, as for `tf.reshape`).

    Examples
    --------
    >>> x = tf.zeros((2, 3))
    >>> reshape(x, (-1, 3)) is x, reshape(x, (3, -1)).shape
    (True, TensorShape([3, 2]))
    """
    shape = tuple(int(s) for s in shape)
    static = tf.TensorShape(getattr(tensor, "shape", None))
    if static.is_fully_defined() and -1 in shape:
        known = int(np.prod([s for s in shape if s != -1]))
        if known > 0:
            shape = tuple(static.num_elements() // known if s == -1 else s for s in shape)
    if static == shape:
        return tensor
    return tf.reshape(tensor, shape)


def c_strides(shape):
    """The element strides of a C-contiguous array of ``shape``."""
    strides, step = [], 1
    for n in reversed(shape):
        strides.append(step)
        step *= n
    return tuple(reversed(strides))


def is_contiguous(sig):
    """Whether the view ``sig`` is a contiguous run of its base's elements (in C
    order), which a slice reads without an index array."""
    return sig.ndim > 0 and sig.elemstrides == c_strides(sig.shape)


def flat_indices(sig, index=None):
    """Flat element indices of ``sig`` in its base, shaped like ``sig``.

    Parameters
    ----------
    sig : nengo.builder.Signal
        A signal (view or base).
    index : slice, list or ndarray, optional
        An index applied to the first axis of ``sig`` (as in `nengo.builder.Copy`).

    Returns
    -------
    ndarray
        Integer array of indices into ``sig.base`` flattened in C order.
    """
    if sig.ndim == 0:
        idx = np.array(sig.elemoffset, dtype=np.int64)
    elif is_contiguous(sig):  # a range
        idx = np.arange(sig.elemoffset, sig.elemoffset + sig.size, dtype=np.int64)
        idx = idx.reshape(sig.shape)
    else:
        grids = np.indices(sig.shape, dtype=np.int64)
        idx = sig.elemoffset + sum(
            g * s for g, s in zip(grids, np.array(sig.elemstrides, dtype=np.int64))
        )
        idx = np.asarray(idx, dtype=np.int64)
    if index is not None:
        idx = idx[index]
    return idx


def flat_positions(sig):
    """Positions of ``sig``'s elements (C order) in its flattened base: a
    slice where the view is contiguous (no index array for a large weight
    matrix), else `flat_indices` flattened."""
    if is_contiguous(sig):
        return slice(sig.elemoffset, sig.elemoffset + sig.size)
    return flat_indices(sig).ravel()


class ViewPlan:
    """How to read and write one view of a base tensor.

    Parameters
    ----------
    sig : nengo.builder.Signal
        The view.
    index : optional
        Extra first-axis index applied to ``sig``.
    """

    def __init__(self, sig, index=None):
        if index is None and is_contiguous(sig):
            self._contiguous(sig.base, sig.elemoffset, sig.shape)  # no index arrays
        else:
            self._locate(sig.base, flat_indices(sig, index))

    @classmethod
    def of_range(cls, base, start, size):
        """The plan of the ``size`` elements of ``base`` from ``start`` (flat)."""
        plan = cls.__new__(cls)
        plan._contiguous(base, start, (size,))
        return plan

    def _contiguous(self, base, start, shape):
        self.base = base
        self.shape = tuple(shape)
        self.size = math.prod(self.shape)
        self.start = int(start) if self.size > 0 else 0
        base_size = math.prod(base.shape)
        self.full = self.size > 0 and self.start == 0 and self.size == base_size
        self.indices = None
        self.unique = True

    @classmethod
    def of_indices(cls, base, indices):
        """The plan of the elements ``indices`` (flat, in order) of ``base``.

        Examples
        --------
        >>> from nengo.builder import Signal
        >>> base = Signal(np.zeros(10))
        >>> ViewPlan.of_indices(base, [4, 5, 6]).start, ViewPlan.of_indices(base, [1, 3]).indices
        (4, array([1, 3]))
        """
        plan = cls.__new__(cls)
        plan._locate(base, np.asarray(indices, dtype=np.int64))
        return plan

    def _locate(self, base, idx):
        self.base = base
        self.shape = tuple(idx.shape)
        self.size = int(idx.size)
        flat = idx.ravel()
        self.full = False
        self.start = None
        self.indices = None
        base_size = int(np.prod(self.base.shape, dtype=np.int64))
        if self.size > 0 and np.array_equal(flat, np.arange(flat[0], flat[0] + self.size)):
            self.start = int(flat[0])
            self.full = self.start == 0 and self.size == base_size
        elif self.size == 0:
            self.start = 0
        else:
            self.indices = flat
        self.unique = self.indices is None or len(np.unique(flat)) == len(flat)

    def read(self, flat, lead):
        """Select this view from the flattened base ``flat``.

        Parameters
        ----------
        flat : tf.Tensor
            The base, shape ``lead + (base.size,)``.
        lead : tuple
            ``(minibatch_size,)`` for a batched base, ``()`` otherwise.
        """
        if self.full:
            part = flat
        elif self.indices is None:
            part = slice_last(flat, self.start, self.start + self.size)
        else:
            part = tf.gather(flat, self.indices, axis=len(lead))
        return reshape(part, lead + self.shape)


def plan_indices(plan):
    """Flat indices covered by a `ViewPlan`."""
    if plan.indices is not None:
        return plan.indices
    return np.arange(plan.start, plan.start + plan.size)


def same_range(a, b):
    """Whether the `ViewPlan`s ``a`` and ``b`` are the same contiguous elements."""
    return a.indices is None and b.indices is None and (a.start, a.size) == (b.start, b.size)


def overlaps(group, plan):
    """Whether ``plan`` touches an element that a write of ``group`` (``(plan,
    value, inc)`` triples) touches."""
    if plan.size == 0:
        return False
    if plan.indices is None and all(p.indices is None for p, _, _ in group):
        end = plan.start + plan.size
        return any(p.size and p.start < end and plan.start < p.start + p.size for p, _, _ in group)
    seen = np.concatenate([plan_indices(p) for p, _, _ in group])
    return np.intersect1d(seen, plan_indices(plan)).size > 0


def place(flat, vals, group, idx, size, inc):
    """``flat`` with the disjoint writes ``vals`` (at ``idx``) applied.

    Contiguous writes become one concatenation of slices; others one gather
    from ``[vals, flat]`` (XLA fuses both; a scatter it runs element by element).
    """
    if group is not None and all(p.indices is None for p, _, _ in group):
        parts = split_last(vals, [p.size for p, _, _ in group])
        segments, pos = [], 0  # (size, write index or None), covering the signal
        for k in sorted(range(len(group)), key=lambda k: group[k][0].start):
            plan = group[k][0]
            if plan.start > pos:
                segments.append((plan.start - pos, None))
            segments.append((plan.size, k))
            pos = plan.start + plan.size
        if pos < size:
            segments.append((size - pos, None))
        # the old values: under increments and in the gaps between the writes
        needed = inc or len(group) < len(segments)
        olds = split_last(flat, [n for n, _ in segments]) if needed else None
        pieces = [
            olds[j] if k is None else (olds[j] + parts[k] if inc else parts[k])
            for j, (_, k) in enumerate(segments)
        ]
        return concat(pieces)
    if inc:
        vals = vals + tf.gather(flat, idx, axis=1)
    source = np.arange(size) + len(idx)  # position in [vals, flat]
    source[idx] = np.arange(len(idx))
    return tf.gather(tf.concat([vals, flat], axis=1), source, axis=1)


def slice_sums(flat, group, size, keep=None):
    """``flat`` with the overlapping contiguous increments of ``group`` added,
    as a concatenation of sums of slices.

    The signal is cut wherever a write starts or ends; each piece is its slice
    of ``flat`` plus the slices of the writes that cover it. XLA fuses the sums
    with the operations that produce the increments, where a scatter-add
    (duplicate indices) takes three kernels of its own: zeros, the
    concatenated increments and the scatter. With ``keep`` (as
    `StepContext.keep`), the pieces that get increments are computed once,
    together, rather than by each of the result's readers, unless every
    increment is `cheap` to recompute (keeping costs two kernels: the joined
    pieces and their copy).
    """
    cuts = sorted(
        {0, size} | {p.start for p, _, _ in group} | {p.start + p.size for p, _, _ in group}
    )
    pieces, summed = [], []
    olds = split_last(flat, np.diff(cuts))
    for (lo, hi), piece in zip(itertools.pairwise(cuts), olds):
        for plan, value, _ in group:
            if plan.start <= lo and hi <= plan.start + plan.size:
                full = lo == plan.start and hi == plan.start + plan.size
                part = value if full else slice_last(value, lo - plan.start, hi - plan.start)
                piece = piece + part
                if not summed or summed[-1] != len(pieces):
                    summed.append(len(pieces))
        pieces.append(piece)
    if keep is not None and not all(cheap(value) for _, value, _ in group):
        kept = keep(concat([pieces[k] for k in summed]))
        sizes = [pieces[k].shape[1] for k in summed]
        parts = tf.split(kept, sizes, axis=1) if len(summed) > 1 else [kept]
        for k, part in zip(summed, parts):
            pieces[k] = part
    return concat(pieces)


def cheap(tensor):
    """Whether XLA recomputes the traced ``tensor`` cheaply (see `CHEAP_OPS`).

    Examples
    --------
    >>> @tf.function
    ... def f(x):
    ...     return cheap(2 * x[:, :3] + 1), cheap(tf.exp(x)), cheap(tf.reduce_sum(x, 1))
    >>> [bool(c) for c in f(tf.zeros((1, 4)))]
    [True, False, False]
    """
    n_ops = 0
    for op in upstream_ops([tensor]):
        if op.type in ("Placeholder", "Const"):
            continue
        n_ops += 1
        if op.type not in CHEAP_OPS or n_ops > CHEAP_CHAIN:
            return False
    return True


def upstream_ops(tensors):
    """Yield, once each, every TensorFlow operation the values of ``tensors``
    depend on (through inputs and control inputs)."""
    seen = set()
    stack = [t.op for t in tensors]
    while stack:
        op = stack.pop()
        if op in seen:
            continue
        seen.add(op)
        yield op
        stack.extend(t.op for t in op.inputs)
        stack.extend(op.control_inputs)


def slice_last(x, lo, hi):
    """``x[..., lo:hi]`` as one slice operation (Python's slicing syntax also
    adds packs of its bounds to the graph, which makes tracing slower)."""
    rank = len(x.shape)
    return tf.slice(x, [0] * (rank - 1) + [int(lo)], [-1] * (rank - 1) + [int(hi - lo)])


def split_last(x, sizes):
    """``x`` cut along its last axis into pieces of ``sizes`` (one operation)."""
    if len(sizes) == 1:
        return [x]
    return tf.split(x, [int(n) for n in sizes], axis=-1)


def concat(pieces, axis=1):
    """``pieces`` joined along ``axis`` (the one piece itself, if only one)."""
    return pieces[0] if len(pieces) == 1 else tf.concat(pieces, axis=axis)


def apply_writes(flat, group, size, keep=None, sums=True):
    """Apply a run of sets (disjoint) or incs to ``flat`` (batch, size);
    ``keep`` (as `StepContext.keep`) marks values to compute only once; with
    ``sums``, overlapping contiguous increments are added as sums of slices
    (else one scatter-add, which XLA runs as a kernel of its own)."""
    inc = group[0][2]
    idx = np.concatenate([plan_indices(p) for p, _, _ in group])
    contiguous = all(p.indices is None for p, _, _ in group)
    if contiguous:  # unique where the ranges, in order, do not overlap
        ranges = sorted((p.start, p.size) for p, _, _ in group if p.size)
        unique = all(a + n <= b for (a, n), (b, _) in itertools.pairwise(ranges))
    else:
        unique = len(np.unique(idx)) == len(idx)
    if not unique and inc and sums and contiguous:
        return slice_sums(flat, group, size, keep)
    vals = group[0][1] if len(group) == 1 else tf.concat([v for _, v, _ in group], 1)
    if not unique and inc:
        # increments of repeated elements: summed first (a segment sum), then
        # added once each
        idx, where = np.unique(idx, return_inverse=True)
        vals = tf.transpose(
            tf.math.unsorted_segment_sum(tf.transpose(vals), where.ravel(), len(idx))
        )
        unique = True
        if not np.array_equal(idx, np.arange(idx[0], idx[0] + len(idx))):
            group = None  # placed by a gather
        else:
            group = [(ViewPlan.of_indices(group[0][0].base, idx), vals, inc)]
    if unique and len(idx) == size:
        # the writes cover the whole signal: reorder them into place
        order = np.argsort(idx)
        if not np.array_equal(order, np.arange(size)):
            vals = tf.gather(vals, order, axis=1)
        return flat + vals if inc else vals
    if unique:
        return place(flat, vals, group, idx, size, inc)
    flat_t = tf.transpose(flat)
    vals_t = tf.transpose(vals)
    if inc:
        out = tf.tensor_scatter_nd_add(flat_t, idx[:, None], vals_t)
    else:
        out = tf.tensor_scatter_nd_update(flat_t, idx[:, None], vals_t)
    return tf.transpose(out)
