"""A fused operator made by `nengodl.simplify`: a product scaled on its way out.

nengo builds a connection into an ensemble's neurons as the connection's
product (a convolution, say) into a signal of its own, then ``Y += gains *
that signal``: two operators, one after the other. A converted Keras network
has one such pair per layer (its batch normalisation scale becomes the
gains), so a `ScaledInc` does both at once: ``Y += scale * (what the inner
operator computes)``.
"""

import copy

import numpy as np
from nengo.builder.operator import Operator
from nengo.builder.signal import Signal
from nengo.exceptions import BuildError

from nengodl.ops.basic import align
from nengodl.ops.registry import OpBuilder, find_builder, register


class ScaledInc(Operator):
    """``Y += scale * f(inputs)``, where ``inner`` would compute ``T += f(inputs)``.

    Parameters
    ----------
    inner : Operator
        An operator that increments one signal by a linear function of its
        reads (`nengo.builder.transforms.ConvInc`,
        `nengo.builder.operator.SparseDotInc`). Only its kind and constants are
        used: its signals are this operator's reads (all but the last).
    scale : Signal
        A constant that broadcasts to ``Y``'s shape.
    Y : Signal
        The incremented signal.
    tag : str, optional
        A label.
    """

    def __init__(self, inner, scale, Y, tag=None):
        super().__init__(tag=tag)
        self.inner = inner
        self.sets, self.incs, self.updates = [], [Y], []
        self.reads = list(inner.reads) + [scale]

    @property
    def scale(self):
        """The constant factor."""
        return self.reads[-1]

    @property
    def Y(self):
        """The incremented signal."""
        return self.incs[0]

    def inner_with(self, target):
        """The inner operator on this operator's current signals, incrementing
        ``target``."""
        inner = copy.copy(self.inner)
        inner.sets, inner.incs, inner.updates = [], [target], []
        inner.reads = list(self.reads[:-1])
        return inner

    def make_step(self, signals, dt, rng):
        """nengo's step function (used by the numpy stepper)."""
        inner = self.inner_with(Signal(np.zeros(self.Y.shape), name=f"{self}.unscaled"))
        signals.init(inner.Y)
        step_inner = inner.make_step(signals, dt, rng)
        unscaled, y, scale = signals[inner.Y], signals[self.Y], signals[self.scale]

        def step_scaledinc():
            unscaled[...] = 0
            step_inner()
            y[...] += scale * unscaled

        return step_scaledinc


class ScaledContext:
    """A step context through which an inner builder's increment of ``Y`` is
    scaled first; everything else passes through to ``ctx``."""

    def __init__(self, ctx, op):
        self._ctx = ctx
        self._op = op

    def write(self, sig, value, inc=False, index=None):
        """``Y += scale * value`` (the only write an inner operator makes)."""
        if sig is not self._op.Y or not inc or index is not None:
            raise BuildError(f"{self._op}: its inner operator may only increment Y")
        self._ctx.inc(sig, value * align(self._ctx, self._op.scale, self._op.Y.ndim))

    def inc(self, sig, value, index=None):
        """See `write`."""
        self.write(sig, value, inc=True, index=index)

    def set(self, sig, value, index=None):
        """See `write` (refused)."""
        self.write(sig, value, inc=False, index=index)

    def __getattr__(self, name):
        return getattr(self._ctx, name)


@register(ScaledInc)
class ScaledIncBuilder(OpBuilder):
    """Runs the inner operator's builder, its increment scaled."""

    def __init__(self, op, dt):
        super().__init__(op, dt)
        inner = op.inner_with(op.Y)
        self.inner = find_builder(inner)(inner, dt)

    @classmethod
    def supports(cls, op):
        return find_builder(op.inner) is not None

    def __call__(self, ctx):
        self.inner(ScaledContext(ctx, self.op))
