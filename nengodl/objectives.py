"""Objective functions for `Simulator.train` and `Simulator.loss` (``nengodl.obj``).

An objective is a callable ``f(outputs, targets)`` returning a scalar tensor,
where ``outputs`` is a probe's data, shape ``(minibatch_size, n_steps) + shape``,
and ``targets`` the matching target values (or None for objectives that need
none, such as `Regularize`).
"""

import tensorflow as tf


def mse(outputs, targets):
    """Mean squared error; target values that are NaN are ignored.

    Parameters
    ----------
    outputs : tf.Tensor
        A probe's output, ``(minibatch_size, n_steps) + shape``.
    targets : tf.Tensor or array_like
        Target values of the same shape; NaN marks values that do not count.

    Returns
    -------
    tf.Tensor
        Scalar: the mean of the squared errors over the values that count.

    Examples
    --------
    >>> import numpy as np, tensorflow as tf, nengodl
    >>> float(nengodl.obj.mse(tf.constant([[1.0, 2.0]]), tf.constant([[0.0, np.nan]])))
    1.0
    """
    targets = tf.cast(targets, outputs.dtype)
    valid = tf.logical_not(tf.math.is_nan(targets))
    err = tf.where(valid, outputs - tf.where(valid, targets, 0), 0)
    count = tf.maximum(tf.reduce_sum(tf.cast(valid, outputs.dtype)), 1)
    return tf.reduce_sum(tf.square(err)) / count


class Regularize:
    """Penalise a probe's activity (e.g. firing rates) towards a target value.

    The penalty is the mean over all elements of ``|outputs - target| ** order``;
    with ``axis`` set, the ``order``-norm is taken along that axis first and
    then averaged. Targets in the data are not needed (and are ignored).

    Parameters
    ----------
    order : int or float
        Order of the penalty (1: absolute, 2: squared).
    axis : int, optional
        Axis of the norm, e.g. -1 for the neurons of one step.
    target : float
        Value the activity is pushed towards.
    weight : float
        Scale of the penalty.

    Returns
    -------
    callable
        An objective ``f(outputs, targets=None)`` returning a scalar tensor.

    Examples
    --------
    >>> import tensorflow as tf, nengodl
    >>> float(nengodl.obj.Regularize(target=1.0)(tf.constant([[3.0, 1.0]]), None))
    2.0
    """

    needs_targets = False

    def __init__(self, order=2, axis=None, target=0.0, weight=1.0):
        self.order = order
        self.axis = axis
        self.target = target
        self.weight = weight

    def __call__(self, outputs, targets=None):
        x = outputs - self.target
        if self.axis is None:
            penalty = tf.reduce_mean(tf.abs(x) ** self.order)
        else:
            penalty = tf.reduce_mean(tf.norm(x, ord=self.order, axis=self.axis))
        return self.weight * penalty

    def __repr__(self):
        return (
            f"Regularize(order={self.order}, axis={self.axis}, "
            f"target={self.target}, weight={self.weight})"
        )
