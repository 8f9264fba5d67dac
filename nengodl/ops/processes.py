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


@register(SimProcess)
class LinearFilterBuilder(OpBuilder):
    """``x[t+1] = A x[t] + B u[t]; y[t] = C x[t] + D u[t]`` (nengo's step forms)."""

    @classmethod
    def supports(cls, op):
        return (
            type(op.process) in (nengo.LinearFilter, nengo.Lowpass, nengo.Alpha)
            and op.input is not None
        )

    def __init__(self, op, dt):
        super().__init__(op, dt)
        A, B, C, D = op.process._get_ss(dt)
        self.A, self.B = np.asarray(A), np.asarray(B).ravel()
        self.C, self.D = np.asarray(C).ravel(), float(np.asarray(D).item())
        self.n_x = self.A.shape[0]
        # nengo advances the input one step when there is no passthrough
        self.no_d = self.n_x > 0 and self.D == 0

    def __call__(self, ctx):
        op = self.op
        u = ctx.read(op.input, batched=True)
        dtype = u.dtype
        if self.n_x == 0:
            y = self.D * u
        else:
            X_sig = op.state["X"]
            shape = op.input.shape
            X = tf.reshape(ctx.read(X_sig, batched=True), (-1, self.n_x, int(np.prod(shape))))
            u_flat = tf.reshape(u, (-1, 1, int(np.prod(shape))))
            A = tf.constant(self.A, dtype=dtype)
            B = tf.constant(self.B[:, None], dtype=dtype)
            C = tf.constant(self.C, dtype=dtype)

            if self.no_d and self.n_x == 1:
                # nengo's OneX form keeps C folded into the state
                X = self.A.item() * X + (self.B.item() * self.C.item()) * u_flat
                y = X[:, 0]
            elif self.no_d:
                X = tf.einsum("ij,bjm->bim", A, X) + B * u_flat
                y = tf.einsum("j,bjm->bm", C, X)
            else:
                y = tf.einsum("j,bjm->bm", C, X) + self.D * u_flat[:, 0]
                X = tf.einsum("ij,bjm->bim", A, X) + B * u_flat
            ctx.set(X_sig, X)
            y = tf.reshape(y, (-1,) + shape)
        ctx.write(op.output, y, inc=op.mode == "inc")
