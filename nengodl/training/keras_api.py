"""NengoDL 3's Keras-style API: `compile`, `fit`, `evaluate`, `predict`.

Inputs (``x``) and targets (``y``) are dicts keyed by input Nodes and Probes (or
their labels), or plain arrays when the model has a single input / output, each
shaped ``(batch_size, n_steps, size)``. Losses follow Keras' ``f(y_true, y_pred)``
convention; Keras callbacks see a small stand-in model (`SimulatorModel`).
"""

from collections.abc import Mapping

import keras
import numpy as np
from nengo.exceptions import ValidationError

from nengodl.io.checks import check_count
from nengodl.runtime.distributed import optimizer_variables
from nengodl.training.data import TrainingData
from nengodl.training.keras_model import SimulatorModel
from nengodl.training.loop import (
    EpochIterator,
    EpochLogs,
    evaluate_batches,
    fit_epochs,
    predict_batches,
)
from nengodl.training.trainer import check_optimizer


def probe_name(sim, probe):
    """Name of a probe in logs: its label, or ``probe_<index>``."""
    if probe.label:
        return probe.label
    return f"probe_{sim.model.probes.index(probe)}"


def _resolve_keys(sim, value, kind, as_array=True):
    """Map Node/Probe objects to arrays from ``x``/``y`` (dicts or single arrays)."""
    if kind == "input":
        candidates = list(sim.plan.node_keys)
        what = "input Node"
    else:
        candidates = list(sim.model.probes)
        what = "Probe"
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        used = candidates
        if len(used) != 1:
            raise ValidationError(
                f"a plain array for {'x' if kind == 'input' else 'y'} needs a model with "
                f"exactly one {what} (this one has {len(used)}); pass a dict",
                attr="x" if kind == "input" else "y",
            )
        return {used[0]: np.asarray(value)}
    out = {}
    for key, arr in value.items():
        if isinstance(key, str):
            matches = [c for c in candidates if c.label == key]
            if kind == "output":
                matches += [c for c in candidates if probe_name(sim, c) == key]
            if not matches:
                raise ValidationError(
                    f"no {what} named '{key}' in the model", attr="x" if kind == "input" else "y"
                )
            key = matches[0]
        out[key] = np.asarray(arr) if as_array else arr
    return out


def _as_loss(loss):
    if isinstance(loss, (str, keras.losses.Loss)):
        return keras.losses.get(loss) if isinstance(loss, str) else loss
    if callable(loss):
        return loss
    raise ValidationError(
        f"loss must be a Keras loss, its name, or a function (got {loss!r})", attr="loss"
    )


class KerasAPI:
    """Implements the Keras-style methods of a `Simulator`.

    Parameters
    ----------
    sim : Simulator
        The simulator.
    """

    def __init__(self, sim):
        self.sim = sim
        self.compiled = None
        self.model = SimulatorModel(sim)

    def compile(self, optimizer=None, loss=None, metrics=None, loss_weights=None):
        """See `Simulator.compile`."""
        if optimizer is not None:
            if isinstance(optimizer, str):
                optimizer = keras.optimizers.get(optimizer)
            check_optimizer(optimizer)
        self.compiled = dict(
            optimizer=optimizer, loss=loss, metrics=metrics, loss_weights=loss_weights
        )
        self.model.optimizer = optimizer

    def _check_compiled(self, method, need_loss=True):
        if self.compiled is None or (need_loss and self.compiled["loss"] is None):
            raise ValidationError(
                f"call sim.compile(optimizer=..., loss=...) before sim.{method}",
                attr="compile",
            )

    def _per_probe(self, setting, probes, name):
        """Map each target probe to its entry of a per-output ``setting``."""
        if setting is None:
            return {p: None for p in probes}
        if isinstance(setting, Mapping):
            resolved = _resolve_keys(self.sim, setting, "output", as_array=False)
            missing = [p for p in probes if p not in resolved]
            if missing:
                raise ValidationError(
                    f"{name} has no entry for {', '.join(map(str, missing))}", attr=name
                )
            return {p: resolved[p] for p in probes}
        return {p: setting for p in probes}

    def _loss_probes(self, targets):
        """The probes that get a loss: those with targets in ``y``, and those
        whose loss needs none (``needs_targets = False``, such as
        `nengodl.losses.Regularize`): its probe in a loss dict, or every probe
        when it is the one loss for all. A probe in a loss dict whose loss needs
        targets but has none is refused."""
        loss = self.compiled["loss"]
        probes = list(targets)
        if isinstance(loss, Mapping):
            for p, fn in _resolve_keys(self.sim, loss, "output", as_array=False).items():
                if p in targets:
                    continue
                if getattr(_as_loss(fn), "needs_targets", True):
                    raise ValidationError(
                        f"{p} has a loss ({getattr(fn, '__name__', fn)!r}) but no target in "
                        "y; give its targets, or leave it out of compile(loss=...) (only "
                        "losses that need no targets, such as nengodl.losses.Regularize, "
                        "can go without)",
                        attr="y",
                    )
                probes.append(p)
        elif loss is not None and not getattr(_as_loss(loss), "needs_targets", True):
            probes += [p for p in self.sim.model.probes if p not in targets]
        if not probes:
            raise ValidationError(
                "no Probe has targets in y for its loss (only losses that need no "
                "targets, such as nengodl.losses.Regularize, can go without)",
                attr="y",
            )
        return probes

    def _objective(self, targets):
        probes = self._loss_probes(targets)
        losses = self._per_probe(self.compiled["loss"], probes, "loss")
        weights = self._per_probe(self.compiled["loss_weights"], probes, "loss_weights")
        objective = {}
        for p in probes:
            fn = _as_loss(losses[p])
            w = 1.0 if weights[p] is None else float(weights[p])
            objective[p] = lambda out, tgt, fn=fn, w=w: w * keras.ops.mean(fn(tgt, out))
        return objective

    def _metrics(self, probes):
        metrics = self._per_probe(self.compiled["metrics"], probes, "metrics")
        out = {}
        for p, ms in metrics.items():
            if ms is None:
                continue
            ms = ms if isinstance(ms, (list, tuple)) else [ms]
            out[p] = [keras.metrics.get(m) if isinstance(m, str) else m for m in ms]
        return out

    def _data(self, x, y, n_steps):
        inputs = _resolve_keys(self.sim, x, "input")
        # a target of None: none given (a loss that needs none, e.g. Regularize)
        targets = _resolve_keys(self.sim, y, "output", as_array=False)
        targets = {p: np.asarray(v) for p, v in targets.items() if v is not None}
        data = {**inputs, **targets}
        if not data and n_steps is not None:
            # no inputs or targets: one minibatch of n_steps with the nodes' own output
            return TrainingDataNoInputs(
                self.sim.plan.minibatch_size, n_steps, self.sim.plan.minibatch_size
            )
        if not data:
            raise ValidationError(
                "Give input data `x` (a dict from input Nodes to arrays, or one array "
                "for a network with one input Node), or `n_steps` to run the Nodes' "
                "own output",
                attr="x",
            )
        return TrainingData(self.sim, data, any_target_size=True)

    def _metric_fn(self, metrics, prefix=""):
        """``fn(outputs, targets) -> {name: value}`` of one minibatch's metrics
        (Keras `Metric` objects are reset now and updated in place), or None."""
        if not metrics:
            return None
        for ms in metrics.values():
            for m in ms:
                if isinstance(m, keras.metrics.Metric):
                    m.reset_state()
        by_index = {p: k for k, p in enumerate(self.sim.plan.probes)}

        def fn(outputs, targets):
            logs = {}
            for p, ms in metrics.items():
                for m in ms:
                    metric = getattr(m, "name", getattr(m, "__name__", "metric"))
                    name = f"{prefix}{probe_name(self.sim, p)}_{metric}"
                    y_pred = outputs[by_index[p]]
                    y_true = targets[p].astype(y_pred.dtype.as_numpy_dtype)
                    if isinstance(m, keras.metrics.Metric):
                        m.update_state(y_true, y_pred)
                        logs[name] = m
                    else:
                        logs[name] = float(keras.ops.mean(m(y_true, y_pred)))
            return logs

        return fn

    def _logs(self, objective, metrics, prefix=""):
        """`EpochLogs` for one pass with ``objective`` and ``metrics``."""
        names = [probe_name(self.sim, p) for p in objective]
        return EpochLogs(names, self._metric_fn(metrics, prefix), prefix)

    def _run_eval(self, tdata, seed, prefix="", progress=False, callbacks=None):
        objective = self._objective(tdata.targets)
        metrics = self._metrics(list(tdata.targets))
        step = self.sim.trainer.eval_step(objective)
        if callbacks is not None:
            step = _with_batch_hooks(step, callbacks, "test")
        logs = evaluate_batches(
            step, EpochIterator(tdata, seed=seed), self._logs(objective, metrics, prefix), progress
        )
        return logs.result()

    def _callbacks(self, callbacks, verbose, epochs, steps):
        return keras.callbacks.CallbackList(
            callbacks,
            add_history=True,
            model=self.model,
            epochs=epochs,
            steps=steps,
            verbose=verbose,
        )

    def fit(
        self,
        x=None,
        y=None,
        epochs=1,
        validation_data=None,
        callbacks=None,
        shuffle=True,
        initial_epoch=0,
        n_steps=None,
        stateful=False,
        verbose=1,
        seed=None,
        batch_size=None,
    ):
        """See `Simulator.fit`."""
        self._check_compiled("fit")
        epochs = check_count(epochs, "epochs")
        initial_epoch = check_count(initial_epoch, "initial_epoch")
        if self.compiled["optimizer"] is None:
            raise ValidationError(
                "compile() was given no optimizer; fit needs one", attr="optimizer"
            )
        if stateful:
            raise ValidationError(
                "stateful=True is not supported: each minibatch starts from the initial state",
                attr="stateful",
            )
        tdata = self._data(x, y, n_steps)
        objective = self._objective(tdata.targets)
        metrics = self._metrics(list(tdata.targets))
        trainer = self.sim.trainer
        optimizer = self.compiled["optimizer"]
        step = trainer.train_step(optimizer, objective)
        val = None
        if validation_data is not None:
            vx, vy = validation_data[:2]
            val = self._data(vx, vy, n_steps)
        self.model.stop_training = False
        cbs = self._callbacks(callbacks, verbose, epochs, tdata.n_batches)
        batches = EpochIterator(tdata, shuffle, seed)
        cbs.on_train_begin()
        initial_epoch = self._resume(initial_epoch, batches)
        # the compiled whole-epoch call where nothing needs each minibatch as it ends
        epoch_fn = None
        if not callbacks and not metrics:
            epoch_fn = trainer.epoch_function(optimizer, objective, tdata)
        logs = fit_epochs(
            step,
            batches,
            epochs,
            lambda: self._logs(objective, metrics),
            initial_epoch=initial_epoch,
            callbacks=cbs,
            validate=None if val is None else lambda: self._run_eval(val, seed, prefix="val_"),
            epoch_fn=epoch_fn,
            progress=verbose and self.sim.progress_bar,
            should_stop=lambda: self.model.stop_training,
        )
        cbs.on_train_end(logs)
        return self.model.history

    def _resume(self, initial_epoch, batches):
        """First epoch of `fit`: ``initial_epoch``, or the one a callback restored.

        After a restore (``BackupAndRestore``), the shuffling and seed streams
        skip the completed epochs, so the resumed run continues as the
        interrupted one would have. Under a multi-worker strategy every worker
        continues from the chief's parameters, optimizer state and epoch.
        """
        restored, self.model._initial_epoch = self.model._initial_epoch, None
        start = initial_epoch if restored is None else max(initial_epoch, int(restored))
        dist = self.sim.distributed
        if dist is not None:
            variables = self.model._variables() + optimizer_variables(self.model.optimizer)
            start = dist.sync_from_chief(variables, start)
        batches.skip(start - initial_epoch)
        return start

    def evaluate(
        self, x=None, y=None, n_steps=None, callbacks=None, verbose=1, seed=None, batch_size=None
    ):
        """See `Simulator.evaluate`."""
        self._check_compiled("evaluate")
        tdata = self._data(x, y, n_steps)
        cbs = self._callbacks(callbacks, verbose, 1, tdata.n_batches)
        cbs.on_test_begin()
        logs = self._run_eval(
            tdata, seed, progress=verbose and self.sim.progress_bar, callbacks=cbs
        )
        cbs.on_test_end(logs)
        return logs

    def predict(
        self,
        x=None,
        n_steps=None,
        stateful=False,
        verbose=1,
        seed=None,
        batch_size=None,
        callbacks=None,
    ):
        """See `Simulator.predict`."""
        tdata = self._data(x, None, n_steps)
        cbs = self._callbacks(callbacks, verbose, 1, tdata.n_batches)
        step = self.sim.trainer.predict_step()
        if callbacks:
            step = _with_batch_hooks(step, cbs, "predict")
        cbs.on_predict_begin()
        outputs = predict_batches(
            step, EpochIterator(tdata, seed=seed), verbose and self.sim.progress_bar
        )
        cbs.on_predict_end()
        return dict(zip(self.sim.plan.probes, outputs))


def _with_batch_hooks(step, callbacks, kind):
    """``step`` telling ``callbacks`` of each minibatch (``kind``: "test" or "predict")."""
    count = [0]
    begin = getattr(callbacks, f"on_{kind}_batch_begin")
    end = getattr(callbacks, f"on_{kind}_batch_end")

    def hooked(*args):
        begin(count[0])
        result = step(*args)
        losses = result[0] if kind == "test" else None
        end(count[0], {} if losses is None else {"loss": float(np.sum(losses))})
        count[0] += 1
        return result

    return hooked


class TrainingDataNoInputs:
    """Batches for runs with no input data (only a number of steps)."""

    def __init__(self, batch_size, n_steps, minibatch_size):
        if batch_size % minibatch_size:
            raise ValidationError(
                f"batch size {batch_size} is not a multiple of minibatch_size ({minibatch_size})",
                attr="x",
            )
        self.batch_size, self.n_steps = batch_size, int(n_steps)
        self.minibatch_size = minibatch_size
        self.n_batches = batch_size // minibatch_size
        self.inputs, self.targets = {}, {}

    def batches(self, rng=None):
        for _ in range(self.n_batches):
            yield {}, {}
