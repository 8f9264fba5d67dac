"""`nengodl.Simulator`: nengo's simulator API on a compiled TensorFlow loop."""

import contextlib
import logging
import os
import warnings

import nengo
import numpy as np
import tensorflow as tf
from nengo.builder import Model
from nengo.builder.optimizer import optimize as opmerge_optimize
from nengo.cache import get_default_decoder_cache
from nengo.exceptions import ReadonlyError, SimulatorClosed, ValidationError
from nengo.utils.graphs import toposort
from nengo.utils.simulator import operator_dependency_graph

from nengodl import params
from nengodl.config import get_setting, is_trainable, network_chains, trainable_signals
from nengodl.data import check_input_data, check_run_steps, check_run_time
from nengodl.distribute import (
    DistributedRunner, check_batch, is_multi_worker, resolve_strategy, stable_order,
)
from nengodl.graph import SimGraph
from nengodl.keras_api import KerasAPI
from nengodl.probes import ProbeRecorder, SimulationData
from nengodl.progress import Stage
from nengodl.training import Trainer

logger = logging.getLogger(__name__)

MAXINT = np.iinfo(np.int32).max


def item_seeds(seed, minibatch_size):
    """Seeds for the random state of each minibatch item (item 0 uses ``seed``)."""
    extra = np.random.RandomState(seed).randint(MAXINT, size=minibatch_size - 1)
    return [seed] + [int(s) for s in extra]


class Simulator:
    """Simulate a nengo network with TensorFlow.

    A drop-in replacement for `nengo.Simulator`: the network is built with
    nengo's own builder (so all parameters are the ones nengo computes), and the
    resulting operators run inside one compiled TensorFlow loop.

    Parameters
    ----------
    network : nengo.Network or None
        The network to simulate (or None when ``model`` is already built).
    dt : float
        Length of a simulation time step, in seconds.
    seed : int, optional
        Seed for all stochastic operators (default ``network.seed + 1``, or random).
    model : nengo.builder.Model, optional
        A model to build into (or a prebuilt model when ``network`` is None).
    device : str, optional
        TensorFlow device to run on (e.g. ``"/cpu:0"``, ``"/gpu:0"``); by default
        TensorFlow chooses.
    unroll_simulation : int
        Accepted for NengoDL 3 compatibility and ignored: the loop is compiled
        with XLA instead of unrolled.
    minibatch_size : int, optional
        Number of simulations run in parallel. If None, probe data has no
        minibatch axis, as in nengo.
    progress_bar : bool
        Whether to show progress bars for the build, optimisation, construction
        and simulation stages.
    optimize : bool
        Whether to run nengo's operator-merging optimiser on the model.
    dtype : str or tf.DType, optional
        Floating point precision, ``"float32"`` or ``"float64"``. The default is
        the ``NENGODL_DTYPE`` environment variable if set, else ``"float32"``.
        Probe data and `signals` are returned in nengo's dtypes.
    jit : bool
        Compile the simulation loop with XLA when every operator in it runs in
        TensorFlow (models whose loop calls Python code, or whose loop has more
        than ``nengodl.graph.XLA_MAX_STEPS`` operations, run without XLA).
    strategy : tf.distribute.Strategy, optional
        A `tf.distribute.MirroredStrategy` or
        `tf.distribute.MultiWorkerMirroredStrategy` splitting each minibatch
        across its replicas (default: the strategy whose ``scope()`` is active,
        if any); ``minibatch_size`` is the global batch and must divide evenly.
        XLA is not used under a strategy. See ``docs/distributed.md``.

    Examples
    --------
    >>> import nengo, nengodl
    >>> with nengo.Network(seed=0) as net:
    ...     stim = nengo.Node(0.5)
    ...     ens = nengo.Ensemble(20, 1)
    ...     _ = nengo.Connection(stim, ens)
    ...     p = nengo.Probe(ens, synapse=0.01)
    >>> with nengodl.Simulator(net, progress_bar=False) as sim:
    ...     sim.run(0.1)
    >>> sim.data[p].shape
    (100, 1)
    """

    def __init__(
        self,
        network,
        dt=0.001,
        seed=None,
        model=None,
        device=None,
        unroll_simulation=1,
        minibatch_size=None,
        progress_bar=True,
        optimize=True,
        dtype=None,
        jit=True,
        strategy=None,
    ):
        self.closed = True  # until construction succeeds
        self._dist = None
        self.progress_bar = progress_bar
        self.optimize = optimize
        self.device = device
        if minibatch_size is not None:
            if (
                isinstance(minibatch_size, bool)
                or not isinstance(minibatch_size, (int, np.integer))
                or minibatch_size < 1
            ):
                raise ValidationError(
                    f"Must be a positive integer or None (got {minibatch_size!r})",
                    attr="minibatch_size",
                )
            minibatch_size = int(minibatch_size)
        self._minibatch_size = minibatch_size
        self._batch = 1 if minibatch_size is None else minibatch_size
        strategy = resolve_strategy(strategy)
        if strategy is not None:
            check_batch(strategy, minibatch_size)
            if device is not None:
                raise ValidationError(
                    "give either a device or a distribution strategy, not both",
                    attr="device",
                )
            jit = False
            if is_multi_worker(strategy):
                # nengo's merging optimiser is not deterministic across processes
                self.optimize = optimize = False
        if dtype is None:
            net = network if network is not None else getattr(model, "toplevel", None)
            dtype = get_setting(net, "dtype") or os.environ.get("NENGODL_DTYPE", "float32")
        try:
            self.dtype = tf.as_dtype(dtype)
        except TypeError:
            self.dtype = None
        if self.dtype not in (tf.float32, tf.float64):
            raise ValidationError(
                f"Must be 'float32' or 'float64' (got {dtype!r})", attr="dtype"
            )

        if model is None:
            self.model = Model(
                dt=float(dt),
                label=f"{network}, dt={dt:f}",
                decoder_cache=get_default_decoder_cache(),
            )
        else:
            self.model = model

        with Stage("Build", progress_bar):
            if network is not None:
                self.model.build(network)
        self.dg = operator_dependency_graph(self.model.operators)
        if optimize:
            with Stage("Optimization", progress_bar):
                opmerge_optimize(self.model, self.dg)
        if strategy is not None and is_multi_worker(strategy):
            self._step_order = stable_order(self.model.operators, self.dg)
        else:
            self._step_order = [op for op in toposort(self.dg)]

        input_sigs = {}
        self._input_nodes = {}
        for obj, sigs in self.model.sig.items():
            if isinstance(obj, nengo.Node) and obj.size_in == 0:
                sig = sigs.get("out")
                if sig is not None:
                    key = f"node{len(input_sigs)}"
                    input_sigs[key] = sig
                    self._input_nodes[obj] = key

        self.network = network
        toplevel = network if network is not None else self.model.toplevel
        self._trainable_chains = network_chains(toplevel) if toplevel is not None else {}
        trainable = trainable_signals(self.model, toplevel)
        self._trainable_sigs = set(trainable)
        with Stage("Construction", progress_bar):
            with self._device_scope(), self._strategy_scope(strategy):
                self._graph = SimGraph(
                    self.model,
                    self._step_order,
                    input_sigs,
                    self.dtype,
                    self._batch,
                    trainable,
                    jit=jit,
                    lif_smoothing=get_setting(toplevel, "lif_smoothing"),
                    learning_phase=get_setting(toplevel, "learning_phase", False),
                    dg=self.dg,
                )
                self._graph.trace()
            if strategy is not None:
                self._dist = DistributedRunner(self, strategy)
        self._recorder = ProbeRecorder(
            self.model.probes,
            self._graph.probe_sigs,
            self.dt,
            minibatch_size,
        )
        self.data = SimulationData(self.model.params, self._recorder, self)

        if seed is None:
            if network is not None and network.seed is not None:
                seed = network.seed + 1
            else:
                seed = np.random.randint(MAXINT)
        self.closed = False
        self._trained = False
        self._trainer = None
        self._keras_api = None
        self.reset(seed=seed)

    # --- context management --------------------------------------------------

    def __del__(self):
        """Warn (as nengo does) when an open simulator is garbage collected."""
        if not getattr(self, "closed", True):
            warnings.warn(
                f"Simulator with model={self.model} was deallocated while open. "
                "Please close simulators manually to ensure resources are "
                "properly freed.",
                ResourceWarning,
            )

    def __enter__(self):
        if self.closed:
            raise SimulatorClosed("Cannot re-open after simulator is closed")
        return self

    def __exit__(self, exc_type, exc_value, traceback):
        self.close()

    def __getstate__(self):
        graph = self._graph
        state = {
            base: np.asarray(val)
            for base, val in zip(graph.layout.state_bases, self._state)
        }
        host = [
            [
                {b: np.array(sd[b]) for b in h.bases if not b.readonly}
                for sd in h.sigdicts
            ]
            for h in graph.host_ops
        ]
        return {
            "model": self.model,
            "dt": self.dt,
            "seed": self.seed,
            "progress_bar": self.progress_bar,
            "optimize": self.optimize,
            "device": self.device,
            "minibatch_size": self._minibatch_size,
            "dtype": self.dtype.name,
            "closed": self.closed,
            "n_steps": self._n_steps,
            "state": state,
            "host": host,
            "probe_chunks": {p: list(c) for p, c in self._recorder.chunks.items()},
        }

    def __setstate__(self, state):
        self.__init__(
            network=None,
            model=state["model"],
            dt=state["dt"],
            seed=state["seed"],
            progress_bar=state["progress_bar"],
            optimize=False,  # the pickled model is already optimised
            device=state["device"],
            minibatch_size=state["minibatch_size"],
            dtype=state["dtype"],
        )
        graph = self._graph
        self._state = [
            tf.constant(state["state"][base]) for base in graph.layout.state_bases
        ]
        for h, items in zip(graph.host_ops, state["host"]):
            for sd, values in zip(h.sigdicts, items):
                for base, val in values.items():
                    sd[base][...] = val
        self._n_steps = state["n_steps"]
        for probe, chunks in state["probe_chunks"].items():
            self._recorder.chunks[probe] = list(chunks)
        self.optimize = state["optimize"]
        if state["closed"]:
            self.close()

    @staticmethod
    def _strategy_scope(strategy):
        return contextlib.nullcontext() if strategy is None else strategy.scope()

    def _device_scope(self):
        return tf.device(self.device) if self.device is not None else contextlib.nullcontext()

    # --- nengo's simulator API -----------------------------------------------

    @property
    def dt(self):
        """(float) The time step of the simulator."""
        return self.model.dt

    @dt.setter
    def dt(self, dummy):
        raise ReadonlyError(attr="dt", obj=self)

    @property
    def n_steps(self):
        """(int) The current time step of the simulator."""
        return self._n_steps

    @property
    def time(self):
        """(float) The current time of the simulator."""
        return self._n_steps * self.dt

    @property
    def minibatch_size(self):
        """(int or None) Number of simulations run in parallel."""
        return self._minibatch_size

    @property
    def step_order(self):
        """(list) The operators of the model in execution order."""
        return self._step_order

    @property
    def signals(self):
        """Current signal values, as a read-only mapping from `Signal` to array."""
        return SignalValues(self)

    def close(self):
        """Close the simulator; running it afterwards raises `SimulatorClosed`.

        Probe data stays available in `data`.
        """
        self.closed = True

    def clear_probes(self):
        """Clear all probe histories."""
        self._recorder.clear()

    def reset(self, seed=None, *, include_probes=True, include_trainable=False,
              include_processes=True):
        """Reset the simulator state (time, signals, probe data).

        Parameters
        ----------
        seed : int, optional
            New seed for stochastic operators (inputs, noise). Built parameters
            (encoders, decoders, ...) do not change.
        include_probes : bool
            Clear the recorded probe data (NengoDL 3 keyword).
        include_trainable : bool
            Also return trained parameters to their built values (NengoDL 3 keyword).
        include_processes : bool
            Restart input processes and Node functions from the new seed.
        """
        if self.closed:
            raise SimulatorClosed("Cannot reset closed Simulator.")
        if seed is not None:
            self.seed = seed
        self._state = self._graph.initial_state()
        if include_processes:
            self._graph.reset_host(item_seeds(self.seed, self._batch))
        if include_trainable:
            for base, var in self._graph.params.items():
                var.assign(self._graph.layout.initial_value(base))
            for base, (var, _) in self._graph.pinned.items():
                var.assign(self._graph.layout.initial_value(base))
            self._trained = False
        self._n_steps = 0
        if include_probes:
            self.clear_probes()

    def soft_reset(self, include_trainable=False, include_probes=False):
        """NengoDL 3's reset that keeps probe data and trained values by default."""
        self.reset(include_probes=include_probes, include_trainable=include_trainable)

    def run(self, time_in_seconds, data=None, progress_bar=None):
        """Simulate for the given length of time.

        Parameters
        ----------
        time_in_seconds : float
            Amount of time to run (rounded to a whole number of steps).
        data : dict, optional
            Map from input `nengo.Node` to an array of shape
            ``(minibatch_size, n_steps, node.size_out)`` overriding its output.
        progress_bar : bool, optional
            Override the simulator's ``progress_bar`` setting for this run.
        """
        t = check_run_time(time_in_seconds)
        steps = int(np.round(t / self.dt))
        if steps == 0:
            warnings.warn(
                f"{time_in_seconds} results in running for 0 timesteps. Simulator "
                f"still at time {self.time}."
            )
        else:
            self.run_steps(steps, data=data, progress_bar=progress_bar)

    def run_steps(self, n_steps, data=None, progress_bar=None):
        """Simulate for the given number of ``dt`` steps.

        Parameters
        ----------
        n_steps : int
            Number of steps to run.
        data : dict, optional
            As in `run`.
        progress_bar : bool, optional
            Override the simulator's ``progress_bar`` setting for this run.
        """
        if self.closed:
            raise SimulatorClosed("Simulator cannot run because it is closed.")
        n_steps = check_run_steps(n_steps)
        feeds = check_input_data(data, self._input_nodes, n_steps, self._batch)
        if n_steps == 0:
            return
        if progress_bar is None:
            progress_bar = self.progress_bar
        with Stage("Simulation", progress_bar, max_value=n_steps) as stage:
            for key, host in self._graph.pre_ops.items():
                if key in feeds:
                    continue
                out = host.precompute(
                    self._n_steps,
                    n_steps,
                    None if host.output is None else self._graph.feed_dtype(host.output),
                )
                if out is not None:
                    feeds[key] = out
            for key in list(feeds):
                sig_key = self._graph.input_keys.get(key, key)
                feeds[sig_key] = feeds.pop(key)
            feeds = {
                k: np.asarray(v, dtype=self._graph.feed_dtype(self._feed_sig(k)))
                for k, v in feeds.items()
            }
            try:
                runner = self._graph if self._dist is None else self._dist
                with self._device_scope():
                    state, outputs = runner.run(n_steps, self._state, feeds)
            except tf.errors.OpError as e:
                err = self._graph.errors.pop()
                if err is not None:
                    raise err from None
                raise
            self._state = state
            self._recorder.append(self._n_steps, outputs)
            self._n_steps += n_steps
            stage.update(n_steps)

    def _feed_sig(self, key):
        graph = self._graph
        if key in graph.pre_ops:
            return graph.pre_ops[key].output
        return graph.const_inputs[key]

    def step(self, data=None):
        """Advance the simulator by one step (``dt`` seconds)."""
        self.run_steps(1, data=data, progress_bar=False)

    def trange(self, dt=None, sample_every=None):
        """Times of the recorded probe data (starting at ``dt``, not 0).

        Parameters
        ----------
        sample_every : float, optional
            Sampling period of a probe; every step if None.
        """
        if dt is not None:
            if sample_every is not None:
                raise ValidationError(
                    "Cannot specify both `dt` and `sample_every`. "
                    "Use `sample_every` only.",
                    attr="dt",
                    obj=self,
                )
            warnings.warn(
                "`dt` is deprecated. Use `sample_every` instead.", DeprecationWarning
            )
            sample_every = dt
        period = 1 if sample_every is None else sample_every / self.dt
        steps = np.arange(1, self.n_steps + 1)
        return self.dt * steps[steps % period < 1]


    # --- training and evaluation ---------------------------------------------

    def _keras_nodes(self):
        """TensorNodes of the model whose function is a Keras layer."""
        nodes = [getattr(getattr(obj, "op", None), "node", None) for _, _, obj in self._graph.steps]
        return [n for n in nodes if n is not None and n.is_keras]

    def _extra_trainable(self):
        """Trainable variables of Keras layers in TensorNodes."""
        return [
            v
            for node in self._keras_nodes()
            if is_trainable(self._trainable_chains, node)
            for v in node.tensor_func.trainable_variables
        ]

    def _extra_variables(self):
        """All variables of Keras layers in TensorNodes (trainable or not)."""
        return [v for node in self._keras_nodes() for v in node.tensor_func.variables]

    def save_params(self, path, include_state=False):
        """Save the parameters (and optionally the state); see `nengodl.params.save_params`."""
        params.save_params(self, path, include_state=include_state)

    def load_params(self, path, include_state=False):
        """Load parameters saved by `save_params`; see `nengodl.params.load_params`."""
        params.load_params(self, path, include_state=include_state)

    def get_nengo_params(self, objs, as_dict=False):
        """Keyword arguments recreating ``objs`` as trained; see `nengodl.params`."""
        return params.get_nengo_params(self, objs, as_dict=as_dict)

    def freeze_params(self, objs=None):
        """Write trained parameters into the network; see `nengodl.params`."""
        params.freeze_params(self, objs)

    def _get_trainer(self):
        if self.closed:
            raise SimulatorClosed("Simulator cannot train or evaluate: it is closed.")
        if self._trainer is None:
            self._trainer = Trainer(self)
        return self._trainer

    def train(self, data, optimizer, objective=None, n_epochs=1, shuffle=True,
              progress_bar=None, seed=None):
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
        float
            Mean loss of the last epoch.
        """
        return self._get_trainer().train(
            data, optimizer, objective=objective, n_epochs=n_epochs, shuffle=shuffle,
            progress_bar=self.progress_bar if progress_bar is None else progress_bar,
            seed=seed,
        )

    def loss(self, data, objective=None, progress_bar=None, seed=None):
        """Evaluate an objective on ``data`` with the model as defined.

        Spiking neurons stay spiking. Parameters are as for `train`.

        Returns
        -------
        float
            The objective averaged over all minibatches.
        """
        return self._get_trainer().loss(
            data, objective=objective,
            progress_bar=self.progress_bar if progress_bar is None else progress_bar,
            seed=seed,
        )


    def check_gradients(self, data, objective=None, atol=1e-4):
        """Check analytic gradients against finite differences on one minibatch.

        Parameters
        ----------
        data : dict
            Inputs and targets, as for `train`.
        objective : callable or dict, optional
            As for `train`.
        atol : float
            Allowed relative error.

        Returns
        -------
        float
            The largest relative error (a `SimulationError` is raised above ``atol``).
        """
        from nengodl.training import check_gradients

        return check_gradients(self._get_trainer(), data, objective, atol=atol)

    # --- Keras-style API (NengoDL 3) -------------------------------------------

    def _keras(self):
        if self._keras_api is None:
            self._keras_api = KerasAPI(self)
        return self._keras_api

    def compile(self, optimizer=None, loss=None, metrics=None, loss_weights=None):
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
        """
        self._keras().compile(optimizer, loss, metrics, loss_weights)

    def fit(self, x=None, y=None, epochs=1, validation_data=None, callbacks=None,
            shuffle=True, initial_epoch=0, n_steps=None, stateful=False, verbose=1,
            seed=None, batch_size=None):
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

        Returns
        -------
        keras.callbacks.History
        """
        return self._keras().fit(
            x, y, epochs=epochs, validation_data=validation_data, callbacks=callbacks,
            shuffle=shuffle, initial_epoch=initial_epoch, n_steps=n_steps,
            stateful=stateful, verbose=verbose, seed=seed, batch_size=batch_size,
        )

    def evaluate(self, x=None, y=None, n_steps=None, callbacks=None, verbose=1, seed=None,
                 batch_size=None):
        """Compute the compiled losses and metrics (spiking neurons stay spiking).

        Returns
        -------
        dict
            ``loss``, ``<probe>_loss`` and ``<probe>_<metric>`` values.
        """
        return self._keras().evaluate(x, y, n_steps=n_steps, callbacks=callbacks,
                                      verbose=verbose, seed=seed, batch_size=batch_size)

    def predict(self, x=None, n_steps=None, stateful=False, verbose=1, seed=None,
                batch_size=None):
        """Probe outputs for inputs ``x``, each ``(batch, n_steps, size)``.

        Returns
        -------
        dict
            Map from Probe to its output.
        """
        return self._keras().predict(x, n_steps=n_steps, stateful=stateful,
                                     verbose=verbose, seed=seed, batch_size=batch_size)

    def predict_on_batch(self, x=None, n_steps=None):
        """`predict` for exactly one minibatch of inputs."""
        return self._keras().predict(x, n_steps=n_steps, verbose=0)


class SignalValues:
    """Read-only view of the current value of each signal (`Simulator.signals`).

    Values have a leading minibatch axis when the simulator has a minibatch.
    """

    def __init__(self, sim):
        self.sim = sim

    def _bases(self):
        graph = self.sim._graph
        bases = list(graph.layout.state_bases) + list(graph.params)
        for host in graph.host_ops:
            bases.extend(host.bases)
        return list(dict.fromkeys(bases))

    def __iter__(self):
        return iter(self._bases())

    def __len__(self):
        return len(self._bases())

    def keys(self):
        return self._bases()

    def items(self):
        return [(base, self[base]) for base in self._bases()]

    def __getitem__(self, sig):
        out = params.view_value(self.sim, sig)
        return out[0] if self.sim.minibatch_size is None else out

    def __contains__(self, sig):
        return sig.base in self._bases()
