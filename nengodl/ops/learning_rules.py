"""Builders for nengo's learning rule operators (per minibatch item weights).

Each rule computes its weight change ``delta`` from filtered activities; the
weights themselves are state signals, so every minibatch item learns its own.
"""

import tensorflow as tf
from nengo.builder.learning_rules import SimBCM, SimOja, SimPES, SimVoja

from nengodl.ops.registry import OpBuilder, register
from nengodl.views import reshape


def outer(a, b):
    """Batched outer product ``(batch, m), (batch, n) -> (batch, m, n)``."""
    return a[:, :, None] * b[:, None, :]


def batched(ctx, sig, shape=(-1,)):
    """``sig`` with a minibatch axis, reshaped to ``(batch,) + shape``."""
    return reshape(ctx.read(sig, batched=True), (ctx.minibatch_size,) + tuple(shape))


@register(SimPES)
class PESBuilder(OpBuilder):
    """``delta = -learning_rate * dt / n_neurons * outer(error, pre_filtered)``."""

    def __call__(self, ctx):
        op = self.op
        pre = batched(ctx, op.pre_filtered)
        alpha = -op.learning_rate * self.dt / op.pre_filtered.shape[0]
        delta = outer(alpha * batched(ctx, op.error), pre)
        ctx.set(op.delta, delta)


@register(SimBCM)
class BCMBuilder(OpBuilder):
    """``delta = outer(lr * dt * post * (post - theta), pre)``."""

    def __call__(self, ctx):
        op = self.op
        post = batched(ctx, op.post_filtered)
        theta = batched(ctx, op.theta)
        delta = outer(
            op.learning_rate * self.dt * post * (post - theta), batched(ctx, op.pre_filtered)
        )
        ctx.set(op.delta, delta)


@register(SimOja)
class OjaBuilder(OpBuilder):
    """``delta = -beta * weights * (lr * dt * post^2) + outer(lr * dt * post, pre)``."""

    def __call__(self, ctx):
        op = self.op
        alpha = op.learning_rate * self.dt
        post = batched(ctx, op.post_filtered)
        weights = batched(ctx, op.weights, op.delta.shape)
        delta = -op.beta * weights * (alpha * post * post)[:, :, None]
        delta = delta + outer(alpha * post, batched(ctx, op.pre_filtered))
        ctx.set(op.delta, delta)


@register(SimVoja)
class VojaBuilder(OpBuilder):
    """``delta = lr * dt * signal * (scale * outer(post, pre) - post * encoders)``."""

    def __call__(self, ctx):
        op = self.op
        alpha = op.learning_rate * self.dt
        post = batched(ctx, op.post_filtered)
        encoders = batched(ctx, op.scaled_encoders, op.delta.shape)
        signal = batched(ctx, op.learning_signal, (1, 1))
        scale = tf.constant(op.scale[:, None], dtype=post.dtype)
        delta = (
            alpha
            * signal
            * (scale * outer(post, batched(ctx, op.pre_decoded)) - post[:, :, None] * encoders)
        )
        ctx.set(op.delta, delta)
