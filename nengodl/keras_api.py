"""NengoDL 3's Keras-style API: `compile`, `fit`, `evaluate`, `predict`.

Inputs (``x``) and targets (``y``) are dicts keyed by input Nodes and Probes (or
their labels), or plain arrays when the model has a single input / output, each
shaped ``(batch_size, n_steps, size)``. Losses follow Keras' ``f(y_true, y_pred)``
convention; Keras callbacks see a small stand-in model (`SimulatorModel`).
"""

import shutil
import warnings
from collections.abc import Mapping

import keras
import numpy as np
from nengo.exceptions import ValidationError

from nengodl import params
from nengodl.data import check_count
from nengodl.distribute import optimizer_variables
from nengodl.progress import Stage
from nengodl.training import TrainingData, check_optimizer, random_state


class SimulatorModel:
    """What Keras callbacks see as ``model`` during `fit`/`evaluate`.

    Supports ``stop_training`` (EarlyStopping), ``get_weights``/``set_weights``
    (``restore_best_weights``), ``save_weights``/``save``/``load_weights``
    (ModelCheckpoint; with the optimizer's state, for BackupAndRestore),
    ``optimizer``, ``trainable_variables`` and ``history``.
    """

    built = True  # read by BackupAndRestore

    def __init__(self, sim):
        self.sim = sim
        self.stop_training = False
        self.optimizer = None
        self.history = None
        self.train_function = None  # read by TensorBoard (no graph is written)
        self.layers = []
        self._initial_epoch = None  # set by BackupAndRestore when it restores

    @property
    def trainable_variables(self):
        """The variables `fit` trains (what the optimizer's state is built for)."""
        return [v for v, _ in self.sim.trainer.variables()]

    def _variables(self):
        return self.sim.loop.all_variables() + self.sim.plan.keras_variables()

    def get_weights(self):
        """All parameter values, as numpy arrays."""
        return [v.numpy() for v in self._variables()]

    def set_weights(self, weights):
        """Assign values returned by `get_weights`."""
        for var, w in zip(self._variables(), weights):
            var.assign(w)

    def save_weights(self, filepath, overwrite=True, **kwargs):
        """Save parameters and the optimizer's state with `nengodl.params.save_params`.

        The file is ``<filepath without .weights.h5>.npz``; a copy is written
        to ``filepath`` itself when that name differs (BackupAndRestore checks
        that it exists).
        """
        base = str(filepath).removesuffix(".weights.h5")
        state = optimizer_variables(self.optimizer)
        extra = {f"optimizer_{k}": v.numpy() for k, v in enumerate(state)}
        if state:
            extra["optimizer_layout"] = np.array(
                params.variable_layout(self.sim, self.trainable_variables)
            )
        params.save_params(self.sim, base, extra=extra)
        if str(filepath) != f"{base}.npz" and not str(filepath).endswith(".npz"):
            shutil.copyfile(f"{base}.npz", filepath)

    save = save_weights

    def load_weights(self, filepath, **kwargs):
        """Load parameters (and the optimizer's state, when saved) from `save_weights`.

        The optimizer's state is stored per variable: it is restored only when
        the trainable variables hold the same signals as when it was saved
        (always for multi-worker strategies and ``optimize=False``; nengo's
        merging optimiser may lay them out differently), else a warning says so.
        """
        base = str(filepath).removesuffix(".weights.h5").removesuffix(".npz")
        self.sim.load_params(base)
        state = optimizer_variables(self.optimizer)
        with np.load(f"{base}.npz") as f:
            values = [f[f"optimizer_{k}"] for k in range(len(state)) if f"optimizer_{k}" in f]
            layout = str(f["optimizer_layout"]) if "optimizer_layout" in f else None
        if not values:
            return
        if [v.shape for v in values] != [tuple(v.shape) for v in state] or layout != (
            params.variable_layout(self.sim, self.trainable_variables)
        ):
            warnings.warn(
                f"the optimizer state in {base}.npz does not match this simulator's "
                "variables (build with optimize=False for an exact resume); it is "
                "not restored"
            )
            return
        for var, val in zip(state, values):
            var.assign(val)


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

    def _metric_logs(self, metrics, outputs, targets, prefix=""):
        logs = {}
        by_probe = dict(zip(self.sim.plan.probes, outputs))
        for p, ms in metrics.items():
            for m in ms:
                metric = getattr(m, "name", getattr(m, "__name__", "metric"))
                name = f"{prefix}{probe_name(self.sim, p)}_{metric}"
                y_pred = by_probe[p]
                y_true = targets[p].astype(y_pred.dtype.as_numpy_dtype)
                if isinstance(m, keras.metrics.Metric):
                    m.update_state(y_true, y_pred)
                    logs[name] = m
                else:
                    logs[name] = float(keras.ops.mean(m(y_true, y_pred)))
        return logs

    def _run_eval(self, tdata, objective, metrics, seed, prefix="", progress=False):
        step = self.sim.trainer.eval_step(objective)
        seeds = random_state(seed)
        for ms in metrics.values():
            for m in ms:
                if isinstance(m, keras.metrics.Metric):
                    m.reset_state()
        totals, per_probe, metric_vals = [], [], {}
        with Stage("Evaluation", progress, max_value=tdata.n_batches) as stage:
            for inputs, targets in tdata.batches():
                values, outputs = step(inputs, targets, tdata.n_steps, seeds.randint(2**31 - 1))
                totals.append(float(np.sum(values)))
                per_probe.append(values)
                for k, v in self._metric_logs(metrics, outputs, targets, prefix).items():
                    metric_vals.setdefault(k, []).append(v)
                stage.update(len(totals))
        logs = {f"{prefix}loss": float(np.mean(totals))}
        means = np.mean(per_probe, axis=0)
        for p, v in zip(objective, means):
            logs[f"{prefix}{probe_name(self.sim, p)}_loss"] = float(v)
        for k, vals in metric_vals.items():
            v = vals[-1]
            logs[k] = (
                float(v.result()) if isinstance(v, keras.metrics.Metric) else float(np.mean(vals))
            )
        return logs

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
        step = trainer.train_step(self.compiled["optimizer"], objective)
        val = None
        if validation_data is not None:
            vx, vy = validation_data[:2]
            val = self._data(vx, vy, n_steps)
        self.model.stop_training = False
        cbs = keras.callbacks.CallbackList(
            callbacks,
            add_history=True,
            model=self.model,
            epochs=epochs,
            steps=tdata.n_batches,
            verbose=verbose,
        )
        rng = random_state(seed) if shuffle else None
        seeds = random_state(seed)
        cbs.on_train_begin()
        initial_epoch = self._resume(initial_epoch, tdata, rng, seeds)
        logs = {}
        last = [float("nan")]
        with Stage(
            "Training",
            verbose and self.sim.progress_bar,
            max_value=(epochs - initial_epoch) * tdata.n_batches,
            suffix=lambda: f"loss: {last[0]:.4g}",
            variables=("epoch", "loss"),
        ) as stage:
            done = 0
            for epoch in range(initial_epoch, epochs):
                cbs.on_epoch_begin(epoch)
                totals, per_probe, metric_vals = [], [], {}
                for ms in metrics.values():
                    for m in ms:
                        if isinstance(m, keras.metrics.Metric):
                            m.reset_state()
                for b, (inputs, targets) in enumerate(tdata.batches(rng)):
                    cbs.on_train_batch_begin(b)
                    values, outputs = step(
                        inputs, targets, tdata.n_steps, seeds.randint(2**31 - 1)
                    )
                    totals.append(float(np.sum(values)))
                    per_probe.append(values)
                    for k, v in self._metric_logs(metrics, outputs, targets).items():
                        metric_vals.setdefault(k, []).append(v)
                    cbs.on_train_batch_end(b, {"loss": totals[-1]})
                    done += 1
                    stage.update(done, epoch=epoch + 1, loss=float(np.mean(totals)))
                logs = {"loss": float(np.mean(totals))}
                for p, v in zip(objective, np.mean(per_probe, axis=0)):
                    logs[f"{probe_name(self.sim, p)}_loss"] = float(v)
                for k, vals in metric_vals.items():
                    v = vals[-1]
                    logs[k] = (
                        float(v.result())
                        if isinstance(v, keras.metrics.Metric)
                        else float(np.mean(vals))
                    )
                if val is not None:
                    logs.update(
                        self._run_eval(
                            val,
                            self._objective(val.targets),
                            self._metrics(list(val.targets)),
                            seed,
                            prefix="val_",
                        )
                    )
                last[0] = logs["loss"]
                cbs.on_epoch_end(epoch, logs)
                if self.model.stop_training:
                    break
        cbs.on_train_end(logs)
        return self.model.history

    def _resume(self, initial_epoch, tdata, rng, seeds):
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
        if start > initial_epoch:
            for _ in range(initial_epoch, start):
                for _ in tdata.batches(rng):
                    seeds.randint(2**31 - 1)
        return start

    def evaluate(
        self, x=None, y=None, n_steps=None, callbacks=None, verbose=1, seed=None, batch_size=None
    ):
        """See `Simulator.evaluate`."""
        self._check_compiled("evaluate")
        tdata = self._data(x, y, n_steps)
        return self._run_eval(
            tdata,
            self._objective(tdata.targets),
            self._metrics(list(tdata.targets)),
            seed,
            progress=verbose and self.sim.progress_bar,
        )

    def predict(self, x=None, n_steps=None, stateful=False, verbose=1, seed=None, batch_size=None):
        """See `Simulator.predict`."""
        tdata = self._data(x, None, n_steps)
        step = self.sim.trainer.predict_step()
        seeds = random_state(seed)
        chunks = []
        with Stage(
            "Prediction", verbose and self.sim.progress_bar, max_value=tdata.n_batches
        ) as stage:
            for inputs, _ in tdata.batches():
                outs = step(inputs, tdata.n_steps, seeds.randint(2**31 - 1))
                chunks.append([o.numpy() for o in outs])
                stage.update(len(chunks))
        return {
            p: np.concatenate([c[k] for c in chunks], axis=0)
            for k, p in enumerate(self.sim.plan.probes)
        }


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
