"""The one loop over minibatches that training, evaluation and prediction share.

`EpochIterator` gives the minibatches of one pass over the data (shuffled
from its seed for training), each with the seed for inputs that Nodes compute
on the host; `fit_epochs` runs training epochs (a whole epoch per call to
the executor where nothing needs to hear of each minibatch as it ends, else
some minibatches per call), calling Keras callbacks and a validation
function; `evaluate_batches` and `predict_batches` run one pass without
updates. NengoDL 2's
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


def calls(batches, per_call):
    """The minibatches of one epoch of ``batches`` (an `EpochIterator`), in lists
    of at most ``per_call`` (None: all of the epoch in one list)."""
    chunk = []
    for batch in batches.epoch():
        chunk.append(batch)
        if per_call is not None and len(chunk) == per_call:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class BatchHooks:
    """Keras's batch hooks (``on_<mode>_batch_begin`` / ``_end``) around the
    minibatches of one call: the first begins before the call (as in Keras), the
    others after it, each when the one before has ended.

    Parameters
    ----------
    callbacks : keras.callbacks.CallbackList or None
        The callbacks (None: no hooks).
    mode : str
        ``"train"``, ``"test"`` or ``"predict"``.
    index : int
        The index of the call's first minibatch.
    """

    def __init__(self, callbacks, mode, index):
        self.callbacks, self.mode, self.index = callbacks, mode, index
        self._begun = False
        self.begin()

    def _call(self, which, *logs):
        if self.callbacks is not None:
            getattr(self.callbacks, f"on_{self.mode}_batch_{which}")(self.index, *logs)

    def begin(self):
        """The next minibatch begins (unless it has)."""
        if not self._begun:
            self._call("begin")
            self._begun = True

    def end(self, logs):
        """The minibatch ended with ``logs``."""
        self.begin()
        self._call("end", logs)
        self.index += 1
        self._begun = False


def logged_calls(run, batches, per_call, logs, callbacks, mode):
    """The calls of ``run`` over one epoch of ``batches`` (`calls`), each
    minibatch added to ``logs`` (an `EpochLogs`) and told to ``callbacks`` in
    ``mode`` (`BatchHooks`); yields the number of minibatches of each call."""
    for chunk in calls(batches, per_call):
        hooks = BatchHooks(callbacks, mode, logs.count)
        results = run(chunk, batches.n_steps)
        for k, (_, targets, _) in enumerate(chunk):
            outputs = None if results.outputs is None else results.outputs[k]
            logs.add(results.losses[k], outputs, targets)
            hooks.end(logs.result())
        yield len(chunk)


def evaluate_batches(
    run, batches, logs, per_call=1, progress=False, label="Evaluation", callbacks=None
):
    """One pass of ``run(minibatches, n_steps) -> Results`` (an ``"evaluate"``
    runner of `nengodl.training.executor.Executor`) over ``batches`` (an
    `EpochIterator`), ``per_call`` minibatches per call; returns ``logs`` (an
    `EpochLogs`) with every minibatch added. ``callbacks`` (a Keras
    ``CallbackList``), if given, are told of each minibatch with the logs so
    far, as Keras's ``evaluate`` tells them."""
    with Stage(label, progress, max_value=batches.n_batches) as stage:
        for _ in logged_calls(run, batches, per_call, logs, callbacks, "test"):
            stage.update(logs.count)
    return logs


def predict_batches(run, batches, per_call=1, progress=False, callbacks=None):
    """One pass of ``run(minibatches, n_steps) -> Results`` (a ``"predict"``
    runner) over ``batches``, ``per_call`` minibatches per call; returns each
    output (one per probe) concatenated over the minibatches. ``callbacks`` (a
    Keras ``CallbackList``), if given, are told of each minibatch with its
    ``outputs`` (one array, or a list of one per probe), as Keras's ``predict``
    tells them."""
    chunks = []
    with Stage("Prediction", progress, max_value=batches.n_batches) as stage:
        for chunk in calls(batches, per_call):
            hooks = BatchHooks(callbacks, "predict", len(chunks))
            for out in run(chunk, batches.n_steps).outputs:
                chunks.append(out)
                hooks.end({"outputs": out[0] if len(out) == 1 else out})
            stage.update(len(chunks))
    return [np.concatenate(parts, axis=0) for parts in zip(*chunks)]


def fit_epochs(
    run,
    batches,
    epochs,
    make_logs,
    per_call=None,
    initial_epoch=0,
    callbacks=None,
    validate=None,
    progress=False,
    should_stop=None,
):
    """Run training epochs; returns the logs of the last epoch run.

    Parameters
    ----------
    run : callable
        ``run(minibatches, n_steps) -> Results``: a ``"train"`` runner of
        `nengodl.training.executor.Executor`.
    batches : EpochIterator
        The training data.
    epochs : int
        The epoch to stop before (as Keras's ``epochs``).
    make_logs : callable
        ``make_logs() -> EpochLogs`` for one epoch.
    per_call : int, optional
        Minibatches per call (Keras's ``steps_per_execution``); None: a whole
        epoch per call. Batch callbacks hear of each minibatch after its call,
        with the logs so far (running means over the epoch), as in Keras.
    initial_epoch : int
        The first epoch to run.
    callbacks : keras.callbacks.CallbackList, optional
        Told of each epoch and batch.
    validate : callable, optional
        ``validate(epoch) -> dict`` of ``val_`` logs (empty where that epoch is
        not validated), after each epoch.
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
            for n in logged_calls(run, batches, per_call, epoch_logs, callbacks, "train"):
                done += n
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
