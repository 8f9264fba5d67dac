"""The one loop over minibatches that training, evaluation and prediction share.

`EpochIterator` gives the minibatches of one pass over the data (shuffled
from its seed for training), each with the seed for inputs that Nodes compute
on the host; `fit_epochs` runs training epochs (through the compiled
whole-epoch function where it can, else batch by batch), calling Keras
callbacks and a validation function; `evaluate_batches` and
`predict_batches` run one pass without updates. NengoDL 2's
`Simulator.train` / `Simulator.loss` and the Keras-style `fit` / `evaluate` /
`predict` are thin front ends over these.
"""

import warnings

import keras
import numpy as np

from nengodl.io.checks import check_count
from nengodl.progress import Stage


def random_state(seed):
    """``np.random.RandomState(seed)``; with ``seed=None`` it is seeded from numpy's
    global generator, so that `numpy.random.seed` (or ``keras.utils.set_random_seed``)
    makes shuffling and stochastic inputs repeatable."""
    return np.random.RandomState(np.random.randint(2**31 - 1) if seed is None else seed)


class EpochIterator:
    """The minibatches of training data, one epoch after another.

    Parameters
    ----------
    tdata : TrainingData
        The data, split into minibatches.
    shuffle : bool
        Shuffle the order of the minibatches in each epoch.
    seed : int, optional
        Seed of the shuffling and of the per-batch seeds.
    steps : int, optional
        Minibatches per epoch (Keras's ``steps_per_epoch``, or ``steps`` of
        ``evaluate`` / ``predict``); None: one pass over the data. As in Keras 3,
        an epoch continues the pass the one before left off, and one that finds
        the pass used up ends there, with Keras's warning that the input ran out
        of data; the next epoch starts a new pass (shuffled again).
    """

    def __init__(self, tdata, shuffle=False, seed=None, steps=None):
        self.tdata = tdata
        self.n_steps = tdata.n_steps
        self.steps = None if steps is None else check_count(steps, "steps", minimum=1)
        self.n_batches = tdata.n_batches if steps is None else self.steps
        self._rng = random_state(seed) if shuffle else None
        self._seeds = random_state(seed)
        self._pass = None  # with ``steps``: the pass the next epoch continues
        self._seen = 0

    def _one_pass(self):
        for inputs, targets in self.tdata.batches(self._rng):
            yield inputs, targets, int(self._seeds.randint(2**31 - 1))

    def epoch(self):
        """Yield ``(inputs, targets, seed)`` for each minibatch of one epoch."""
        if self.steps is None:
            yield from self._one_pass()
            return
        if self._pass is None:
            self._pass, self._seen = self._one_pass(), 0
        for _ in range(self.steps):
            if self._seen >= self.tdata.n_batches:
                warnings.warn(
                    f"Your input ran out of data: its {self.tdata.n_batches} minibatches "
                    f"make fewer than the {self.steps} steps asked for; the epoch ends "
                    "here, and the next one starts a new pass over the data",
                    stacklevel=2,
                )
                break
            self._seen += 1
            yield next(self._pass)
        if self._seen >= self.tdata.n_batches:
            self._pass = None

    def skip(self, n_epochs):
        """Draw the shuffles and seeds of ``n_epochs`` epochs without running them."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an epoch running out of data, again
            for _ in range(n_epochs):
                for _ in self.epoch():
                    pass


class EpochLogs:
    """Running loss and metric values over the minibatches of one epoch.

    Parameters
    ----------
    names : list of str
        The name of each objective's probe (for ``<name>_loss`` logs).
    metrics : callable, optional
        ``metrics(outputs, targets) -> {name: value or keras Metric}`` for one
        minibatch (Keras metrics are updated in place and read at the end).
    prefix : str
        Prefix of every log name (``"val_"`` for validation).
    weights : list of float, optional
        The (nonzero) loss weight of each objective: the ``<name>_loss`` logs
        are each probe's loss without it, as Keras logs them, while ``loss`` is
        the weighted total.
    """

    def __init__(self, names, metrics=None, prefix="", weights=None):
        self.names, self.metrics, self.prefix = names, metrics, prefix
        self.weights = 1.0 if weights is None else np.asarray(weights, dtype=np.float64)
        self.count = 0
        self._sums = 0.0  # per objective
        self._total = 0.0
        self._metric_values = {}  # name: keras Metric, or [sum, count] of plain values

    def add(self, losses, outputs=None, targets=None):
        """Add one minibatch's losses (one per objective) and metrics."""
        losses = np.asarray(losses, dtype=np.float64)
        self.count += 1
        self._sums = self._sums + losses
        self._total += float(np.sum(losses))
        if self.metrics is not None:
            for k, v in self.metrics(outputs, targets).items():
                if isinstance(v, keras.metrics.Metric):
                    self._metric_values[k] = v
                else:
                    acc = self._metric_values.setdefault(k, [0.0, 0])
                    acc[0] += float(v)
                    acc[1] += 1

    def mean_loss(self):
        """The mean total loss over the minibatches so far."""
        return self._total / self.count if self.count else float("nan")

    def result(self):
        """The logs so far, as Keras gives them after each batch and epoch:
        ``loss``, ``<probe>_loss`` for each objective, and metrics, each the mean
        over the minibatches so far."""
        p = self.prefix
        logs = {f"{p}loss": self.mean_loss()}
        if self.count:
            means = self._sums / self.count / self.weights
            for name, v in zip(self.names, np.atleast_1d(means)):
                logs[f"{p}{name}_loss"] = float(v)
        for k, v in self._metric_values.items():
            logs[k] = float(v.result()) if isinstance(v, keras.metrics.Metric) else v[0] / v[1]
        return logs


def evaluate_batches(step, batches, logs, progress=False, label="Evaluation", callbacks=None):
    """One pass of ``step(inputs, targets, n_steps, seed) -> (losses, outputs)``
    over ``batches`` (an `EpochIterator`) without updates; returns ``logs``
    (an `EpochLogs`) with every minibatch added. ``callbacks`` (a Keras
    ``CallbackList``), if given, are told of each minibatch with the logs so
    far, as Keras's ``evaluate`` tells them."""
    with Stage(label, progress, max_value=batches.n_batches) as stage:
        for b, (inputs, targets, seed) in enumerate(batches.epoch()):
            if callbacks is not None:
                callbacks.on_test_batch_begin(b)
            losses, outputs = step(inputs, targets, batches.n_steps, seed)
            logs.add(losses, outputs, targets)
            if callbacks is not None:
                callbacks.on_test_batch_end(b, logs.result())
            stage.update(logs.count)
    return logs


def predict_batches(step, batches, progress=False, callbacks=None):
    """One pass of ``step(inputs, n_steps, seed) -> outputs`` over ``batches``;
    returns each output (one per probe) concatenated over the minibatches.
    ``callbacks`` (a Keras ``CallbackList``), if given, are told of each
    minibatch with its ``outputs`` (one array, or a list of one per probe), as
    Keras's ``predict`` tells them."""
    chunks = []
    with Stage("Prediction", progress, max_value=batches.n_batches) as stage:
        for b, (inputs, _, seed) in enumerate(batches.epoch()):
            if callbacks is not None:
                callbacks.on_predict_batch_begin(b)
            chunks.append([o.numpy() for o in step(inputs, batches.n_steps, seed)])
            if callbacks is not None:
                out = chunks[-1]
                callbacks.on_predict_batch_end(b, {"outputs": out[0] if len(out) == 1 else out})
            stage.update(len(chunks))
    return [np.concatenate(parts, axis=0) for parts in zip(*chunks)]


def fit_epochs(
    step,
    batches,
    epochs,
    make_logs,
    initial_epoch=0,
    callbacks=None,
    validate=None,
    epoch_fn=None,
    progress=False,
    should_stop=None,
):
    """Run training epochs; returns the logs of the last epoch run.

    Parameters
    ----------
    step : callable
        ``step(inputs, targets, n_steps, seed) -> (losses, outputs)`` trains on
        one minibatch.
    batches : EpochIterator
        The training data.
    epochs : int
        The epoch to stop before (as Keras's ``epochs``).
    make_logs : callable
        ``make_logs() -> EpochLogs`` for one epoch.
    initial_epoch : int
        The first epoch to run.
    callbacks : keras.callbacks.CallbackList, optional
        Told of each epoch and batch.
    validate : callable, optional
        ``validate(epoch) -> dict`` of ``val_`` logs (empty where that epoch is
        not validated), after each epoch.
    epoch_fn : callable, optional
        ``epoch_fn(batches) -> per-batch losses`` (one row per minibatch, one
        value per objective) training a whole epoch in one compiled call, used
        instead of ``step`` when given (batch callbacks are then told of each
        minibatch after the epoch's call). Batch callbacks get the logs so far
        (running means over the epoch), as in Keras.
    progress : bool
        Show a progress bar.
    should_stop : callable, optional
        ``should_stop() -> bool`` checked after each epoch (Keras's
        ``model.stop_training``).
    """
    logs = {}
    current = [float("nan")]
    with Stage(
        "Training",
        progress,
        max_value=(epochs - initial_epoch) * batches.n_batches,
        suffix=lambda: f"loss: {current[0]:.4g}",
        variables=("epoch", "loss"),
    ) as stage:
        done = 0
        for epoch in range(initial_epoch, epochs):
            if callbacks is not None:
                callbacks.on_epoch_begin(epoch)
            epoch_logs = make_logs()
            if epoch_fn is not None:
                rows = epoch_fn([(inputs, targets) for inputs, targets, _ in batches.epoch()])
                for b, row in enumerate(rows):
                    epoch_logs.add(row)
                    if callbacks is not None:
                        callbacks.on_train_batch_begin(b)
                        callbacks.on_train_batch_end(b, epoch_logs.result())
                done += len(rows)
            else:
                for b, (inputs, targets, seed) in enumerate(batches.epoch()):
                    if callbacks is not None:
                        callbacks.on_train_batch_begin(b)
                    losses, outputs = step(inputs, targets, batches.n_steps, seed)
                    epoch_logs.add(losses, outputs, targets)
                    if callbacks is not None:
                        callbacks.on_train_batch_end(b, epoch_logs.result())
                    done += 1
                    stage.update(done, epoch=epoch + 1, loss=epoch_logs.mean_loss())
            logs = epoch_logs.result()
            stage.update(done, epoch=epoch + 1, loss=logs["loss"])
            if validate is not None:
                logs.update(validate(epoch))
            current[0] = logs["loss"]
            if callbacks is not None:
                callbacks.on_epoch_end(epoch, logs)
            if should_stop is not None and should_stop():
                break
    return logs
