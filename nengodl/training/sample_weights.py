"""Keras's ``sample_weight`` and ``class_weight`` for `fit` and `evaluate`.

Each weighted probe's weights (one per item, or per item and target step) travel
with its targets as one more channel on their last axis, so that shuffling,
minibatching, the compiled epoch and distribution treat them as the targets
they belong to; `split` takes them off again where the loss and the metrics
read the targets.
"""

from collections.abc import Mapping

import numpy as np
from nengo.exceptions import ValidationError

from nengodl.training.keras_data import resolve_keys


def split(target):
    """``(target, weights)`` of a target that carries its weights (`attach`)."""
    return target[..., :-1], target[..., -1]


def class_weights(targets, class_weight):
    """Keras's ``class_weight``: the weight of each target step's class.

    Parameters
    ----------
    targets : ndarray
        ``(batch, n_steps, size)``: class indices (size 1) or one-hot (or
        scores) whose largest entry is the class.
    class_weight : dict
        Class index -> weight; classes not in it weigh 1 (as in Keras).

    Returns
    -------
    ndarray
        ``(batch, n_steps)`` weights.
    """
    if not isinstance(class_weight, Mapping):
        raise ValidationError(
            f"Must be a dict from class index to weight (got {type(class_weight).__name__})",
            attr="class_weight",
        )
    if targets.shape[-1] == 1:
        classes = np.round(targets[..., 0]).astype(np.int64)
    else:
        classes = np.argmax(targets, axis=-1)
    table = {int(k): float(v) for k, v in class_weight.items()}
    return np.vectorize(lambda c: table.get(int(c), 1.0), otypes=[np.float64])(classes)


def item_weights(sim, tdata, probes, sample_weight=None, class_weight=None):
    """Each weighted probe's weights, ``(batch,)`` or ``(batch, target steps)``.

    Parameters
    ----------
    sim : Simulator
        The simulator (for probe names).
    tdata : TrainingData
        The data (already cut to whole minibatches: the weights are cut alike).
    probes : list of nengo.Probe
        The probes with a loss.
    sample_weight : array or dict, optional
        One array for every probe with a loss, or a dict keyed by Probe (or its
        name).
    class_weight : dict, optional
        Keras's ``class_weight``, for a model with one probe with targets.

    Returns
    -------
    dict
        Probe -> weights (float64).
    """
    weights = {}
    if sample_weight is not None and class_weight is not None:
        raise ValidationError(
            "give class_weight or sample_weight, not both (as in Keras 3)", attr="class_weight"
        )
    if sample_weight is not None and not isinstance(sample_weight, Mapping):
        sample_weight = {p: sample_weight for p in probes if p in tdata.targets}
        if not sample_weight:
            raise ValidationError(
                "sample_weight weighs targets, and no probe with a loss has targets here",
                attr="sample_weight",
            )
    if sample_weight is not None:
        given = resolve_keys(sim, sample_weight, "output")
        for p, w in given.items():
            if w is None:
                continue
            if p not in tdata.targets:
                raise ValidationError(
                    f"{p} has sample weights but no targets to weigh", attr="sample_weight"
                )
            weights[p] = _checked(np.asarray(w), p, tdata)
    if class_weight is not None:
        targeted = [p for p in probes if p in tdata.targets]
        if len(targeted) != 1:
            raise ValidationError(
                f"class_weight is for a model with one probe with targets (this data has "
                f"{len(targeted)}); give sample_weight per probe instead",
                attr="class_weight",
            )
        (p,) = targeted
        from_classes = class_weights(tdata.targets[p], class_weight)
        weights[p] = from_classes
    for p in weights:
        if p not in probes:
            raise ValidationError(f"{p} has weights but no loss", attr="sample_weight")
    return weights


def _checked(w, probe, tdata, attr="sample_weight"):
    given, n = tdata.given_batch_size, tdata.batch_size
    steps = tdata.targets[probe].shape[1]
    if w.dtype.kind not in "biuf" or not np.all(np.isfinite(w)):
        raise ValidationError(f"the weights for {probe} must be finite numbers", attr=attr)
    if w.shape not in ((given,), (given, steps)):
        raise ValidationError(
            f"the weights for {probe} have shape {w.shape}; expected ({given},) or "
            f"({given}, {steps}): one per item (and target step) of the data",
            attr=attr,
        )
    # the data keeps its first whole minibatches (see `TrainingData`): so do the weights
    return w[:n].astype(np.float64)


def attach(tdata, weights):
    """Put each probe's weights on its targets (one more last-axis channel), and
    name the probes in ``tdata.weighted``."""
    for p, w in weights.items():
        target = tdata.targets[p].astype(np.result_type(tdata.targets[p], np.float32))
        if w.ndim == 1:
            w = np.broadcast_to(w[:, None], target.shape[:2])
        tdata.targets[p] = np.concatenate([target, w[..., None].astype(target.dtype)], -1)
    tdata.weighted = frozenset(tdata.weighted | set(weights))
    return tdata
