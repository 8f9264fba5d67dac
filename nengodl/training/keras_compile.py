"""What `Simulator.compile` was given, resolved per probe.

`CompiledSettings` holds the optimizer, losses, metrics and loss weights and
turns them, for the probes a minibatch has targets for, into the objective
(probe -> weighted loss) and metrics that the epoch loop runs, and the logs
that name them as Keras does.
"""

from collections.abc import Mapping

import keras
import numpy as np
from nengo.exceptions import ValidationError

from nengodl import objectives as obj
from nengodl.runtime.weak import WeakSimulator
from nengodl.training.keras_data import object_name, resolve_keys
from nengodl.training.loop import EpochLogs
from nengodl.training.sample_weights import split


class _SeedObjective:
    """A `nengodl.obj` objective (``f(outputs, targets)``) as a Keras loss
    (``f(y_true, y_pred)``), so that ``compile(loss=nengodl.obj.mse)`` ignores NaN
    targets as `Simulator.train` does."""

    def __init__(self, objective):
        self.objective = objective
        self.needs_targets = getattr(objective, "needs_targets", True)
        self.__name__ = getattr(objective, "__name__", type(objective).__name__)

    def __call__(self, y_true, y_pred):
        return self.objective(y_pred, y_true)


def as_loss(loss):
    """``loss`` (a Keras loss, its name, a `nengodl.obj` objective or a function)
    as a Keras-convention loss ``f(y_true, y_pred)``."""
    if isinstance(loss, (str, keras.losses.Loss)):
        return keras.losses.get(loss) if isinstance(loss, str) else loss
    if loss is obj.mse or isinstance(loss, obj.Regularize):
        return _SeedObjective(loss)
    if callable(loss):
        return loss
    raise ValidationError(
        f"loss must be a Keras loss, its name, or a function (got {loss!r})", attr="loss"
    )


class CompiledSettings:
    """The arguments of `Simulator.compile`, resolved per probe.

    Parameters
    ----------
    sim : Simulator
        The simulator (for its probes and their names).
    optimizer : keras.optimizers.Optimizer or None
        The optimizer (checked by the caller).
    loss, metrics, loss_weights, weighted_metrics
        As given to `Simulator.compile`: one entry for every probe, a dict keyed
        by Probes or their names, or a list in the order of ``sim.model.probes``
        (a list of metrics is several metrics for every probe, as in Keras).
    """

    sim = WeakSimulator()  # the simulator owns this: no reference cycle back

    def __init__(
        self,
        sim,
        optimizer=None,
        loss=None,
        metrics=None,
        loss_weights=None,
        weighted_metrics=None,
    ):
        self.sim = sim
        self.optimizer = optimizer
        self.settings = dict(
            loss=loss,
            metrics=metrics,
            loss_weights=loss_weights,
            weighted_metrics=weighted_metrics,
        )
        self._objectives = {}  # one objective (one traced step) per probes and weighting

    def setting_map(self, name):
        """The compiled ``name`` setting (loss, loss_weights or metrics) as a dict
        from Probe to its entry, or None where one entry is for every probe.

        A dict is keyed by Probes or their names; a list or tuple of losses or
        loss weights has one entry per probe of ``sim.model.probes``, in order
        (NengoDL 3; a list of metrics is several metrics for every probe, as in
        Keras).
        """
        setting = self.settings[name]
        if isinstance(setting, Mapping):
            return resolve_keys(self.sim, setting, "output", as_array=False)
        if name not in ("metrics", "weighted_metrics") and isinstance(setting, (list, tuple)):
            probes = self.sim.model.probes
            if len(setting) != len(probes):
                raise ValidationError(
                    f"a list for {name} needs one entry per Probe of sim.model.probes "
                    f"({len(probes)}; got {len(setting)}); or give a dict {{Probe: entry}}",
                    attr=name,
                )
            return {p: s for p, s in zip(probes, setting) if s is not None}
        return None

    def per_probe(self, name, probes):
        """Map each of ``probes`` to its entry of the compiled ``name`` setting."""
        setting = self.settings[name]
        if setting is None:
            return {p: None for p in probes}
        resolved = self.setting_map(name)
        if resolved is None:
            return {p: setting for p in probes}
        missing = [p for p in probes if p not in resolved]
        if missing:
            raise ValidationError(
                f"{name} has no entry for {', '.join(map(str, missing))}", attr=name
            )
        return {p: resolved[p] for p in probes}

    def loss_probes(self, targets):
        """The probes that get a loss: those with targets in ``y``, and those
        whose loss needs none (``needs_targets = False``, such as
        `nengodl.losses.Regularize`): its probe in a loss dict, or every probe
        when it is the one loss for all. A probe in a loss dict whose loss needs
        targets but has none is refused."""
        loss = self.settings["loss"]
        by_probe = self.setting_map("loss")
        probes = list(targets)
        if by_probe is not None:
            for p, fn in by_probe.items():
                if p in targets:
                    continue
                if getattr(as_loss(fn), "needs_targets", True):
                    raise ValidationError(
                        f"{p} has a loss ({getattr(fn, '__name__', fn)!r}) but no target in "
                        "y; give its targets, or leave it out of compile(loss=...) (only "
                        "losses that need no targets, such as nengodl.losses.Regularize, "
                        "can go without)",
                        attr="y",
                    )
                probes.append(p)
        elif loss is not None and not getattr(as_loss(loss), "needs_targets", True):
            probes += [p for p in self.sim.model.probes if p not in targets]
        if not probes:
            raise ValidationError(
                "no Probe has targets in y for its loss (only losses that need no "
                "targets, such as nengodl.losses.Regularize, can go without)",
                attr="y",
            )
        return probes

    def objective(self, targets, weighted=frozenset()):
        """Probe -> ``f(output, target)``: the probe's loss, averaged over all
        its values (Keras's ``sum_over_batch_size``) and times its loss weight
        (the function's ``loss_weight``); the total loss is their sum. A probe
        weighted 0 adds nothing to the total and is left out (its loss is not
        logged). Probes in ``weighted`` have targets carrying sample weights
        (`nengodl.training.sample_weights`), given to the Keras loss."""
        probes = self.loss_probes(targets)
        key = (tuple(probes), frozenset(weighted))
        if key not in self._objectives:
            self._objectives[key] = self._make_objective(probes, weighted)
        return self._objectives[key]

    def _make_objective(self, probes, weighted):
        losses = self.per_probe("loss", probes)
        weights = self.per_probe("loss_weights", probes)
        objective = {}
        for p in probes:
            fn = as_loss(losses[p])
            w = 1.0 if weights[p] is None else _loss_weight(weights[p], p)
            if w == 0:
                continue

            def weighted_loss(out, tgt, fn=fn, w=w):
                return w * keras.ops.mean(fn(tgt, out))

            if p in weighted:
                weighted_loss = _with_sample_weights(fn, w, p)
            weighted_loss.loss_weight = w
            objective[p] = weighted_loss
        if not objective:
            raise ValidationError(
                "every Probe with a loss has loss weight 0: nothing to minimise",
                attr="loss_weights",
            )
        return objective

    def metrics(self, targets, weighted=frozenset()):
        """Probe -> list of its Keras metrics, then its `WeightedMetric` s, for the
        probes with targets (``targets``: probe -> array; those in ``weighted``
        carry sample weights) and any metrics. A name becomes the metric Keras 3
        resolves it to, logged under that name; ``"accuracy"`` / ``"acc"`` is
        binary, sparse categorical or categorical accuracy by the shapes of the
        probe's output and targets, as in Keras 3."""
        probes = list(targets)
        out = {}
        plain = self.per_probe("metrics", probes)
        weighted_ms = self.per_probe("weighted_metrics", probes)
        for p in probes:
            out_size = int(np.prod(self.sim.model.sig[p]["in"].shape))
            target_size = targets[p].shape[-1] - (p in weighted)

            def get(m, out_size=out_size, target_size=target_size):
                return _named_metric(m, target_size, out_size) if isinstance(m, str) else m

            ms = [get(m) for m in _as_list(plain[p])]
            names = {_metric_name(m) for m in ms}
            for m in _as_list(weighted_ms[p]):
                m = get(m)
                if not isinstance(m, keras.metrics.Metric):
                    m = keras.metrics.MeanMetricWrapper(m, name=_metric_name(m))
                name = _metric_name(m)
                ms.append(WeightedMetric(m, f"weighted_{name}" if name in names else name))
            if ms:
                out[p] = ms
        return out

    def metric_fn(self, metrics, prefix="", weighted=frozenset()):
        """``fn(outputs, targets) -> {name: value}`` of one minibatch's metrics
        (Keras `Metric` objects are reset now and updated in place), or None.
        Only `WeightedMetric` s see the sample weights that the targets of probes
        in ``weighted`` carry; other metrics get the targets without them."""
        if not metrics:
            return None
        for ms in metrics.values():
            for m in ms:
                m = m.metric if isinstance(m, WeightedMetric) else m
                if isinstance(m, keras.metrics.Metric):
                    m.reset_state()
        by_index = {p: k for k, p in enumerate(self.sim.plan.probes)}

        def fn(outputs, targets):
            logs = {}
            for p, ms in metrics.items():
                for m in ms:
                    name = f"{prefix}{object_name(self.sim, p)}_{_metric_name(m)}"
                    y_pred = outputs[by_index[p]]
                    y_true, sample_weight = (
                        split(targets[p]) if p in weighted else (targets[p], None)
                    )
                    y_true = y_true.astype(y_pred.dtype)
                    if isinstance(m, WeightedMetric):
                        m.metric.update_state(y_true, y_pred, sample_weight=sample_weight)
                        logs[name] = m.metric
                    elif isinstance(m, keras.metrics.Metric):
                        m.update_state(y_true, y_pred)
                        logs[name] = m
                    else:
                        logs[name] = float(keras.ops.mean(m(y_true, y_pred)))
            return logs

        return fn

    def logs(self, objective, metrics, prefix="", weighted=frozenset()):
        """`EpochLogs` for one pass with ``objective`` and ``metrics``."""
        names = [object_name(self.sim, p) for p in objective]
        weights = [fn.loss_weight for fn in objective.values()]
        metric_fn = self.metric_fn(metrics, prefix, weighted)
        return EpochLogs(names, metric_fn, prefix, weights=weights)


class WeightedMetric:
    """A metric of ``compile(weighted_metrics=...)``: a Keras metric that sees the
    sample weights, logged as ``name`` (``weighted_<name>`` where a metric of
    ``metrics`` has that name, as in Keras 3).

    Parameters
    ----------
    metric : keras.metrics.Metric
        The metric.
    name : str
        Its name in the logs (after the probe's).
    """

    def __init__(self, metric, name):
        self.metric, self.name = metric, name


def _as_list(entry):
    if entry is None:
        return []
    return list(entry) if isinstance(entry, (list, tuple)) else [entry]


def _metric_name(m):
    return getattr(m, "name", getattr(m, "__name__", "metric"))


def _with_sample_weights(fn, w, probe):
    """``f(output, target)``: Keras loss ``fn`` with the sample weights that the
    target carries, times the loss weight ``w`` (Keras's weighting: the weighted
    values' sum over their count)."""
    if isinstance(fn, _SeedObjective) or not getattr(fn, "needs_targets", True):
        raise ValidationError(
            f"the loss of {probe} ({fn.__name__}) takes no sample weights: give a Keras "
            "loss (or a function f(y_true, y_pred) of per-item values)",
            attr="sample_weight",
        )

    def weighted_loss(out, tgt):
        y, sample_weight = split(tgt)
        if isinstance(fn, keras.losses.Loss):
            return w * fn(y, out, sample_weight=sample_weight)
        values = fn(y, out)  # a Keras loss function: per item and step
        if len(values.shape) == 3 and values.shape[-1] == 1:
            values = values[..., 0]
        if len(values.shape) != 2:
            raise ValidationError(
                f"the loss of {probe} ({fn.__name__}) gives values of shape "
                f"{tuple(values.shape)}: sample weights need one per item and step",
                attr="sample_weight",
            )
        weighted = values * keras.ops.cast(sample_weight, values.dtype)
        return w * keras.ops.sum(weighted) / keras.ops.cast(keras.ops.size(values), values.dtype)

    return weighted_loss


def _named_metric(name, target_size, output_size):
    """The metric Keras 3 resolves ``name`` to (a `keras.metrics.Metric`, or a
    function), named ``name``, for targets and outputs of these last-axis sizes."""
    if name.lower() in ("accuracy", "acc"):
        if output_size == 1:
            return keras.metrics.BinaryAccuracy(name=name)
        if target_size == 1:
            return keras.metrics.SparseCategoricalAccuracy(name=name)
        return keras.metrics.CategoricalAccuracy(name=name)
    fn = keras.metrics.get(name)
    if isinstance(fn, keras.metrics.Metric):
        return type(fn).from_config({**fn.get_config(), "name": name})

    def metric(y_true, y_pred):
        return fn(y_true, y_pred)

    metric.__name__ = name
    return metric


def _loss_weight(value, probe):
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValidationError(
            f"the loss weight of {probe} must be a number (got {value!r})", attr="loss_weights"
        ) from None
