"""The Simulator's methods of NengoDL 3's Keras-style API.

`KerasMethods` holds ``compile``, ``fit``, ``evaluate``, ``predict`` and
``predict_on_batch``, front ends of `nengodl.training.keras_api.KerasAPI`
with its signatures (`front_end`) and their documentation.
"""

import inspect

import numpy as np  # noqa: F401 (the docstring examples use it)

from nengodl.training.keras_api import KerasAPI
from nengodl.training.keras_data import object_name


def front_end(impl):
    """Make the decorated function, whose docstring documents ``impl`` (a method
    of `KerasAPI`), a `Simulator` method that calls ``impl`` with the simulator's
    `KerasAPI`: the signature is written once, on ``impl``."""

    def decorate(documented):
        name = impl.__name__

        def method(self, *args, **kwargs):
            return getattr(self._keras(), name)(*args, **kwargs)

        method.__name__, method.__qualname__ = name, f"KerasMethods.{name}"
        method.__doc__ = documented.__doc__
        method.__signature__ = inspect.signature(impl)
        return method

    return decorate


class KerasMethods:
    """The `Simulator` methods of NengoDL 3's Keras-style API."""

    def _keras(self):
        if self._keras_api is None:
            self._keras_api = KerasAPI(self)
        self.run_state.parameters_changing()  # training may change what the stepper holds
        return self._keras_api

    @front_end(KerasAPI.compile)
    def compile():
        """Set the optimizer, losses and metrics used by `fit` and `evaluate`.

        Parameters
        ----------
        optimizer : keras.optimizers.Optimizer or str, optional
            Optimiser (Keras 3, or ``tf.compat.v1.train``).
        loss : loss or dict, optional
            A Keras loss (object, name or ``f(y_true, y_pred)``), or a dict from
            Probe (or probe label) to loss.
        metrics : metric, list or dict, optional
            Keras metrics, per probe if a dict.
        loss_weights : dict, optional
            Weight of each probe's loss in the total.
        run_eagerly : bool
            Must be False: the simulation always runs as a compiled function.
        steps_per_execution : int
            Minibatches per compiled call where callbacks or metrics follow each
            minibatch (in `fit`; always in `evaluate` and `predict`), as in Keras;
            without them `fit` trains a whole epoch per call. Batch callbacks hear
            of every minibatch either way, the first of a call before it runs.
        jit_compile : bool or "auto"
            Accepted for Keras compatibility; XLA is ``Simulator(jit=...)``'s choice
            (a value that disagrees with it warns).
        weighted_metrics : metric, list or dict, optional
            Metrics that see ``fit``/``evaluate``'s ``sample_weight`` (``metrics``
            do not), as in Keras 3.

        Examples
        --------
        >>> import keras, nengo, nengodl
        >>> with nengo.Network() as net:
        ...     a = nengo.Node([1.0])
        ...     b = nengo.Node(size_in=1)
        ...     conn = nengo.Connection(a, b, transform=2.0, synapse=None)
        ...     p = nengo.Probe(b)
        >>> data = {a: np.ones((1, 1, 1)), p: np.full((1, 1, 1), 0.5)}  # target: b = 0.5
        >>> with nengodl.Simulator(net, progress_bar=False) as sim:
        ...     sim.compile(optimizer=keras.optimizers.SGD(0.25), loss={p: "mse"})
        ...     sim.evaluate({a: np.ones((1, 1, 1))}, {p: np.zeros((1, 1, 1))}, verbose=0)["loss"]
        4.0
        """

    @front_end(KerasAPI.fit)
    def fit():
        """Train with the compiled optimizer and losses (Keras ``Model.fit``).

        Parameters
        ----------
        x, y : dict or array
            Inputs (by input Node) and targets (by Probe), ``(batch, n_steps, size)``.
        epochs : int
            Number of passes through the data.
        validation_data : tuple, optional
            ``(x_val, y_val)`` evaluated after each epoch (``val_`` logs).
        callbacks : list of keras.callbacks.Callback, optional
            Keras callbacks (History, EarlyStopping, ModelCheckpoint, ...).
        shuffle : bool
            Shuffle the order of the minibatches each epoch.
        initial_epoch : int
            Epoch at which to start (for resuming a run).
        n_steps : int, optional
            Number of steps to simulate when ``x`` is empty (inputs from the Nodes).
        stateful : bool
            False: every minibatch starts from the initial state. True (as in
            NengoDL 3.6): each minibatch starts where the simulator stands and
            leaves it at the end (signals, `n_steps` and time advance), so state
            carries over from minibatch to minibatch and into later runs; the
            gradients stop at each minibatch's start. Validation still starts
            from the initial state.
        verbose : int
            0: no output; otherwise a progress bar (if the simulator's
            ``progress_bar`` is on).
        seed : int, optional
            Seed for shuffling and for inputs computed by Nodes not in ``x``.
        batch_size : int, optional
            Accepted for Keras compatibility with a warning, and ignored: minibatches have the
            simulator's ``minibatch_size``.
        validation_split : float
            Without ``validation_data``: the fraction of the items (the last ones,
            before shuffling) kept out of training to validate on, as in Keras.
        steps_per_epoch : int, optional
            Minibatches per epoch (default: one pass over the data). As in Keras 3,
            each epoch continues the pass the one before left off, and an epoch that
            finds it used up ends early with Keras's "ran out of data" warning.
        validation_steps : int, optional
            Minibatches per validation (default: all), from the first, as in Keras.
        validation_batch_size : int, optional
            Accepted with a warning, as ``batch_size``.
        validation_freq : int or list of int
            Validate every ``validation_freq`` epochs, or after the listed epochs
            (counted from 1).
        sample_weight : array or dict, optional
            Keras's per-item weights of the losses, ``(batch,)`` or ``(batch,
            target steps)``: one array for every probe with targets, or a dict by
            probe. The weighted loss is the weighted values' sum over their count,
            as in Keras. ``validation_data`` may be ``(x, y, sample_weight)``.
        class_weight : dict, optional
            Keras's class index -> weight, for one probe with targets (class
            indices, or one-hot targets whose largest entry is the class); not
            together with ``sample_weight``, as in Keras 3.

        Returns
        -------
        keras.callbacks.History
            Loss (and metric) values per epoch in ``history.history``.

        Examples
        --------
        Train a connection weight (initially 2) towards 0; with the squared error and
        SGD at learning rate 0.25 each epoch halves it:

        >>> import keras, nengo, nengodl
        >>> with nengo.Network() as net:
        ...     a = nengo.Node([1.0])
        ...     b = nengo.Node(size_in=1)
        ...     conn = nengo.Connection(a, b, transform=2.0, synapse=None)
        ...     p = nengo.Probe(b)
        >>> data = {a: np.ones((1, 1, 1)), p: np.full((1, 1, 1), 0.5)}  # target: b = 0.5
        >>> with nengodl.Simulator(net, progress_bar=False) as sim:
        ...     sim.compile(optimizer=keras.optimizers.SGD(0.25), loss={p: "mse"})
        ...     history = sim.fit({a: np.ones((1, 1, 1))}, {p: np.zeros((1, 1, 1))},
        ...                       epochs=3, verbose=0)
        ...     weight = float(sim.data[conn].weights)
        >>> weight
        0.25
        >>> [round(loss, 4) for loss in history.history["loss"]]  # weight ** 2 before each epoch
        [4.0, 1.0, 0.25]
        """

    @front_end(KerasAPI.evaluate)
    def evaluate():
        """Compute the compiled losses and metrics (spiking neurons stay spiking).

        Parameters
        ----------
        x, y : dict or array
            Inputs and targets, as for `fit`.
        n_steps : int, optional
            Number of steps to simulate when ``x`` is empty.
        stateful : bool
            Run from the simulator's state, each minibatch continuing from the one
            before, and leave the simulator at the end (as ``predict(stateful=True)``;
            no probe data is recorded); False: every minibatch starts from the
            initial state and the simulator is left as it was.
        callbacks : list of keras.callbacks.Callback, optional
            Keras callbacks.
        verbose : int
            0: no output; otherwise a progress bar (if the simulator's
            ``progress_bar`` is on).
        seed : int, optional
            Seed for inputs computed by Nodes not in ``x``.
        batch_size : int, optional
            Accepted for Keras compatibility, with a warning: minibatches have the
            simulator's ``minibatch_size``.
        steps : int, optional
            Evaluate the first ``steps`` minibatches only (default: all).
        return_dict : bool
            True (NengoDL 3's way, the default here): a dict; False: Keras's list of
            the values in the dict's order (``loss`` first), or the one value alone.
        sample_weight : array or dict, optional
            As for `fit`.

        Returns
        -------
        dict
            ``loss``, ``<probe>_loss`` and ``<probe>_<metric>`` values.

        Examples
        --------
        >>> import keras, nengo, nengodl
        >>> with nengo.Network() as net:
        ...     a = nengo.Node([1.0])
        ...     b = nengo.Node(size_in=1)
        ...     conn = nengo.Connection(a, b, transform=2.0, synapse=None)
        ...     p = nengo.Probe(b)
        >>> data = {a: np.ones((1, 1, 1)), p: np.full((1, 1, 1), 0.5)}  # target: b = 0.5
        >>> with nengodl.Simulator(net, progress_bar=False) as sim:
        ...     sim.compile(loss={p: "mse"}, metrics={p: "mae"})
        ...     result = sim.evaluate({a: np.ones((1, 1, 1))}, {p: np.zeros((1, 1, 1))},
        ...                           verbose=0)
        >>> sorted(result), result["loss"]
        (['loss', 'probe_loss', 'probe_mae'], 4.0)
        """

    @front_end(KerasAPI.predict)
    def predict():
        """Probe outputs for inputs ``x``, each ``(batch, n_steps, size)``.

        Parameters
        ----------
        x : dict or array
            Inputs, as for `fit`.
        n_steps : int, optional
            Number of steps to simulate when ``x`` is empty.
        stateful : bool
            Continue from the simulator's state, each minibatch from the one before,
            advancing its time (no probe data is recorded); False: every minibatch
            starts from the initial state.
        verbose : int
            0: no output; otherwise a progress bar (if the simulator's
            ``progress_bar`` is on).
        seed : int, optional
            Seed for inputs computed by Nodes not in ``x``.
        batch_size : int, optional
            Accepted for Keras compatibility, with a warning: minibatches have the
            simulator's ``minibatch_size``.
        callbacks : list of keras.callbacks.Callback, optional
            Keras callbacks, told of the prediction and of each minibatch.
        steps : int, optional
            Predict the first ``steps`` minibatches only (default: all).

        Returns
        -------
        dict
            Map from Probe to its output, ``(batch, n_steps, size)``.

        Examples
        --------
        >>> import keras, nengo, nengodl
        >>> with nengo.Network() as net:
        ...     a = nengo.Node([1.0])
        ...     b = nengo.Node(size_in=1)
        ...     conn = nengo.Connection(a, b, transform=2.0, synapse=None)
        ...     p = nengo.Probe(b)
        >>> data = {a: np.ones((1, 1, 1)), p: np.full((1, 1, 1), 0.5)}  # target: b = 0.5
        >>> with nengodl.Simulator(net, progress_bar=False) as sim:
        ...     out = sim.predict({a: np.ones((4, 3, 1))}, verbose=0)
        >>> out[p].shape, float(out[p][0, 0, 0])
        ((4, 3, 1), 2.0)
        """

    @front_end(KerasAPI.predict_on_batch)
    def predict_on_batch():
        """`predict` for exactly one minibatch of inputs.

        Parameters
        ----------
        x : dict or array
            Inputs, ``(minibatch_size, n_steps, size)``: more (or fewer) items than
            one minibatch are refused.
        n_steps : int, optional
            Number of steps to simulate when ``x`` is empty.
        stateful : bool
            As for `predict`: continue from the simulator's state and leave it at
            the end; False: start from the initial state, leave the simulator as it
            was.

        Returns
        -------
        dict
            Map from Probe to its output.

        Examples
        --------
        >>> import keras, nengo, nengodl
        >>> with nengo.Network() as net:
        ...     a = nengo.Node([1.0])
        ...     b = nengo.Node(size_in=1)
        ...     conn = nengo.Connection(a, b, transform=2.0, synapse=None)
        ...     p = nengo.Probe(b)
        >>> data = {a: np.ones((1, 1, 1)), p: np.full((1, 1, 1), 0.5)}  # target: b = 0.5
        >>> with nengodl.Simulator(net, minibatch_size=2, progress_bar=False) as sim:
        ...     out = sim.predict_on_batch({a: np.ones((2, 3, 1))})
        >>> out[p][:, :, 0]
        array([[2., 2., 2.],
               [2., 2., 2.]], dtype=float32)
        """

    def get_name(self, obj):
        """The name of an input Node or a Probe in Keras-style data and logs.

        ``x`` and ``y`` dicts may be keyed by it, and `fit` and `evaluate` name
        each probe's loss ``<name>_loss`` (as NengoDL 3).

        Parameters
        ----------
        obj : nengo.Node or nengo.Probe
            An input Node (a Node without input) or a Probe of the model.

        Returns
        -------
        str
            The object's label (sanitized), else ``node`` or ``probe``, with
            a suffix ``_1``, ``_2``, ... where the name is taken (as NengoDL 3.6).

        Examples
        --------
        >>> import nengo, nengodl
        >>> with nengo.Network() as net:
        ...     stim = nengo.Node([0.5])
        ...     p = nengo.Probe(stim, label="out")
        ...     q = nengo.Probe(stim)
        >>> with nengodl.Simulator(net, progress_bar=False) as sim:
        ...     sim.get_name(stim), sim.get_name(p), sim.get_name(q)
        ('node', 'out', 'probe')
        """
        return object_name(self, obj)
