"""Keras callbacks for `Simulator.fit`, `Simulator.evaluate` and `Simulator.predict`.

Pass them in the ``callbacks`` list, e.g.
``sim.fit(x, y, callbacks=[nengodl.callbacks.NengoSummaries("logs", sim, [ens])])``.

- `NengoSummaries` writes TensorBoard histograms of chosen nengo objects'
  parameters (encoders, biases, connection weights) and of probed values
  (such as neuron activities) after each epoch.
- `TensorBoard` is Keras' TensorBoard callback for a simulator: its
  ``histogram_freq`` logs the simulator's trainable parameters (the Keras one
  logs the weights of Keras layers, which a simulator has none of), and
  ``profile_batch`` also profiles prediction.
- `IsolateState` keeps a run from changing the simulator's time, signal values
  and probe data (trained parameters are kept).
"""

import re

import keras
import nengo
import numpy as np
import tensorflow as tf
from nengo.exceptions import ValidationError

from nengodl.io.checks import check_count
from nengodl.training.data import TrainingData
from nengodl.training.keras_data import input_arrays


def _tag(kind, label, param):
    """TensorBoard tag ``<kind>_<label>_<param>``, with characters other than
    letters, digits, ``_``, ``.`` and ``-`` replaced by ``_``."""
    return re.sub(r"[^A-Za-z0-9_.\-]", "_", f"{kind}_{label}_{param}")


def _unique(tags):
    """``tags`` with a ``_<k>`` suffix on the second, third... use of a name
    (unlabelled objects of one kind would otherwise share a tag)."""
    seen, out = {}, []
    for tag in tags:
        k = seen.get(tag, 0)
        seen[tag] = k + 1
        out.append(tag if k == 0 else f"{tag}_{k}")
    return out


def _as_array(weights):
    """Weights as a numpy array (the stored values of a sparse matrix)."""
    if hasattr(weights, "toarray") or isinstance(weights, nengo.transforms.SparseMatrix):
        return np.asarray(weights.data)
    return np.asarray(weights)


def _in_model(sim, obj, what):
    if obj not in sim.model.params:
        raise ValidationError(
            f"{what} {obj} is not in this simulator's network (objects of another "
            "network, or a copy of one, have no parameters here)",
            attr="objects",
            obj=obj,
        )


def _direct(ens, what):
    if isinstance(ens.neuron_type, nengo.Direct):
        raise ValidationError(
            f"{ens} has Direct neurons, so it has no {what} to log", attr="objects", obj=ens
        )


def summary_reader(sim, obj):
    """The TensorBoard tag of ``obj``'s parameter and a function reading its value.

    Parameters
    ----------
    sim : Simulator
        The simulator whose (trained) values are read, through ``sim.data``.
    obj : nengo.Ensemble or nengo.ensemble.Neurons or nengo.Connection
        An Ensemble (its encoders), an Ensemble's ``neurons`` (their biases) or a
        Connection with weights (its weights: decoders from an Ensemble,
        the transform otherwise).

    Returns
    -------
    tag : str
        ``Ensemble_<label>_encoders``, ``Ensemble.neurons_<label>_bias`` or
        ``Connection_<label>_weights`` (as NengoDL 3.6 names them).
    read : callable
        ``read()`` gives the current value as a numpy array.

    Raises
    ------
    nengo.exceptions.ValidationError
        For another kind of object (a Probe's values are not a parameter: see
        `probe_tag`), an object not in ``sim``'s network, an Ensemble with
        Direct neurons, or a Connection without weights.
    """
    if isinstance(obj, nengo.Ensemble):
        _in_model(sim, obj, "Ensemble")
        _direct(obj, "encoders")
        return _tag("Ensemble", obj.label, "encoders"), lambda: np.asarray(sim.data[obj].encoders)
    if isinstance(obj, nengo.ensemble.Neurons):
        ens = obj.ensemble
        _in_model(sim, ens, "Ensemble")
        _direct(ens, "biases")
        return _tag("Ensemble.neurons", ens.label, "bias"), lambda: np.asarray(sim.data[ens].bias)
    if isinstance(obj, nengo.Connection):
        _in_model(sim, obj, "Connection")
        if not obj.has_weights or sim.data[obj].weights is None:
            raise ValidationError(
                f"Connection '{obj}' does not have any weights to log (it has no "
                "transform and does not start at an Ensemble)",
                attr="objects",
                obj=obj,
            )
        return _tag("Connection", obj.label, "weights"), lambda: _as_array(sim.data[obj].weights)
    raise ValidationError(
        f"Unknown summary object {obj!r}; should be an Ensemble, Neurons, Connection or Probe",
        attr="objects",
        obj=obj,
    )


def probe_tag(sim, probe):
    """The TensorBoard tag of ``probe``'s values, ``Probe_<label>_<attr>``
    (``attr`` the probed attribute: ``output`` of ``ens.neurons`` is the
    neurons' activities); raises `ValidationError` for a probe not in ``sim``'s
    network."""
    if probe not in sim.model.probes:
        raise ValidationError(
            f"Probe {probe} is not in this simulator's network", attr="objects", obj=probe
        )
    return _tag("Probe", probe.label, probe.attr)


def trainable_readers(sim):
    """``(tag, read)`` for every trainable parameter of ``sim``, named as in
    `summary_reader`: encoders and biases of Ensembles, Connection weights, and
    the variables of Keras layers in TensorNodes (named by their path)."""
    trainable = sim.plan.trainable_sigs
    objs = []
    built = list(sim.model.params)  # every built object, in build order
    for ens in built:
        if not isinstance(ens, nengo.Ensemble) or isinstance(ens.neuron_type, nengo.Direct):
            continue
        if sim.model.sig[ens].get("encoders") in trainable:
            objs.append(ens)
        if sim.model.sig[ens.neurons].get("bias") in trainable:
            objs.append(ens.neurons)
    for conn in built:
        if not isinstance(conn, nengo.Connection):
            continue
        weights = sim.model.sig[conn].get("weights")
        if weights is not None and weights in trainable:
            objs.append(conn)
    readers = [summary_reader(sim, obj) for obj in objs]
    for var in sim.plan.keras_variables():
        name = str(getattr(var, "path", var.name)).replace(":", "_")
        readers.append((name, lambda var=var: np.asarray(var.numpy())))
    tags = _unique([tag for tag, _ in readers])
    return [(tag, read) for tag, (_, read) in zip(tags, readers)]


class NengoSummaries(keras.callbacks.Callback):
    """Log nengo objects' parameters, and probed values, to TensorBoard after
    each training epoch.

    At the end of each epoch of `Simulator.fit`, a histogram of each object's
    current (trained) parameter, as ``sim.data`` gives it, is written to an
    event file in ``log_dir``, at step ``epoch``. View them with
    ``tensorboard --logdir <log_dir>``.

    A Probe logs the values it records (all items, steps and dimensions) in a
    run of the trained network from the initial state, as `Simulator.predict`
    gives them for ``x`` (or ``n_steps`` of the Nodes' own output): a probe of
    ``ens.neurons`` logs the neurons' activities. One run per epoch serves
    every Probe; the simulator's state is left as it was. (NengoDL 3.6 takes
    no Probes.)

    Parameters
    ----------
    log_dir : str or os.PathLike
        Directory of the event file (a new file for each `fit`).
    sim : Simulator
        The simulator whose parameters are logged.
    objects : list of nengo.Ensemble, nengo.ensemble.Neurons, nengo.Connection or nengo.Probe
        What to log: an Ensemble logs its encoders (tag
        ``Ensemble_<label>_encoders``), Neurons their ensemble's biases
        (``Ensemble.neurons_<label>_bias``), a Connection its weights
        (``Connection_<label>_weights``: decoders from an Ensemble, else the
        transform), a Probe its values (``Probe_<label>_<attr>``, e.g.
        ``Probe_spikes_output``). Objects whose tags would be the same get
        ``_1``, ``_2``...
    x : dict or ndarray, optional
        Input data of the run that Probes are logged from, as for
        `Simulator.predict`.
    n_steps : int, optional
        Number of steps of that run, where ``x`` is not given.

    Raises
    ------
    nengo.exceptions.ValidationError
        For any other object, one not in ``sim``'s network, an Ensemble with
        Direct neurons, a Connection without weights, or Probes with neither
        ``x`` nor ``n_steps``.

    Examples
    --------
    >>> import keras, nengo, nengodl, tempfile
    >>> with nengo.Network(seed=0) as net:
    ...     a = nengo.Node([1.0])
    ...     ens = nengo.Ensemble(10, 1, label="ens")
    ...     _ = nengo.Connection(a, ens)
    ...     p = nengo.Probe(ens)
    ...     spikes = nengo.Probe(ens.neurons, label="spikes")
    >>> with nengodl.Simulator(net, progress_bar=False) as sim:
    ...     summaries = nengodl.callbacks.NengoSummaries(
    ...         tempfile.mkdtemp(), sim, [ens, spikes], n_steps=50)
    ...     sim.compile(optimizer=keras.optimizers.SGD(0.01), loss={p: "mse"})
    ...     _ = sim.fit(np.ones((1, 5, 1)), {p: np.zeros((1, 5, 1))}, epochs=2,
    ...                 callbacks=[summaries], verbose=0)
    >>> summaries.tags
    ['Ensemble_ens_encoders', 'Probe_spikes_output']
    """

    def __init__(self, log_dir, sim, objects, x=None, n_steps=None):
        super().__init__()
        if isinstance(
            objects, (nengo.Ensemble, nengo.ensemble.Neurons, nengo.Connection, nengo.Probe)
        ):
            objects = [objects]
        tags, readers, probes = [], [], []
        for obj in objects:
            if isinstance(obj, nengo.Probe):
                tags.append(probe_tag(sim, obj))
                readers.append(obj)
                probes.append(obj)
            else:
                tag, read = summary_reader(sim, obj)
                tags.append(tag)
                readers.append(read)
        if probes and x is None and n_steps is None:
            raise ValidationError(
                f"NengoSummaries logs {probes[0]} from a run of the network: give its "
                "input data `x` or its number of steps `n_steps`",
                attr="n_steps",
            )
        if probes and x is not None:
            # checked now, not at the end of the first epoch: the run's data as
            # `Simulator.predict` takes it
            x = input_arrays(sim, x)
            TrainingData(sim, x, keras_style=True)
        if probes and n_steps is not None:
            n_steps = check_count(n_steps, "n_steps", minimum=1)
        self.log_dir = str(log_dir)
        self.sim = sim
        self.tags = _unique(tags)
        self._readers = readers
        self._run = (x, n_steps) if probes else None
        self._writer = None

    def on_train_begin(self, logs=None):
        """Open a new event file."""
        self._close()
        self._writer = tf.summary.create_file_writer(self.log_dir)

    def on_epoch_end(self, epoch, logs=None):
        """Write a histogram of each parameter and probe's values, at step ``epoch``."""
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)
        probed = {}
        if self._run is not None:
            x, n_steps = self._run
            probed = self.sim.predict(x, n_steps=n_steps, stateful=False, verbose=0)
        with self._writer.as_default():
            for tag, read in zip(self.tags, self._readers):
                value = probed[read] if isinstance(read, nengo.Probe) else read()
                tf.summary.histogram(tag, np.asarray(value, dtype=np.float64), step=epoch)
        self._writer.flush()

    def on_train_end(self, logs=None):
        """Close the event file."""
        self._close()

    def _close(self):
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class TensorBoard(keras.callbacks.TensorBoard):
    """Keras' TensorBoard callback, for a `Simulator`.

    Takes Keras' arguments (``log_dir``, ``histogram_freq``, ``update_freq``,
    ``profile_batch``, ``write_steps_per_second``...) and writes what Keras'
    callback writes from `Simulator.fit` (``epoch_loss``, ``epoch_<probe>_loss``,
    metrics, ``epoch_learning_rate``, ``val_`` logs under ``validation/``).
    Differences:

    - ``histogram_freq`` logs a histogram of each trainable parameter of the
      simulator (under ``train/``, tagged as in `NengoSummaries` with
      ``/histogram`` added, and the variables of Keras layers in TensorNodes by
      their path), as Keras logs the weights of a model's layers.
    - ``profile_batch`` also profiles prediction (NengoDL 3.6's addition):
      the prediction hooks run the training ones, so batches of a `predict`
      given this callback are traced like training batches.
    - No graph is written (a simulator has no Keras ``train_function``).
    """

    def on_epoch_end(self, epoch, logs=None):
        """Epoch scalars (Keras), then the simulator's parameter histograms."""
        super().on_epoch_end(epoch, logs)
        sim = getattr(self.model, "sim", None)
        if sim is None or not self.histogram_freq or epoch % self.histogram_freq:
            return
        writer = self._train_writer
        with writer.as_default():
            for tag, read in trainable_readers(sim):
                tf.summary.histogram(f"{tag}/histogram", read().astype(np.float64), step=epoch)
        writer.flush()

    def on_predict_begin(self, logs=None):
        """Start as training starts (opens the writer, counts batches from 0)."""
        self.on_train_begin()

    def on_predict_batch_begin(self, batch, logs=None):
        """As a training batch begins (may start the profiler's trace)."""
        self.on_train_batch_begin(batch)

    def on_predict_batch_end(self, batch, logs=None):
        """As a training batch ends, without its logs (outputs are not scalars)."""
        self.on_train_batch_end(batch)

    def on_predict_end(self, logs=None):
        """End as training ends (stops a trace, closes the writers)."""
        self.on_train_end()


class IsolateState(keras.callbacks.Callback):
    """Keep a run from changing the simulator's state.

    The state when the callback is made (time and step count, signal values,
    host-side Node state, probe data) is put back at the end of every batch and
    at the end of `Simulator.fit`, `Simulator.evaluate` or `Simulator.predict`.
    Trained parameters are not put back: what `fit` trained stays trained.

    nengodl's `fit`, `evaluate` and `predict` start each minibatch from the
    initial state and leave the simulator's state alone; this callback undoes
    what other callbacks do to it (e.g. one calling ``sim.run_steps`` to
    monitor the model during training).

    Parameters
    ----------
    sim : Simulator
        The simulator whose state is kept.

    Examples
    --------
    >>> import keras, nengo, nengodl
    >>> with nengo.Network() as net:
    ...     a = nengo.Node([1.0])
    ...     b = nengo.Node(size_in=1)
    ...     conn = nengo.Connection(a, b, transform=2.0, synapse=None)
    ...     p = nengo.Probe(b)
    >>> class RunEachEpoch(keras.callbacks.Callback):
    ...     def on_epoch_end(self, epoch, logs=None):
    ...         sim.run_steps(3)
    >>> with nengodl.Simulator(net, progress_bar=False) as sim:
    ...     sim.run_steps(2)
    ...     sim.compile(optimizer=keras.optimizers.SGD(0.25), loss="mse")
    ...     _ = sim.fit(np.ones((1, 1, 1)), np.zeros((1, 1, 1)), epochs=2, verbose=0,
    ...                 callbacks=[RunEachEpoch(), nengodl.callbacks.IsolateState(sim)])
    ...     print(sim.n_steps, float(sim.data[conn].weights))
    2 0.5
    """

    def __init__(self, sim):
        super().__init__()
        self.sim = sim
        snapshot = sim.run_state.snapshot()
        self._saved = {k: snapshot[k] for k in ("state", "host", "n_steps", "probe_chunks")}

    def reset(self):
        """Put back the saved state (parameters and the trained flag are kept)."""
        run = self.sim.run_state
        run.restore({**self._saved, "params": {}, "trained": run.trained})

    def on_train_batch_end(self, batch, logs=None):
        """Put back the state after each training batch."""
        self.reset()

    def on_test_batch_end(self, batch, logs=None):
        """Put back the state after each evaluation batch."""
        self.reset()

    def on_predict_batch_end(self, batch, logs=None):
        """Put back the state after each prediction batch."""
        self.reset()

    def on_train_end(self, logs=None):
        """Put back the state when training ends."""
        self.reset()

    def on_test_end(self, logs=None):
        """Put back the state when evaluation ends."""
        self.reset()

    def on_predict_end(self, logs=None):
        """Put back the state when prediction ends."""
        self.reset()
