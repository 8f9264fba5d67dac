"""Simplifications of a built model's operators, ahead of any merging.

nengo's builder makes every connection add its result into a signal of its
own (reset to zero each step), which a `Copy` then adds to its target, and it
multiplies by gains and transforms that are often all ones. Each of those
operators is a step of the dependency chain, so a deep model (a converted
Keras network: a convolution, a batch normalisation and an activation per
layer) gets several steps per layer, and every one of them costs time to plan,
trace and compile. `simplify` removes them, in place, where the result is
exactly the same:

- **zero inputs**: a product or copy that adds something times a signal that
  is always zero (reset to zero and never written otherwise, such as the
  decoded input of an ensemble that is only driven through its neurons) adds
  nothing, and goes, unless it reads a trainable parameter (which stays in
  the model, its gradient and its parameter files);
- **identity products**: ``Y += A * X`` or ``Y += dot(A, X)`` with a constant
  ``A`` of ones (an identity matrix) becomes ``Copy(X, Y, inc=True)``;
- **aliases**: ``Copy(src, dst, inc=True)`` of a whole signal that is reset to
  zero, only added to and read by nothing else, goes with that reset: the
  operators that added to ``src`` add to ``dst`` instead;
- **scaled products**: ``Y += A * X`` with a constant ``A``, where ``X`` is
  reset to zero, filled by one convolution (or sparse product) and read by
  nothing else, becomes one `nengodl.ops.fused.ScaledInc` (a batch
  normalisation joins the convolution before it).

A signal is constant where no operator writes it, training cannot change it
and it is not fed at run time. Rules apply again until none does. Within a
pass, a rule decides only on signals whose recorded writers and readers no
other rule has changed yet (many copies into one signal alias in one pass,
a chain of copies in one pass per link).
"""

import numpy as np
from nengo.builder.operator import BsrDotInc, Copy, DotInc, ElementwiseInc, Reset, SparseDotInc
from nengo.builder.transforms import ConvInc

from nengodl.ops import find_builder
from nengodl.ops.fused import ScaledInc
from nengodl.planner import holds_signals_elsewhere

# operators that add a product of their input ``X`` to ``Y``
LINEAR_INCS = (DotInc, ElementwiseInc, ConvInc, SparseDotInc, BsrDotInc)
# products that a constant scale of their result can join (products that the
# planner merges, such as DotInc, stay apart: merged, they run faster)
FUSABLE = (ConvInc, SparseDotInc)


class Uses:
    """Which operators write and read each base signal."""

    def __init__(self, operators):
        self.writers, self.readers = {}, {}
        for op in operators:
            for sig in op.sets + op.incs + op.updates:
                self.writers.setdefault(sig.base, []).append(op)
            for sig in op.reads:
                self.readers.setdefault(sig.base, []).append(op)


class Simplifier:
    """One pass of the rules over a model's operators (see the module docstring).

    Parameters
    ----------
    operators : list of Operator
        The model's operators.
    keep : set of Signal
        Bases whose values may change outside the operators (trainable
        parameters, fed inputs, the clock).
    """

    def __init__(self, operators, keep):
        self.operators = operators
        self.keep = keep
        self.uses = Uses(operators)
        self.touched = set()  # bases whose recorded uses this pass has made stale
        self.removed = set()
        self.replaced = {}

    def constant(self, sig):
        """Whether ``sig`` keeps its initial value for ever."""
        base = sig.base
        return not sig.sparse and base not in self.keep and base not in self.uses.writers

    def zero(self, sig):
        """Whether ``sig`` is zero whenever an operator reads it."""
        base = sig.base
        if base in self.keep or sig.sparse:
            return False
        writers = self.uses.writers.get(base, ())
        if not writers:
            return not np.any(base.initial_value)
        return all(isinstance(w, Reset) and not np.any(w.value) for w in writers)

    def free(self, *sigs):
        """Whether no rule of this pass has changed the uses of ``sigs`` yet."""
        return not any(s.base in self.touched for s in sigs)

    def touch(self, *sigs):
        """Mark ``sigs`` as changed in this pass (their recorded uses are stale)."""
        self.touched.update(s.base for s in sigs)

    def zero_input(self, op):
        """Remove an increment by a product of (or copy of) zero."""
        if type(op) is Copy:
            if not op.inc:
                return False
            x = op.src
        elif type(op) in LINEAR_INCS:
            x = op.X
        else:
            return False
        written = op.sets + op.incs + op.updates
        if not self.free(x) or not self.zero(x):
            return False
        if any(s.base in self.keep for s in op.reads):
            return False  # a trainable parameter stays in the model (and its files)
        linear = isinstance(op, (DotInc, ElementwiseInc))
        if linear and self.constant(op.A) and not np.all(np.isfinite(op.A.initial_value)):
            return False  # inf * 0 is nan: keep nengo's result
        self.removed.add(op)
        self.touch(*written)
        return True

    def identity(self, op):
        """Turn a product by a constant of ones (an identity) into a copy."""
        if type(op) not in (DotInc, ElementwiseInc) or not self.constant(op.A):
            return False
        A, X, Y = op.A, op.X, op.Y
        if X.shape != Y.shape or X.dtype != Y.dtype:
            return False
        a = np.asarray(A.initial_value)
        if isinstance(op, DotInc) and a.ndim == 2:
            ones = (
                a.shape == (X.size, X.size) and np.array_equal(a, np.eye(X.size)) and X.ndim == 1
            )
        else:
            ones = (
                a.size > 0 and np.all(a == 1) and np.broadcast_shapes(a.shape, X.shape) == X.shape
            )
        if not ones:
            return False
        self.replaced[op] = Copy(X, Y, inc=True, tag=op.tag)
        self.touch(X, Y)
        return True

    def filled(self, sig, reader, target):
        """``(reset, incrementers)`` where ``sig`` is a whole base that is reset
        to zero each step, then only incremented (whole) by the incrementers,
        and read by ``reader`` alone, so that the incrementers can add to
        ``target`` (which none of them reads) instead; else None."""
        if sig.base is not sig or sig in self.keep or not self.free(sig):
            return None
        if self.uses.readers.get(sig, ()) != [reader]:
            return None
        writers = self.uses.writers.get(sig, ())
        resets = [w for w in writers if isinstance(w, Reset)]
        if len(resets) != 1 or np.any(resets[0].value):
            return None
        incs = [w for w in writers if not isinstance(w, Reset)]
        for w in incs:
            if holds_signals_elsewhere(w):
                return None
            if any(s.base in (sig, target.base) for s in w.reads):
                return None
            if any(s.base is sig for s in w.sets + w.updates):
                return None
            if any(s.base is sig and s is not sig for s in w.incs):
                return None
        return resets[0], incs

    def alias(self, op):
        """Let the operators adding to a copy's source add to its target."""
        if type(op) is not Copy or not op.inc or op.src_slice is not None:
            return False
        src, dst = op.src, op.dst
        if op.dst_slice is not None or dst.sparse:
            return False
        if src.shape != dst.shape or src.dtype != dst.dtype:
            return False
        filled = self.filled(src, op, dst)
        if filled is None:
            return False
        reset, incs = filled
        for w in incs:
            w.incs = [dst if s is src else s for s in w.incs]
        self.removed.update((op, reset))
        self.touch(src, dst)
        return True

    def scaled(self, op):
        """Fold ``Y += A * X`` with a constant ``A`` into the one product that
        fills ``X`` (a `ScaledInc`)."""
        if type(op) is not ElementwiseInc or not self.constant(op.A):
            return False
        A, X, Y = op.A, op.X, op.Y
        if X.shape != Y.shape or X.dtype != Y.dtype:
            return False
        if np.broadcast_shapes(A.shape, X.shape) != X.shape:
            return False
        filled = self.filled(X, op, Y)
        if filled is None or len(filled[1]) != 1:
            return False
        reset, (inner,) = filled
        if type(inner) not in FUSABLE or len(inner.incs) != 1 or inner.sets or inner.updates:
            return False
        if find_builder(inner) is None:
            return False
        self.replaced[op] = ScaledInc(inner, A, Y, tag=op.tag)
        self.removed.update((inner, reset))
        self.touch(X, Y)
        return True

    def run(self):
        """Apply every rule once to each operator; returns the new operator
        list, or None if nothing changed."""
        for op in self.operators:
            if op not in self.removed and op not in self.replaced:
                self.zero_input(op) or self.identity(op) or self.alias(op) or self.scaled(op)
        if not self.removed and not self.replaced:
            return None
        return [self.replaced.get(op, op) for op in self.operators if op not in self.removed]


def simplify(model, keep):
    """Simplify ``model``'s operators in place (see the module docstring).

    Parameters
    ----------
    model : nengo.builder.Model
        The built model (not yet merged).
    keep : iterable of Signal
        Signals whose values may change outside the operators: trainable
        parameters, fed inputs, the clock.

    Returns
    -------
    int
        How many operators were removed.
    """
    keep = {s.base for s in keep}
    before = len(model.operators)
    while True:
        operators = Simplifier(model.operators, keep).run()
        if operators is None:
            return before - len(model.operators)
        model.operators[:] = operators
