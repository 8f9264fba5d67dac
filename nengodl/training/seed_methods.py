"""The Simulator's methods of NengoDL 2's training API.

`SeedTrainingMethods` holds ``train``, ``loss`` and ``check_gradients``: ``train``
and ``loss`` are front ends of `nengodl.training.executor.Executor`, which runs
minibatches through the compiled simulation loop.
"""

from collections.abc import Mapping

import nengo
import numpy as np  # noqa: F401 (the docstring examples use it)
from nengo.exceptions import ValidationError

from nengodl.io.checks import check_count
from nengodl.training.data import TrainingData, resolve_objective
from nengodl.training.gradients import check_gradients, check_input_gradients
from nengodl.training.loop import EpochIterator, EpochLogs, evaluate_batches, fit_epochs
from nengodl.training.trainer import check_optimizer


class SeedTrainingMethods:
    """The `Simulator` methods of NengoDL 2's training API."""

    def train(
        self,
        data,
        optimizer,
        objective=None,
        n_epochs=1,
        shuffle=True,
        progress_bar=None,
        seed=None,
    ):
        """Optimise the model's parameters with deep-learning methods.

        Spiking neurons run as their rate counterparts while training. Every
        minibatch starts from the initial state; the simulator's own state
        (time, probe data) is not changed.

        Parameters
        ----------
        data : dict
            Map from input `nengo.Node` to inputs and from `nengo.Probe` to
            targets, each ``(batch_size, n_steps, size)``; ``batch_size`` must be a
            multiple of ``minibatch_size`` and is split into minibatches.
        optimizer : keras.optimizers.Optimizer or tf.compat.v1.train.Optimizer
            The optimisation algorithm.
        objective : callable or dict, optional
            ``f(outputs, targets) -> scalar`` for the single probe in ``data``, or
            a dict mapping probes to such functions; default `nengodl.obj.mse`.
        n_epochs : int
            Number of passes through the data.
        shuffle : bool
            Shuffle the batch order each epoch.
        progress_bar : bool, optional
            Override the simulator's ``progress_bar`` setting.
        seed : int, optional
            Seed for shuffling and for inputs computed by Nodes not in ``data``.

        Returns
        -------
        float or None
            Mean loss of the last epoch (None when ``n_epochs`` is 0: nothing
            was trained).

        Examples
        --------
        Train the weight of a connection (initially 2) so that its output is 0.5; each
        SGD step with learning rate 0.25 on the squared error halves the distance:

        >>> import keras, nengo, nengodl
        >>> with nengo.Network() as net:
        ...     a = nengo.Node([1.0])
        ...     b = nengo.Node(size_in=1)
        ...     conn = nengo.Connection(a, b, transform=2.0, synapse=None)
        ...     p = nengo.Probe(b)
        >>> data = {a: np.ones((1, 1, 1)), p: np.full((1, 1, 1), 0.5)}  # target: b = 0.5
        >>> with nengodl.Simulator(net, progress_bar=False) as sim:
        ...     _ = sim.train(data, keras.optimizers.SGD(0.25), objective=nengodl.obj.mse,
        ...                   n_epochs=10)
        ...     weight = float(sim.data[conn].weights)
        >>> weight == 0.5 + 1.5 / 2 ** 10
        True
        """
        check_optimizer(optimizer)
        n_epochs = check_count(n_epochs, "n_epochs")
        tdata = TrainingData(self, data)
        if n_epochs == 0:
            return None  # as Keras's fit with no epochs: the data checked, nothing trained
        objective = resolve_objective(objective, tdata.targets, self.model.probes)
        logs = fit_epochs(
            self.executor.runner("train", objective, optimizer),
            EpochIterator(tdata, shuffle, seed),
            n_epochs,
            lambda: EpochLogs([str(p) for p in objective]),
            progress=self.progress_bar if progress_bar is None else progress_bar,
        )
        return logs["loss"]

    def loss(self, data, objective=None, progress_bar=None, seed=None):
        """Evaluate an objective on ``data`` with the model as defined.

        Spiking neurons stay spiking.

        Parameters
        ----------
        data : dict
            Inputs and targets, as for `train`.
        objective : callable or dict, optional
            As for `train`.
        progress_bar : bool, optional
            Override the simulator's ``progress_bar`` setting.
        seed : int, optional
            Seed for inputs computed by Nodes not in ``data``.

        Returns
        -------
        float
            The objective averaged over all minibatches.

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
        ...     sim.loss(data, objective=nengodl.obj.mse)  # (2 - 0.5) ** 2
        2.25
        """
        tdata = TrainingData(self, data)
        objective = resolve_objective(objective, tdata.targets, self.model.probes)
        logs = evaluate_batches(
            self.executor.runner("evaluate", objective, with_outputs=False),
            EpochIterator(tdata, seed=seed),
            EpochLogs([str(p) for p in objective]),
            progress=self.progress_bar if progress_bar is None else progress_bar,
            label="Calculation",
        )
        return logs.mean_loss()

    def check_gradients(self, inputs=None, outputs=None, atol=None, rtol=1e-3, objective=None):
        """Check analytic gradients against finite differences.

        Two checks, chosen by the arguments:

        - NengoDL 3's, ``check_gradients(inputs=None, outputs=None, atol, rtol)``:
          the Jacobian of each probe's output (a run from the initial state, in
          training mode) with respect to the input Nodes' data; see
          `nengodl.training.gradients.check_input_gradients`. Returns a dict
          from probe to ``{"analytic": [...], "numeric": [...]}``.
        - NengoDL 2's, ``check_gradients(data, objective=None, atol=None)``
          (``data`` holding targets for probes, or an ``objective`` given): the
          gradient of the objective with respect to the trainable parameters, on
          one minibatch. Returns the largest relative error.

        Parameters
        ----------
        inputs : list or dict, optional
            NengoDL 3: data for the input Nodes (default zeros for
            ``2 * unroll_simulation`` steps). NengoDL 2: ``data``, inputs
            and targets as for `train`.
        outputs : nengo.Probe or list, optional
            NengoDL 3: the probes checked (default all). A callable or a dict of
            callables here is NengoDL 2's ``objective`` (given by position).
        atol : float, optional
            Allowed error (NengoDL 3 check: absolute, default 1e-5 in float64
            and 1e-3 in float32; NengoDL 2's: relative to ``max(1, |numeric|)``,
            default 1e-4 in float64 and 1e-2 in float32).
        rtol : float
            NengoDL 3 check: error allowed relative to the numeric gradient.
        objective : callable or dict, optional
            NengoDL 2's objective, as for `train`.

        Returns
        -------
        dict or float
            As above; a `SimulationError` is raised where a gradient is off.

        Examples
        --------
        NengoDL 3's check: the output of ``b`` is twice the input, so its
        Jacobian is twice the identity:

        >>> import keras, nengo, nengodl
        >>> with nengo.Network() as net:
        ...     a = nengo.Node([1.0])
        ...     b = nengo.Node(size_in=1)
        ...     conn = nengo.Connection(a, b, transform=2.0, synapse=None)
        ...     p = nengo.Probe(b)
        >>> with nengodl.Simulator(net, dtype="float64", progress_bar=False) as sim:
        ...     grads = sim.check_gradients()
        >>> grads[p]["analytic"][0]
        array([[2., 0.],
               [0., 2.]])

        NengoDL 2's check, of a loss against the parameters:

        >>> data = {a: np.ones((1, 1, 1)), p: np.full((1, 1, 1), 0.5)}  # target: b = 0.5
        >>> with nengodl.Simulator(net, dtype="float64", progress_bar=False) as sim:
        ...     bool(sim.check_gradients(data) < 1e-4)
        True
        >>> with nengodl.Simulator(net, dtype="float32", progress_bar=False) as sim:
        ...     bool(sim.check_gradients(data) < 1e-2)
        True
        """
        if callable(outputs) or isinstance(outputs, Mapping):
            objective, outputs = outputs, None
        has_targets = isinstance(inputs, Mapping) and any(
            isinstance(key, nengo.Probe) for key in inputs
        )
        if objective is not None or has_targets:
            if outputs is not None:
                raise ValidationError(
                    "give either data with targets (and an objective) or outputs, not both",
                    attr="outputs",
                )
            return check_gradients(self.trainer, inputs, objective, atol=atol)
        return check_input_gradients(self, inputs, outputs, atol=atol, rtol=rtol)
