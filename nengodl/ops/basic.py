"""Builders for nengo's core operators: resets, copies, products and time."""

import numpy as np
import tensorflow as tf
from nengo.builder.operator import (
    BsrDotInc,
    Copy,
    DotInc,
    ElementwiseInc,
    Reset,
    SparseDotInc,
    TimeUpdate,
)
from nengo.exceptions import BuildError

from nengodl.ops.registry import OpBuilder, register
from nengodl.views import reshape


def last_axis_sum(ctx, x):
    """Sum of ``x`` over its last axis (kept, with size 1).

    In the XLA loop, a last axis longer than ``ctx.options.fold_width`` is
    first folded (XLA on CPUs splits a longer reduction into two kernels of
    their own, while a short one fuses with the elementwise operations that
    feed it): its
    second half is added to its first half (an odd middle element is kept)
    until it is short enough, so that the whole product-and-sum is one fused
    kernel.

    Examples
    --------
    >>> import types
    >>> x = tf.reshape(tf.range(100.0), (1, 100))
    >>> from nengodl.options import Options
    >>> last_axis_sum(types.SimpleNamespace(xla=True, options=Options()), x).numpy()
    array([[4950.]], dtype=float32)
    """
    width = x.shape[-1]
    fold = ctx.options.fold_width if ctx.xla else None
    while fold and width > fold:
        half = width // 2
        rest = width - half  # the kept part, including an odd middle element
        folded = x[..., :half] + x[..., rest:]
        x = folded if rest == half else tf.concat([folded, x[..., half:rest]], axis=-1)
        width = rest
    return tf.reduce_sum(x, axis=-1, keepdims=True)


def align(ctx, sig, ndim):
    """Read ``sig`` and insert axes so that it broadcasts at rank ``ndim``.

    Values with a minibatch axis get singleton axes inserted after it, so that
    numpy-style broadcasting of the signal shapes is preserved.
    """
    val = ctx.read(sig)
    if ctx.is_batched(sig) and sig.ndim < ndim:
        val = reshape(val, (-1,) + (1,) * (ndim - sig.ndim) + sig.shape)
    return val


@register(TimeUpdate)
class TimeUpdateBuilder(OpBuilder):
    """``step += 1; time = step * dt``."""

    def __call__(self, ctx):
        step = ctx.read(self.op.step) + 1
        ctx.set(self.op.step, step)
        ctx.set(self.op.time, tf.cast(step, tf.float64) * self.dt)


def kinds(*sigs):
    """The dtype kinds of ``sigs`` (part of merge keys)."""
    return tuple(np.dtype(s.dtype).kind for s in sigs)


def stacked(ctx, sigs, shape):
    """The values of ``sigs`` (each of ``shape``) stacked on a new axis after
    the minibatch axis: ``(batch, k) + shape``, or ``(1, k) + shape`` where
    none has a minibatch axis."""
    value, batched = ctx.read_many(sigs)
    return reshape(value, (-1 if batched else 1, len(sigs)) + tuple(shape))


@register(Reset)
class ResetBuilder(OpBuilder):
    """``dst[...] = value``; resets to equal values merge."""

    @classmethod
    def merge_key(cls, op, dt):
        """Resets with equal keys can run as one merged operation."""
        return (cls, np.asarray(op.value).tobytes(), kinds(op.dst))

    def __call__(self, ctx):
        value = tf.constant(self.op.value, dtype=tf.float64)
        if len(self.ops) == 1:
            ctx.set(self.op.dst, value)
            return
        total = sum(op.dst.size for op in self.ops)
        ctx.write_many([op.dst for op in self.ops], tf.fill((ctx.minibatch_size, total), value))


@register(Copy)
class CopyBuilder(OpBuilder):
    """``dst[dst_slice] = src[src_slice]`` (or ``+=`` when ``inc``); copies
    of equal kind merge."""

    def __init__(self, op, dt):
        super().__init__(op, dt)
        for op in self.ops:
            if op.dst_slice is not None and not op.inc:
                idx = np.arange(op.dst.shape[0])[op.dst_slice]
                if len(np.unique(idx)) < len(idx):
                    raise BuildError(
                        f"{op}: Cannot have repeated indices in "
                        "``dst_slice`` when copy is not an increment"
                    )

    @classmethod
    def merge_key(cls, op, dt):
        """Copies with equal keys can run as one merged operation."""
        return (cls, op.inc, kinds(op.src, op.dst))

    def __call__(self, ctx):
        op = self.op
        if len(self.ops) == 1:
            val = ctx.read(op.src, index=op.src_slice)
            ctx.write(op.dst, val, inc=op.inc, index=op.dst_slice)
            return
        val, _ = ctx.read_many([(o.src, o.src_slice) for o in self.ops], batched=True)
        ctx.write_many([(o.dst, o.dst_slice) for o in self.ops], val, inc=op.inc)


@register(ElementwiseInc)
class ElementwiseIncBuilder(OpBuilder):
    """``Y += A * X`` with numpy broadcasting; products of equal shapes merge."""

    @classmethod
    def merge_key(cls, op, dt):
        """Products with equal keys can run as one merged operation."""
        return (cls, op.A.shape, op.X.shape, op.Y.shape, kinds(op.A, op.X, op.Y))

    def __call__(self, ctx):
        op = self.op
        ndim = max(op.A.ndim, op.X.ndim, op.Y.ndim)
        if len(self.ops) == 1:
            ctx.inc(op.Y, align(ctx, op.A, ndim) * align(ctx, op.X, ndim))
            return

        def padded(sig):
            return (1,) * (ndim - sig.ndim) + sig.shape

        a = stacked(ctx, [o.A for o in self.ops], padded(op.A))
        x = stacked(ctx, [o.X for o in self.ops], padded(op.X))
        k = len(self.ops)
        prod = tf.broadcast_to(a * x, (ctx.minibatch_size, k) + op.Y.shape)
        ctx.write_many([o.Y for o in self.ops], reshape(prod, (-1, k * op.Y.size)), inc=True)


def batched_flat(ctx, sig):
    """Read ``sig`` with a minibatch axis, flattened to ``(batch, size)``."""
    return reshape(ctx.read(sig, batched=True), (-1, sig.size))


@register(DotInc)
class DotIncBuilder(OpBuilder):
    """``Y += dot(A, X)`` for matrix-vector (or scalar) products;
    matrix-vector products of equal shapes merge (a batch of products)."""

    @classmethod
    def merge_key(cls, op, dt):
        """Products with equal keys can run as one merged operation."""
        if op.A.ndim != 2 or op.X.ndim != 1:
            return None
        return (cls, op.A.shape, op.X.shape, kinds(op.A, op.X, op.Y))

    def __call__(self, ctx):
        op = self.op
        if len(self.ops) > 1:
            self.merged(ctx)
            return
        A, X, Y = op.A, op.X, op.Y
        if A.ndim == 0 or X.ndim == 0:
            ndim = max(A.ndim, X.ndim)
            prod = align(ctx, A, ndim) * align(ctx, X, ndim)
            ctx.inc(Y, reshape(prod, (-1,) + Y.shape))
            return
        n = A.shape[-1]
        x = batched_flat(ctx, X)
        a = ctx.read(A)
        if ctx.is_batched(A):
            out = tf.einsum("bmn,bn->bm", reshape(a, (-1, A.size // n, n)), x)
        else:
            out = tf.matmul(x, reshape(a, (-1, n)), transpose_b=True)
        ctx.inc(Y, reshape(out, (-1,) + Y.shape))

    def merged(self, ctx):
        """The products of a merged group: ``(k, m, n)`` matrices with ``(k, n)``
        vectors."""
        k, (m, n) = len(self.ops), self.op.A.shape
        a = stacked(ctx, [o.A for o in self.ops], (m, n))  # (batch or 1, k, m, n)
        x = stacked(ctx, [o.X for o in self.ops], (n,))[:, :, None, :]  # (batch, k, 1, n)
        if n == 1:
            out = a[..., 0] * x[..., 0]
        elif m == 1:  # a multiply-reduce, which XLA fuses with its inputs
            out = last_axis_sum(ctx, a[:, :, 0, :] * x[:, :, 0, :])
        elif a.shape[0] == 1:
            out = tf.einsum("kmn,bkn->bkm", a[0], x[:, :, 0, :])
        else:
            out = tf.einsum("bkmn,bkn->bkm", a, x[:, :, 0, :])
        out = tf.broadcast_to(out, (ctx.minibatch_size, k, m))
        ctx.write_many([o.Y for o in self.ops], reshape(out, (-1, k * m)), inc=True)


def sparse_coo(initial_value):
    """Rows, columns, values and shape of a nengo sparse signal's matrix."""
    mat = initial_value
    if hasattr(mat, "allocate"):
        mat = mat.allocate()  # scipy matrix, or dense without scipy
    if isinstance(mat, np.ndarray):
        rows, cols = np.nonzero(mat)
        return rows, cols, mat[rows, cols], mat.shape
    coo = mat.tocoo()
    return coo.row.astype(np.int64), coo.col.astype(np.int64), coo.data, coo.shape


def spread_pattern(cols, n):
    """How a matrix with one entry per row, row ``i`` reading input
    ``cols[i]`` of ``n``, spreads its inputs: ``("tile", reps)`` where ``cols[i]
    == i % n`` (a channels-last broadcast), ``("repeat", reps)`` where ``cols[i]
    == i // reps`` (channels first), else None.

    Examples
    --------
    >>> spread_pattern(np.array([0, 1, 2, 0, 1, 2]), 3), spread_pattern(np.array([0, 0, 1, 1]), 2)
    (('tile', 2), ('repeat', 2))
    """
    rows = len(cols)
    if n == 0 or rows % n:
        return None
    reps = rows // n
    index = np.arange(rows)
    if np.array_equal(cols, index % n):
        return ("tile", reps)
    if np.array_equal(cols, index // reps):
        return ("repeat", reps)
    return None


def placement_pattern(rows, cols, shape):
    """``(P, C, offset, c)`` where a matrix of ``shape`` with entries at
    ``(rows, cols)`` places input ``p * c + j`` at output ``p * C + offset + j``
    (every input once, in order: a part of a concatenation along the last axis),
    else None.

    Examples
    --------
    >>> placement_pattern(np.array([1, 2, 4, 5]), np.arange(4), (6, 4))
    (2, 3, 1, 2)
    """
    n_out, n_in = shape
    if n_in == 0 or len(cols) != n_in or not np.array_equal(cols, np.arange(n_in)):
        return None
    breaks = np.flatnonzero(np.diff(rows) != 1)
    c = int(breaks[0]) + 1 if len(breaks) else n_in
    stride = int(rows[c] - rows[0]) if len(breaks) else n_out
    offset, parts = int(rows[0]), n_in // c
    if n_in % c or stride < c or offset + c > stride or parts * stride != n_out:
        return None
    want = offset + np.arange(parts)[:, None] * stride + np.arange(c)
    return (parts, stride, offset, c) if np.array_equal(rows, want.ravel()) else None


@register(SparseDotInc)
class SparseDotIncBuilder(OpBuilder):
    """``Y += A @ X`` with a sparse, constant ``A``."""

    def __init__(self, op, dt):
        super().__init__(op, dt)
        self.rows, self.cols, self.data, self.shape = sparse_coo(op.A.initial_value)
        counts = np.bincount(self.rows, minlength=self.shape[0])
        # rows of one length (pooling, most convolution-like matrices) are
        # summed along an axis of their own: pairwise and without a scatter
        self.regular = len(counts) > 0 and counts.min() == counts.max() > 0
        self.spread = None
        if self.regular:
            order = np.argsort(self.rows, kind="stable")
            self.cols = self.cols[order].reshape(len(counts), -1)
            self.data = self.data[order].reshape(len(counts), -1)
            if self.cols.shape[1] == 1 and np.all(self.data == self.data[0, 0]):
                self.spread = spread_pattern(self.cols[:, 0], self.shape[1])
        self.placement = None
        if not self.regular and len(self.data) and np.all(self.data == self.data[0]):
            order = np.argsort(self.cols, kind="stable")
            self.placement = placement_pattern(self.rows[order], self.cols[order], self.shape)

    def __call__(self, ctx):
        op = self.op
        x = batched_flat(ctx, op.X)  # (batch, n)
        if self.spread is not None:  # a broadcast (a per-channel bias): no index constants
            how, reps = self.spread
            n = self.shape[1]
            if how == "tile":  # row i reads input i % n
                out = tf.broadcast_to(x[:, None, :], (x.shape[0], reps, n))
            else:  # row i reads input i // reps
                out = tf.broadcast_to(x[:, :, None], (x.shape[0], n, reps))
        elif self.placement is not None:  # zeros around the input: no index constants
            parts, stride, offset, c = self.placement
            pads = [[0, 0], [0, 0], [offset, stride - offset - c]]
            out = tf.pad(reshape(x, (-1, parts, c)), pads)
        elif self.regular:
            data = tf.constant(self.data, dtype=x.dtype)
            out = last_axis_sum(ctx, tf.gather(x, self.cols, axis=1) * data)
        else:
            data = tf.constant(self.data[:, None], dtype=x.dtype)
            gathered = tf.gather(tf.transpose(x), self.cols) * data  # (nnz, batch)
            out = tf.math.unsorted_segment_sum(gathered, self.rows, self.shape[0])
            out = tf.transpose(out)
        if self.spread is not None or self.placement is not None:
            scale = self.data.flat[0]  # their entries' one value
            out = out if scale == 1 else out * tf.constant(scale, x.dtype)
        ctx.inc(op.Y, reshape(out, (-1,) + op.Y.shape))


@register(BsrDotInc)
class BsrDotIncBuilder(OpBuilder):
    """``Y += A @ X`` with ``A`` in block sparse row format; products with
    blocks of equal shape merge (their block matrices join diagonally)."""

    @classmethod
    def merge_key(cls, op, dt):
        """Products with equal keys can run as one merged operation."""
        return (cls, op.A.shape[1:], kinds(op.A, op.X, op.Y))

    def __init__(self, op, dt):
        super().__init__(op, dt)
        _, self.r, self.c = self.op.A.shape
        rows, cols, n_rows, n_cols = [], [], 0, 0
        for o in self.ops:
            rows.append(np.repeat(np.arange(len(o.indptr) - 1), np.diff(o.indptr)) + n_rows)
            cols.append(np.asarray(o.indices) + n_cols)
            n_rows += len(o.indptr) - 1
            n_cols += o.X.size // self.c
        self.rows, self.cols = np.concatenate(rows), np.concatenate(cols)
        self.n_row_blocks, self.n_col_blocks = n_rows, n_cols
        self.diagonal = np.array_equal(self.rows, np.arange(len(self.rows)))

    def __call__(self, ctx):
        k, ops = len(self.rows), self.ops
        x = ctx.read_many([o.X for o in ops], batched=True)[0]
        x = reshape(x, (-1, self.n_col_blocks, self.c))
        if not np.array_equal(self.cols, np.arange(x.shape[1])):
            x = tf.gather(x, self.cols, axis=1)
        a, batched = ctx.read_many([o.A for o in ops])
        a = reshape(a, ((-1,) if batched else ()) + (k, self.r, self.c))
        batched_a = a if batched else a[None]  # (batch or 1, k, r, c)
        if self.c == 1:  # elementwise: fuses with the producer of x
            prod = batched_a[..., 0] * x
        elif self.r == 1:  # a multiply-reduce: fuses too, with no transposes
            prod = last_axis_sum(ctx, batched_a[:, :, 0, :] * x)
        else:
            spec = "bkrc,bkc->bkr" if batched else "krc,bkc->bkr"
            prod = tf.einsum(spec, a, x)
        if not self.diagonal:
            prod = tf.transpose(prod, (1, 0, 2))
            prod = tf.math.unsorted_segment_sum(prod, self.rows, self.n_row_blocks)
            prod = tf.transpose(prod, (1, 0, 2))
        prod = tf.broadcast_to(prod, (ctx.minibatch_size,) + tuple(prod.shape[1:]))
        ctx.write_many([o.Y for o in ops], reshape(prod, (ctx.minibatch_size, -1)), inc=True)
