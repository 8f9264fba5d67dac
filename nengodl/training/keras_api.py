"""NengoDL 3's Keras-style API: `compile`, `fit`, `evaluate`, `predict`.

Inputs (``x``) and targets (``y``) are dicts keyed by input Nodes and Probes (or
their labels), or plain arrays when the model has a single input / output, each
shaped ``(batch_size, n_steps, size)``. Losses follow Keras' ``f(y_true, y_pred)``
convention; Keras callbacks see a small stand-in model (`SimulatorModel`).
"""

import math
import warnings
from collections.abc import Mapping

import keras
import numpy as np
from nengo.exceptions import ValidationError

from nengodl.io.checks import check_count
from nengodl.runtime.weak import WeakSimulator
from nengodl.training.data import TrainingData, TrainingDataNoInputs
from nengodl.training.keras_compile import CompiledSettings
from nengodl.training.keras_data import input_arrays, resolve_keys
from nengodl.training.keras_model import SimulatorModel
from nengodl.training.loop import (
    EpochIterator,
    evaluate_batches,
    fit_epochs,
    predict_batches,
)
from nengodl.training.sample_weights import attach, item_weights
from nengodl.training.trainer import check_optimizer, optimizer_variables


class KerasAPI:
    """Implements the Keras-style methods of a `Simulator`.

    Parameters
    ----------
    sim : Simulator
        The simulator.
    """

    sim = WeakSimulator()  # the simulator owns this: no reference cycle back

    def __init__(self, sim):
        self.sim = sim
        self.compiled = None
        self.steps_per_execution = 1
        self.model = SimulatorModel(sim)

    def compile(
        self,
        optimizer=None,
        loss=None,
        metrics=None,
        loss_weights=None,
        run_eagerly=False,
        steps_per_execution=1,
        jit_compile="auto",
        weighted_metrics=None,
    ):
        """See `Simulator.compile`."""
        if run_eagerly:
            raise ValidationError(
                "run_eagerly=True is not supported: the simulation always runs as a "
                "compiled TensorFlow function (Simulator(jit=False) runs it without XLA)",
                attr="run_eagerly",
            )
        steps_per_execution = check_count(steps_per_execution, "steps_per_execution", minimum=1)
        if jit_compile not in ("auto", True, False):
            raise ValidationError(
                f"Must be 'auto', True or False (got {jit_compile!r})", attr="jit_compile"
            )
        if jit_compile != "auto" and bool(jit_compile) != bool(self.sim.jit):
            warnings.warn(
                f"compile(jit_compile={jit_compile}) does not change the simulator: XLA is "
                f"chosen by Simulator(jit=...) (here jit={self.sim.jit})",
                stacklevel=4,
            )
        if optimizer is not None:
            if isinstance(optimizer, str):
                optimizer = keras.optimizers.get(optimizer)
            check_optimizer(optimizer)
        self.compiled = CompiledSettings(
            self.sim, optimizer, loss, metrics, loss_weights, weighted_metrics
        )
        self.model.optimizer = optimizer
        self.steps_per_execution = steps_per_execution

    def _check_compiled(self, method, need_loss=True):
        if self.compiled is None or (need_loss and self.compiled.settings["loss"] is None):
            raise ValidationError(
                f"call sim.compile(optimizer=..., loss=...) before sim.{method}",
                attr="compile",
            )

    def _data(self, x, y, n_steps):
        """`TrainingData` of Keras-style ``x`` and ``y``."""
        return self._data_of(self._arrays(x, y), n_steps)

    def _arrays(self, x, y):
        """Keras-style ``x`` and ``y`` as one dict from input Node / Probe to array."""
        # an entry of None: no data (Nodes run their own output; a loss that needs
        # no target, e.g. Regularize, goes without)
        inputs = input_arrays(self.sim, x)
        losses = None
        if self.compiled is not None and not isinstance(y, (Mapping, list, tuple)):
            # one array for y is the target of the one probe with a loss, if one has
            losses = self.compiled.setting_map("loss")
        targets = resolve_keys(
            self.sim, y, "output", preferred=None if losses is None else list(losses)
        )
        targets = {p: v for p, v in targets.items() if v is not None}
        return {**inputs, **targets}

    def _data_of(self, data, n_steps):
        """`TrainingData` of a dict from `_arrays`."""
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
        return TrainingData(self.sim, data, keras_style=True, n_steps=n_steps)

    def _run_eval(self, batches, callbacks, progress=False, stateful=False):
        """One evaluation pass over ``batches`` (an `EpochIterator`), as Keras's
        ``evaluate``: ``on_test_begin``, the test batch hooks, ``on_test_end``
        with the logs (also how `fit` validates, with its own callbacks, as
        Keras 3's ``fit`` does)."""
        tdata = batches.tdata
        objective = self.compiled.objective(tdata.targets, tdata.weighted)
        metrics = self.compiled.metrics(tdata.targets, tdata.weighted)
        run = self.sim.executor.runner(
            "evaluate", objective, stateful=stateful, with_outputs=bool(metrics)
        )
        callbacks.on_test_begin()
        logs = self.compiled.logs(objective, metrics, weighted=tdata.weighted)
        logs = evaluate_batches(
            run, batches, logs, self.steps_per_execution, progress, callbacks=callbacks
        ).result()
        callbacks.on_test_end(logs)
        return logs

    def _callbacks(self, callbacks, verbose, epochs, steps, history=False):
        return keras.callbacks.CallbackList(
            callbacks,
            add_history=history,
            model=self.model,
            epochs=epochs,
            steps=steps,
            verbose=verbose,
        )

    def _warn_batch_size(self, batch_size, method, name="batch_size"):
        """NengoDL 3's warning for a ``batch_size`` given to fit/evaluate/predict."""
        if batch_size is not None:
            warnings.warn(
                "Batch size is determined statically via Simulator.minibatch_size "
                f"({self.sim.plan.minibatch_size}): `{method}` ignores "
                f"{name}={batch_size!r} and runs the data in minibatches of that size",
                stacklevel=4,
            )

    def _validation(self, validation_data, n_steps):
        """The data of ``validation_data``: ``(x_val, y_val)``, or ``(x_val, y_val,
        sample_weight_val)`` as in Keras."""
        if not isinstance(validation_data, (list, tuple)) or len(validation_data) not in (2, 3):
            raise ValidationError(
                "validation_data must be a tuple (x_val, y_val) or (x_val, y_val, "
                f"sample_weight_val) (got {type(validation_data).__name__})",
                attr="validation_data",
            )
        weights = validation_data[2] if len(validation_data) == 3 else None
        tdata = self._data(validation_data[0], validation_data[1], n_steps)
        return self._weighed(tdata, weights)

    def _weighed(self, tdata, sample_weight, class_weight=None):
        """``tdata`` with Keras's sample (and class) weights on its targets."""
        if sample_weight is None and class_weight is None:
            return tdata
        probes = self.compiled.loss_probes(tdata.targets)
        return attach(tdata, item_weights(self.sim, tdata, probes, sample_weight, class_weight))

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
        validation_split=0.0,
        steps_per_epoch=None,
        validation_steps=None,
        validation_batch_size=None,
        validation_freq=1,
        sample_weight=None,
        class_weight=None,
    ):
        """See `Simulator.fit`."""
        self._check_compiled("fit")
        self._warn_batch_size(batch_size, "fit")
        self._warn_batch_size(validation_batch_size, "fit", "validation_batch_size")
        should_validate = validation_epochs(validation_freq)
        epochs = check_count(epochs, "epochs")
        initial_epoch = check_count(initial_epoch, "initial_epoch")
        if self.compiled.optimizer is None:
            raise ValidationError(
                "compile() was given no optimizer; fit needs one", attr="optimizer"
            )
        stateful = self._check_stateful(stateful)
        data, val = self._arrays(x, y), None
        if validation_data is not None:
            val = self._validation(validation_data, n_steps)
        elif validation_split:
            at = split_index(data, validation_split, self.sim.plan.minibatch_size)
            (data, val_data), (sample_weight, val_weight) = (
                head_tail(data, at),
                head_tail(sample_weight, at),
            )
            val = self._weighed(self._data_of(val_data, n_steps), val_weight)
        tdata = self._weighed(self._data_of(data, n_steps), sample_weight, class_weight)
        objective = self.compiled.objective(tdata.targets, tdata.weighted)
        metrics = self.compiled.metrics(tdata.targets, tdata.weighted)
        optimizer = self.compiled.optimizer
        run = self.sim.executor.runner(
            "train", objective, optimizer, stateful=stateful, with_outputs=bool(metrics)
        )
        batches = EpochIterator(tdata, shuffle, seed, steps=steps_per_epoch)
        self.model.stop_training = False
        cbs = self._callbacks(callbacks, verbose, epochs, batches.n_batches, history=True)
        cbs.on_train_begin()
        initial_epoch = self._resume(initial_epoch, batches)
        # a whole epoch per call where nothing needs each minibatch as it ends
        per_call = self.steps_per_execution if callbacks or metrics else None

        def validate(epoch):
            if not should_validate(epoch):
                return {}
            # each validation from the first minibatch, as Keras's evaluate
            val_batches = EpochIterator(val, seed=seed, steps=validation_steps)
            return {f"val_{k}": v for k, v in self._run_eval(val_batches, cbs).items()}

        logs = fit_epochs(
            run,
            batches,
            epochs,
            lambda: self.compiled.logs(objective, metrics, weighted=tdata.weighted),
            per_call=per_call,
            initial_epoch=initial_epoch,
            callbacks=cbs,
            validate=None if val is None else validate,
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
        self,
        x=None,
        y=None,
        n_steps=None,
        stateful=False,
        callbacks=None,
        verbose=1,
        seed=None,
        batch_size=None,
        steps=None,
        return_dict=True,
        sample_weight=None,
    ):
        """See `Simulator.evaluate`."""
        self._check_compiled("evaluate")
        self._warn_batch_size(batch_size, "evaluate")
        stateful = self._check_stateful(stateful)
        tdata = self._weighed(self._data(x, y, n_steps), sample_weight)
        batches = EpochIterator(tdata, seed=seed, steps=steps)
        cbs = self._callbacks(callbacks, verbose, 1, batches.n_batches)
        progress = verbose and self.sim.progress_bar
        logs = self._run_eval(batches, cbs, progress=progress, stateful=stateful)
        if return_dict:
            return logs
        # Keras: the values in the order of the logs (``loss`` first), one alone as is
        values = list(logs.values())
        return values[0] if len(values) == 1 else values

    def predict(
        self,
        x=None,
        n_steps=None,
        stateful=False,
        verbose=1,
        seed=None,
        batch_size=None,
        callbacks=None,
        steps=None,
    ):
        """See `Simulator.predict`."""
        self._warn_batch_size(batch_size, "predict")
        stateful = self._check_stateful(stateful)
        batches = EpochIterator(self._data(x, None, n_steps), seed=seed, steps=steps)
        cbs = self._callbacks(callbacks, verbose, 1, batches.n_batches)
        run = self.sim.executor.runner("predict", stateful=stateful)
        cbs.on_predict_begin()
        outputs = predict_batches(
            run,
            batches,
            self.steps_per_execution,
            verbose and self.sim.progress_bar,
            callbacks=cbs if callbacks else None,
        )
        cbs.on_predict_end()
        return dict(zip(self.sim.plan.probes, outputs))

    def predict_on_batch(self, x=None, n_steps=None, stateful=False):
        """See `Simulator.predict_on_batch`."""
        mb = self.sim.plan.minibatch_size
        for key, value in resolve_keys(self.sim, x, "input").items():
            items = None if value is None else np.shape(value)[:1]
            if items is not None and items != (mb,):
                raise ValidationError(
                    f"predict_on_batch takes one minibatch: the input for {key} has "
                    f"{items[0] if items else 'no'} items, the simulator's "
                    f"minibatch_size is {mb} (use predict for more)",
                    attr="x",
                )
        return self.predict(x, n_steps=n_steps, stateful=stateful, verbose=0)

    def _check_stateful(self, stateful):
        if not isinstance(stateful, (bool, np.bool_)):
            raise ValidationError(f"Must be True or False (got {stateful!r})", attr="stateful")
        if stateful and not self.sim.stateful:
            warnings.warn(
                "stateful=True is ignored: the network was configured with "
                "configure_settings(stateful=False)",
                stacklevel=4,
            )
            return False
        return bool(stateful)


def validation_epochs(validation_freq):
    """``should_validate(epoch)`` for Keras's ``validation_freq``: an int ``n``
    validates every ``n`` epochs, a list or set names the epochs (from 1)."""
    if isinstance(validation_freq, (list, tuple, set, range)):
        epochs = set(validation_freq)
        return lambda epoch: epoch + 1 in epochs
    every = check_count(validation_freq, "validation_freq", minimum=1)
    return lambda epoch: (epoch + 1) % every == 0


def split_index(data, fraction, minibatch_size):
    """Keras's ``validation_split``: the index of the first item of the validation
    set, the last ``fraction`` of the items of ``data`` (a dict of arrays), before
    any shuffling; each part must make at least one minibatch."""
    if isinstance(fraction, bool) or not isinstance(fraction, (float, int, np.floating)):
        raise ValidationError(
            f"Must be a number in [0, 1) (got {fraction!r})", attr="validation_split"
        )
    if not 0 <= fraction < 1:
        raise ValidationError(f"Must be in [0, 1) (got {fraction})", attr="validation_split")
    if not data:
        raise ValidationError(
            "validation_split splits the data of x and y, and none is given",
            attr="validation_split",
        )
    n_items = len(next(iter(data.values())))
    split_at = math.floor(n_items * (1.0 - fraction))
    if min(split_at, n_items - split_at) < minibatch_size:
        raise ValidationError(
            f"the data's {n_items} items are too few to split into training and "
            f"validation sets of at least one minibatch ({minibatch_size}) each with "
            f"validation_split={fraction}",
            attr="validation_split",
        )
    return split_at


def head_tail(value, at):
    """``(value[:at], value[at:])`` of an array, or of each array of a dict (and
    ``(None, None)`` for None)."""
    if value is None:
        return None, None
    if isinstance(value, Mapping):
        parts = {k: head_tail(v, at) for k, v in value.items()}
        return {k: h for k, (h, _) in parts.items()}, {k: t for k, (_, t) in parts.items()}
    value = np.asarray(value)
    return value[:at], value[at:]
