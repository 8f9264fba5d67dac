"""Keras losses for `Simulator.compile` (``nengodl.losses``), as in NengoDL 3.

Both follow Keras' ``loss(y_true, y_pred)`` convention, where ``y_pred`` is a
probe's output, ``(minibatch_size, n_steps) + shape``. `Regularize` needs no
target: a probe whose loss is a `Regularize` may be left out of ``y`` in
`Simulator.fit` and `Simulator.evaluate` (or given ``None``).
"""

import numbers

import keras
import numpy as np
import tensorflow as tf
from nengo.exceptions import ValidationError

__all__ = ["Regularize", "nan_mse"]


def nan_mse(y_true, y_pred):
    """Mean squared error in which NaN targets count as no error.

    Elements whose target is NaN contribute an error of 0 (and no gradient),
    but are still counted: the sum of squared errors is divided by the number
    of all elements, NaN or not, as in NengoDL 3. (``nengodl.obj.mse``, the
    objective for `Simulator.train`, divides by the number of non-NaN targets
    instead.)

    Parameters
    ----------
    y_true : tf.Tensor or array_like
        Targets; NaN marks values that do not matter. Broadcast against ``y_pred``.
    y_pred : tf.Tensor or array_like
        A probe's output.

    Returns
    -------
    tf.Tensor
        Scalar: ``mean((y_true - y_pred) ** 2)`` with 0 where ``y_true`` is NaN.

    Examples
    --------
    >>> import numpy as np, nengodl
    >>> float(nengodl.losses.nan_mse(np.array([[0.0, np.nan]]), np.array([[2.0, 5.0]])))
    2.0
    """
    y_pred = tf.convert_to_tensor(y_pred)
    if not y_pred.dtype.is_floating:
        y_pred = tf.cast(y_pred, keras.backend.floatx())
    y_true = tf.cast(y_true, y_pred.dtype)
    err = tf.where(tf.math.is_nan(y_true), tf.zeros_like(y_pred), y_true - y_pred)
    return tf.reduce_mean(tf.square(err))


def _check_order(order, obj):
    if isinstance(order, str):
        if order in ("euclidean", "fro"):
            return 2
        raise ValidationError(
            f"must be 'euclidean', 'fro', a positive number or np.inf (got {order!r})",
            attr="order",
            obj=obj,
        )
    if (
        isinstance(order, bool)
        or not isinstance(order, numbers.Real)
        or np.isnan(order)
        or order <= 0
    ):
        raise ValidationError(
            f"must be 'euclidean', 'fro', a positive number or np.inf (got {order!r})",
            attr="order",
            obj=obj,
        )
    return order


def _norm(x, order, axis):
    """``order``-norm of ``x`` along ``axis`` whose gradient is 0 (not NaN) at 0."""
    if order == np.inf:
        return tf.reduce_max(tf.abs(x), axis=axis)
    if order == 1:
        return tf.reduce_sum(tf.abs(x), axis=axis)
    if order == 2:
        total = tf.reduce_sum(tf.square(x), axis=axis)
    else:
        mag = tf.abs(x)
        nonzero = mag > 0
        total = tf.reduce_sum(
            tf.where(nonzero, tf.pow(tf.where(nonzero, mag, 1), order), 0), axis=axis
        )
    nonzero = total > 0
    return tf.where(nonzero, tf.pow(tf.where(nonzero, total, 1), 1 / order), 0)


@keras.saving.register_keras_serializable(package="nengodl")
class Regularize(keras.losses.Loss):
    """A penalty on the norm of a probe's output; the targets are ignored.

    Applied to a probe of a connection's weights (``nengo.Probe(conn,
    "weights")``) it is a weight penalty; applied to a probe of neurons, an
    activity penalty. For each element of the minibatch and each step, the
    ``order``-norm of that step's output is taken (of all of it, flattened,
    when ``axis`` is None; else along ``axis``, counted within one step's
    output, so ``axis=0`` is its first axis); these norms, times ``weight``,
    are then reduced as Keras reduces a loss: by default
    (``"sum_over_batch_size"``) their mean over the minibatch, the steps and
    any remaining axes, which is NengoDL 3's value.

    ``y_true`` is not read, so it may be anything, including None. In
    `Simulator.fit` a probe whose loss is a `Regularize` needs no entry in
    ``y`` (or ``y={probe: None}``). Values are computed in ``y_pred``'s own
    dtype.

    Parameters
    ----------
    order : int or float or str
        Order of the norm: 1, 2 (``"euclidean"`` and ``"fro"`` mean 2), any
        positive number ``p`` for ``sum(|x| ** p) ** (1 / p)``, or ``np.inf``
        (the largest magnitude). The gradient of the norm of an all-zero output
        is taken as 0.
    axis : int, optional
        Axis of one step's output along which the norm is taken (negative
        values count from the end); None (default) takes the norm of the
        whole, flattened output of each step.
    weight : float, optional
        Factor on the norms (None: 1). Not in NengoDL 3, where
        ``compile(loss_weights=...)`` does the same (and still works here).
    reduction : str or None
        Keras reduction of the per-step norms: ``"sum_over_batch_size"``
        (or ``"mean"``; default), ``"sum"``, ``"mean_with_sample_weight"``
        or None / ``"none"`` (the norms themselves).
    name : str
        Name of the loss.

    Examples
    --------
    >>> import numpy as np, nengodl
    >>> x = np.array([[[3.0, 4.0], [0.0, 1.0]]])  # one item, two steps, two values
    >>> float(nengodl.losses.Regularize()(None, x))  # mean of the norms 5 and 1
    3.0
    >>> float(nengodl.losses.Regularize(order=1, weight=0.5)(None, x))
    2.0
    >>> nengodl.losses.Regularize(reduction=None)(None, x).numpy()
    array([[5., 1.]])
    """

    needs_targets = False

    def __init__(
        self, order=2, axis=None, weight=None, reduction="sum_over_batch_size", name="regularize"
    ):
        self._order = _check_order(order, self)
        if axis is not None and (isinstance(axis, bool) or not isinstance(axis, numbers.Integral)):
            raise ValidationError(
                f"must be None or an integer (got {axis!r})", attr="axis", obj=self
            )
        if weight is not None and (
            isinstance(weight, bool)
            or not isinstance(weight, numbers.Real)
            or not np.isfinite(weight)
        ):
            raise ValidationError(
                f"must be None or a finite number (got {weight!r})", attr="weight", obj=self
            )
        try:
            super().__init__(name=name, reduction=reduction)
        except ValueError as e:
            raise ValidationError(str(e), attr="reduction", obj=self) from None
        self.order = order
        self.axis = None if axis is None else int(axis)
        self.weight = weight

    def _axis(self, ndim):
        """The axis of the full ``(batch, steps) + shape`` tensor for ``self.axis``."""
        per_step = ndim - 2
        if not -per_step <= self.axis < per_step:
            raise ValidationError(
                f"axis {self.axis} is out of range for a probe output with "
                f"{per_step} axes per step (shape (batch, n_steps) + {per_step} axes)",
                attr="axis",
                obj=self,
            )
        return self.axis % per_step + 2

    def call(self, y_true, y_pred):
        """The weighted norms of each step's output (before the reduction).

        Parameters
        ----------
        y_true : object
            Ignored.
        y_pred : tf.Tensor
            A probe's output, ``(batch, n_steps) + shape``.

        Returns
        -------
        tf.Tensor
            ``(batch, n_steps)`` when ``axis`` is None, else ``(batch, n_steps)``
            followed by the other axes of one step's output.
        """
        y_pred = tf.convert_to_tensor(y_pred)
        if not y_pred.dtype.is_floating:
            y_pred = tf.cast(y_pred, keras.backend.floatx())
        ndim = y_pred.shape.rank
        if ndim is None or ndim < 3:
            raise ValidationError(
                f"expected a probe output (batch, n_steps, ...) of 3 or more axes "
                f"(got shape {tuple(y_pred.shape)})",
                attr="y_pred",
                obj=self,
            )
        if self.axis is None:
            axis = list(range(2, ndim))
        else:
            axis = self._axis(ndim)
        norms = _norm(y_pred, self._order, axis)
        if self.weight is not None:
            norms = norms * tf.cast(self.weight, norms.dtype)
        return norms

    def __call__(self, y_true, y_pred, sample_weight=None):
        """Compute the loss (``y_true`` is ignored and may be None).

        Parameters
        ----------
        y_true : object
            Ignored.
        y_pred : tf.Tensor or array_like
            A probe's output, ``(batch, n_steps) + shape``.
        sample_weight : tf.Tensor or array_like, optional
            Weights of the norms, broadcast against them as Keras does (e.g.
            ``(batch, n_steps)``, ``(batch, n_steps, 1)`` or ``(batch, 1)`` when
            ``axis`` is None).

        Returns
        -------
        tf.Tensor
            The reduced loss (a scalar), or the norms when ``reduction`` is None.
        """
        values = self.call(None, y_pred)
        if sample_weight is not None:
            sample_weight = tf.cast(sample_weight, values.dtype)
            # as Keras: a trailing axis of 1 that makes the ranks differ is dropped
            if sample_weight.shape.rank == values.shape.rank + 1 and sample_weight.shape[-1] == 1:
                sample_weight = tf.squeeze(sample_weight, -1)
            values = values * sample_weight
        if self.reduction in (None, "none"):
            return values
        total = tf.reduce_sum(values)
        if self.reduction == "sum":
            return total
        if self.reduction == "mean_with_sample_weight" and sample_weight is not None:
            count = tf.reduce_sum(sample_weight)  # as Keras: the weights given, not broadcast
        else:
            count = tf.cast(tf.size(values), values.dtype)
        return tf.math.divide_no_nan(total, count)

    def get_config(self):
        """The arguments, for ``keras.losses.serialize`` / ``deserialize``."""
        return {
            **super().get_config(),
            "order": self.order,
            "axis": self.axis,
            "weight": self.weight,
        }

    def __repr__(self):
        return (
            f"Regularize(order={self.order!r}, axis={self.axis!r}, weight={self.weight!r}, "
            f"reduction={self.reduction!r})"
        )
