"""Builders for `nengo.builder.processes.SimProcess` with native processes.

Linear filters (`nengo.LinearFilter`, `nengo.Lowpass`, `nengo.Alpha`) with an
input run natively as discrete state-space systems; other processes run on the
host (processes without input are computed ahead of each run).
"""

import nengo
import numpy as np
import tensorflow as tf
from nengo.builder.processes import SimProcess

from nengodl.ops.registry import OpBuilder, register
from nengodl.views import reshape


def filter_matrices(op, dt):
    """Discrete state-space matrices ``(A, B, C, D)`` of a linear filter op."""
    A, B, C, D = op.process._get_ss(dt)
    return (
        np.asarray(A, dtype=np.float64),
        np.asarray(B, dtype=np.float64).ravel(),
        np.asarray(C, dtype=np.float64).ravel(),
        float(np.asarray(D).item()),
    )


@register(SimProcess)
class LinearFilterBuilder(OpBuilder):
    """``x[t+1] = A x[t] + B u[t]; y[t] = C x[t] + D u[t]`` (nengo's step forms).

    Several independent filters with the same matrices and mode run as one
    (`merge_key`): their inputs and states are concatenated along the signal axis.
    """

    reads_time = False  # nengo's op reads the time, which a linear filter ignores
    merge_min = 2  # filters join along the signal axis, which costs no fusion

    @classmethod
    def supports(cls, op):
        return (
            type(op.process) in (nengo.LinearFilter, nengo.Lowpass, nengo.Alpha)
            and op.input is not None
        )

    @classmethod
    def merge_key(cls, op, dt):
        """Filters with equal keys can run as one merged operation."""
        A, B, C, D = filter_matrices(op, dt)
        return (cls, A.tobytes(), B.tobytes(), C.tobytes(), D, op.mode, op.input.dtype.kind)

    def __init__(self, ops, dt):
        super().__init__(ops, dt)
        ops = self.ops
        self.A, self.B, self.C, self.D = filter_matrices(ops[0], dt)
        self.n_x = self.A.shape[0]
        # nengo advances the input one step when there is no passthrough
        self.no_d = self.n_x > 0 and self.D == 0
        self.sizes = [int(np.prod(op.input.shape)) for op in ops]

    def __call__(self, ctx):
        B_ = ctx.minibatch_size
        ops = self.ops
        u = ctx.read_many([op.input for op in ops], batched=True)[0]  # (B, total)
        n = u.shape[1]
        if self.n_x == 0:
            y = self.D * u
        else:
            # the states, (n_x,) + the input's shape each, joined row by row
            rows = [(op.state["X"], r) for r in range(self.n_x) for op in ops]
            X = reshape(ctx.read_many(rows, batched=True)[0], (B_, self.n_x, n))
            u3 = u[:, None, :]
            if self.no_d and self.n_x == 1:
                # nengo's OneX form keeps C folded into the state
                X = self.A.item() * X + (self.B.item() * self.C.item()) * u3
                y = X[:, 0]
            else:
                A = tf.constant(self.A, dtype=u.dtype)
                Bm = tf.constant(self.B[:, None], dtype=u.dtype)
                C = tf.constant(self.C, dtype=u.dtype)
                if self.no_d:
                    X = tf.einsum("ij,bjm->bim", A, X) + Bm * u3
                    y = tf.einsum("j,bjm->bm", C, X)
                else:
                    y = tf.einsum("j,bjm->bm", C, X) + self.D * u
                    X = tf.einsum("ij,bjm->bim", A, X) + Bm * u3
            ctx.write_many(rows, reshape(X, (B_, self.n_x * n)))
        ctx.write_many([op.output for op in ops], y, inc=self.op.mode == "inc")
