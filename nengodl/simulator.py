"""`nengodl.Simulator`: nengo's simulator API on a compiled TensorFlow loop."""

import contextlib
import logging
import os
import warnings

import nengo
import numpy as np
import tensorflow as tf
from nengo.builder import Model
from nengo.cache import get_default_decoder_cache
from nengo.exceptions import ReadonlyError, SimulationError, SimulatorClosed, ValidationError
from nengo.utils.graphs import toposort
from nengo.utils.simulator import operator_dependency_graph

from nengodl import optimizer, params
from nengodl.config import get_setting, is_trainable, network_chains, trainable_signals
from nengodl.data import (
    check_input_data,
    check_run_steps,
    check_run_time,
    check_seed,
)
from nengodl.distribute import (
    DistributedRunner,
    check_batch,
    is_multi_worker,
    resolve_strategy,
    stable_order,
)
from nengodl.graph import SimGraph
from nengodl.keras_api import KerasAPI
from nengodl.probes import ProbeRecorder, SimulationData
from nengodl.progress import Stage
from nengodl.runtime.numpy_step import NumpyStepper
from nengodl.tensor_node import TensorNode
from nengodl.training import Trainer

logger = logging.getLogger(__name__)

MAXINT = np.iinfo(np.int32).max


def check_device(device):
    """Refuse a device string that names no device TensorFlow can see."""
    if device is None:
        return
    try:
        spec = tf.DeviceSpec.from_string(device)
    except (TypeError, ValueError) as e:
        raise ValidationError(f"Not a device string ({e})", attr="device") from None
    names = [d.name for d in tf.config.list_logical_devices()]
    for name in names:
        have = tf.DeviceSpec.from_string(name)
        if spec.device_type and spec.device_type.upper() != (have.device_type or "").upper():
            continue
        if spec.device_index is not None and spec.device_index != have.device_index:
            continue
        return
    raise ValidationError(
        f"No device {device!r} here; the devices TensorFlow sees are {names}", attr="device"
    )


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
        Simulation steps per iteration of the time loop (1: not unrolled).
        Unrolling cuts loop overhead when the loop runs without XLA (a model
        whose loop calls Python code, or ``jit=False``); the XLA-compiled loop
        is not unrolled (XLA's compile time and memory would grow faster than
        ``unroll_simulation``, and the loop would get slower; see
        docs/performance.md). Output does not depend on it.
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
    options : nengodl.options.Options, optional
        Tuning options of the compiled loop, none of which changes the output
        (default: from the module-level names such as
        ``nengodl.graph.XLA_MAX_STEPS``, read now).

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
        options=None,
    ):
        self.closed = True  # until construction succeeds
        self._dist = None
        self._stepper = None
        self.unroll_simulation = unroll_simulation
        self.jit = jit
        if network is not None and not isinstance(network, nengo.Network):
            raise ValidationError(
                f"Must be a nengo.Network (got {type(network).__name__} {network!r}); "
                "put the objects to simulate in a network",
                attr="network",
            )
        if model is None:
            try:
                dt_ok = float(dt) > 0 and np.isfinite(float(dt))
            except (TypeError, ValueError):
                dt_ok = False
            if not dt_ok:
                raise ValidationError(f"Must be a positive number (got {dt!r})", attr="dt")
        seed = check_seed(seed)
        check_device(device)
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
            raise ValidationError(f"Must be 'float32' or 'float64' (got {dtype!r})", attr="dtype")

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
                optimizer.optimize(self.model, self.dg)
        if strategy is not None and is_multi_worker(strategy):
            self._step_order = stable_order(self.model.operators, self.dg)
        else:
            self._step_order = [op for op in toposort(self.dg)]

        input_sigs = {}
        self._input_nodes = {}
        for obj, sigs in self.model.sig.items():
            # a TensorNode's output is its function's, never data
            if (
                isinstance(obj, nengo.Node)
                and obj.size_in == 0
                and not isinstance(obj, TensorNode)
            ):
                sig = sigs.get("out")
                if sig is not None:
                    key = f"node{len(input_sigs)}"
                    input_sigs[key] = sig
                    self._input_nodes[obj] = key

        self.network = network
        toplevel = network if network is not None else self.model.toplevel
        self.check_finite = bool(get_setting(toplevel, "check_finite", True))
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
                    unroll=unroll_simulation,
                    sharding=strategy is None and self._on_cpu(),
                    options=options,
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
        if self._dist is None and NumpyStepper.usable(self._graph, self._step_order):
            self._stepper = NumpyStepper(self._graph, self._step_order, self._graph.probe_sigs)

        if seed is None:
            if network is not None and network.seed is not None:
                seed = network.seed + 1
            else:
                seed = np.random.randint(MAXINT)
        # the Keras layers' weights as built, for reset(include_trainable=True)
        self._initial_extra = [np.array(v.numpy()) for v in self._extra_variables()]
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
        state = {base: np.asarray(val) for base, val in zip(graph.layout.state_bases, self._state)}
        host = [
            [{b: np.array(sd[b]) for b in h.bases if not b.readonly} for sd in h.sigdicts]
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
            "jit": self.jit,
            "unroll_simulation": self.unroll_simulation,
            "options": self._graph.options,
            "distributed": self._dist is not None,
            # by base signal (pickled with the model, so the keys are the loaded model's)
            "params": {
                base: np.array(var.numpy())
                for base, var in [*graph.params.items(), *graph.pinned_variables()]
            },
            "trained": self._trained,
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
            jit=state.get("jit", True),
            unroll_simulation=state.get("unroll_simulation", 1),
            options=state.get("options"),
        )
        if state.get("distributed") and self._dist is None:
            warnings.warn(
                "this simulator was pickled with a distribution strategy, which cannot be "
                "pickled; it runs without one (unpickle it inside `strategy.scope()` to "
                "use one)"
            )
        graph = self._graph
        saved = state.get("params", {})
        for base, var in [*graph.params.items(), *graph.pinned_variables()]:
            if base in saved:
                var.assign(saved[base])
        self._trained = state.get("trained", False)
        self._state = [tf.constant(state["state"][base]) for base in graph.layout.state_bases]
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

    def _on_cpu(self):
        """Whether the simulation runs on a CPU (TensorFlow places it on a GPU if
        one is visible and no device is given)."""
        if self.device is not None:
            return "cpu" in self.device.lower()
        return not tf.config.list_logical_devices("GPU")

    @property
    def _state(self):
        """The state tensors (taken back from the numpy stepper if it holds the
        current values; it then loads them and the parameters again at its next
        step, so whatever the caller changes is seen)."""
        if self._stepper is not None and self._stepper.active:
            self._tensors = self._stepper.unload(self._tensors)
        return self._tensors

    @_state.setter
    def _state(self, tensors):
        if self._stepper is not None:
            self._stepper.active = False
        self._tensors = tensors

    def _numpy_step(self):
        """One step through the numpy stepper; False where it cannot run this model."""
        stepper = self._stepper
        if not stepper.active:
            try:
                stepper.load(self._tensors)
            except (NotImplementedError, SimulationError):
                self._stepper = None  # an operator without a numpy step function
                return False
        values = stepper.step()
        self._recorder.append_step(self._n_steps, values)
        self._n_steps += 1
        return True

    # --- nengo's simulator API -----------------------------------------------

    @property
    def dt(self):
        """(float) The time step of the simulator (read-only).

        Examples
        --------
        >>> import nengo, nengodl
        >>> with nengo.Network() as net:
        ...     stim = nengo.Node([0.5])
        ...     p = nengo.Probe(stim)
        >>> with nengodl.Simulator(net, dt=0.002, progress_bar=False) as sim:
        ...     sim.run_steps(5)
        >>> sim.dt, sim.n_steps, round(sim.time, 6)
        (0.002, 5, 0.01)
        """
        return self.model.dt

    @dt.setter
    def dt(self, dummy):
        raise ReadonlyError(attr="dt", obj=self)

    @property
    def n_steps(self):
        """(int) The current time step of the simulator (steps run since the last reset).

        Examples
        --------
        >>> import nengo, nengodl
        >>> with nengo.Network() as net:
        ...     stim = nengo.Node([0.5])
        ...     p = nengo.Probe(stim)
        >>> with nengodl.Simulator(net, progress_bar=False) as sim:
        ...     sim.run(0.01)
        >>> sim.n_steps
        10
        """
        return self._n_steps

    @property
    def time(self):
        """(float) The current time of the simulator, ``n_steps * dt`` seconds.

        Examples
        --------
        >>> import nengo, nengodl
        >>> with nengo.Network() as net:
        ...     stim = nengo.Node([0.5])
        ...     p = nengo.Probe(stim)
        >>> with nengodl.Simulator(net, progress_bar=False) as sim:
        ...     sim.run_steps(250)
        >>> sim.time
        0.25
        """
        return self._n_steps * self.dt

    @property
    def minibatch_size(self):
        """(int or None) Number of simulations run in parallel.

        Examples
        --------
        >>> import nengo, nengodl
        >>> with nengo.Network() as net:
        ...     stim = nengo.Node([0.5])
        ...     p = nengo.Probe(stim)
        >>> with nengodl.Simulator(net, minibatch_size=4, progress_bar=False) as sim:
        ...     sim.run_steps(3)
        >>> sim.minibatch_size, sim.data[p].shape
        (4, (4, 3, 1))
        """
        return self._minibatch_size

    @property
    def step_order(self):
        """(list) The operators of the model in execution order.

        Examples
        --------
        >>> import nengo, nengodl
        >>> with nengo.Network() as net:
        ...     stim = nengo.Node([0.5])
        ...     p = nengo.Probe(stim)
        >>> with nengodl.Simulator(net, progress_bar=False) as sim:
        ...     ops = sim.step_order
        >>> all(op in sim.model.operators for op in ops)
        True
        """
        return self._step_order

    @property
    def signals(self):
        """Current signal values, as a read-only mapping from `Signal` to array.

        Values have a leading minibatch axis when the simulator has a minibatch.

        Examples
        --------
        >>> import nengo, nengodl
        >>> with nengo.Network() as net:
        ...     stim = nengo.Node([0.5])
        >>> with nengodl.Simulator(net, progress_bar=False) as sim:
        ...     sim.step()
        ...     sim.signals[sim.model.sig[stim]["out"]]
        array([0.5])
        """
        return SignalValues(self)

    def close(self):
        """Close the simulator; running it afterwards raises `SimulatorClosed`.

        Probe data stays available in `data`.

        Examples
        --------
        >>> import nengo, nengodl
        >>> with nengo.Network() as net:
        ...     stim = nengo.Node([0.5])
        ...     p = nengo.Probe(stim)
        >>> sim = nengodl.Simulator(net, progress_bar=False)
        >>> sim.run_steps(3)
        >>> sim.close()
        >>> sim.closed, sim.data[p].shape
        (True, (3, 1))
        """
        self.closed = True

    def clear_probes(self):
        """Clear all probe histories (the simulation time and state are kept).

        Examples
        --------
        >>> import nengo, nengodl
        >>> with nengo.Network() as net:
        ...     stim = nengo.Node([0.5])
        ...     p = nengo.Probe(stim)
        >>> with nengodl.Simulator(net, progress_bar=False) as sim:
        ...     sim.run_steps(3)
        ...     sim.clear_probes()
        ...     sim.data[p].shape, sim.n_steps
        ((0, 1), 3)
        """
        self._recorder.clear()

    def reset(
        self, seed=None, *, include_probes=True, include_trainable=False, include_processes=True
    ):
        """Reset the simulator state (time, signals, probe data).

        Parameters
        ----------
        seed : int, optional
            New seed for stochastic operators (inputs, noise). Built parameters
            (encoders, decoders, ...) do not change.
        include_probes : bool
            Clear the recorded probe data (NengoDL 3 keyword).
        include_trainable : bool
            Also return trained parameters (Keras layers' weights in TensorNodes
            included) to their built values (NengoDL 3 keyword).
        include_processes : bool
            Restart input processes and Node functions from the new seed.

        Examples
        --------
        >>> import nengo, nengodl
        >>> with nengo.Network() as net:
        ...     stim = nengo.Node([0.5])
        ...     p = nengo.Probe(stim)
        >>> with nengodl.Simulator(net, progress_bar=False) as sim:
        ...     sim.run_steps(3)
        ...     sim.reset()
        ...     sim.n_steps, sim.data[p].shape
        (0, (0, 1))
        """
        if self.closed:
            raise SimulatorClosed("Cannot reset closed Simulator.")
        seed = check_seed(seed)  # before anything changes
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
            for var, value in zip(self._extra_variables(), self._initial_extra):
                var.assign(value)
            self._trained = False
        self._n_steps = 0
        if include_probes:
            self.clear_probes()

    def soft_reset(self, include_trainable=False, include_probes=False):
        """NengoDL 3's reset that keeps probe data and trained values by default.

        Parameters
        ----------
        include_trainable : bool
            Also return trained parameters to their built values.
        include_probes : bool
            Also clear the recorded probe data.

        Examples
        --------
        >>> import nengo, nengodl
        >>> with nengo.Network() as net:
        ...     stim = nengo.Node([0.5])
        ...     p = nengo.Probe(stim)
        >>> with nengodl.Simulator(net, progress_bar=False) as sim:
        ...     sim.run_steps(3)
        ...     sim.soft_reset()
        ...     sim.n_steps, sim.data[p].shape
        (0, (3, 1))
        """
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

        Examples
        --------
        >>> import nengo, nengodl
        >>> with nengo.Network() as net:
        ...     stim = nengo.Node([0.5])
        ...     p = nengo.Probe(stim)
        >>> with nengodl.Simulator(net, progress_bar=False) as sim:
        ...     sim.run(0.005)
        ...     sim.run(0.005)  # continues where the first run stopped
        >>> sim.n_steps, sim.data[p].shape
        (10, (10, 1))
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

        Examples
        --------
        Two simulations in one run, each with its own input data:

        >>> import nengo, nengodl
        >>> with nengo.Network() as net:
        ...     stim = nengo.Node([0.5])
        ...     p = nengo.Probe(stim)
        >>> with nengodl.Simulator(net, minibatch_size=2, progress_bar=False) as sim:
        ...     sim.run_steps(4, data={stim: np.arange(8.0).reshape((2, 4, 1))})
        >>> sim.data[p][..., 0]
        array([[0., 1., 2., 3.],
               [4., 5., 6., 7.]])
        """
        if self.closed:
            raise SimulatorClosed("Simulator cannot run because it is closed.")
        n_steps = check_run_steps(n_steps)
        if n_steps == 1 and not data and self._stepper is not None and self._numpy_step():
            return  # a single step costs less in numpy than a call of the compiled loop
        feeds = check_input_data(
            data, self._input_nodes, n_steps, self._batch, finite=self.check_finite
        )
        if n_steps == 0:
            return
        if progress_bar is None:
            progress_bar = self.progress_bar
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
        runner = self._graph if self._dist is None else self._dist
        if runner is self._graph and self._graph.uncompiled(n_steps, feeds):
            # reported apart, so that the simulation's time is the loop's own
            with Stage("Compilation", progress_bar), self._device_scope():
                self._graph.compile(n_steps, self._state, feeds)
        with Stage("Simulation", progress_bar, max_value=n_steps) as stage:
            try:
                with self._device_scope():
                    state, outputs = runner.run(n_steps, self._state, feeds)
            except tf.errors.OpError:
                err = self._graph.errors.pop()
                if err is not None:
                    raise err from None
                raise
            # a constant Node given data in this run is itself again in the next
            self._state = self._graph.restore_constants(state, feeds)
            self._recorder.append(self._n_steps, outputs)
            self._n_steps += n_steps
            stage.update(n_steps)

    def _feed_sig(self, key):
        graph = self._graph
        if key in graph.pre_ops:
            return graph.pre_ops[key].output
        return graph.const_inputs[key]

    def step(self, data=None):
        """Advance the simulator by one step (``dt`` seconds).

        Parameters
        ----------
        data : dict, optional
            As in `run`, with ``n_steps`` 1.

        Examples
        --------
        >>> import nengo, nengodl
        >>> with nengo.Network() as net:
        ...     stim = nengo.Node([0.5])
        ...     p = nengo.Probe(stim)
        >>> with nengodl.Simulator(net, progress_bar=False) as sim:
        ...     sim.step()
        ...     sim.step()
        >>> sim.n_steps, sim.time
        (2, 0.002)
        """
        self.run_steps(1, data=data, progress_bar=False)

    def trange(self, dt=None, sample_every=None):
        """Times of the recorded probe data (starting at ``dt``, not 0).

        Parameters
        ----------
        dt : float, optional
            Deprecated name of ``sample_every`` (as in nengo).
        sample_every : float, optional
            Sampling period of a probe; every step if None.

        Returns
        -------
        numpy.ndarray
            One time (in seconds) per recorded sample.

        Examples
        --------
        >>> import nengo, nengodl
        >>> with nengo.Network() as net:
        ...     stim = nengo.Node([0.5])
        ...     p = nengo.Probe(stim)
        >>> with nengodl.Simulator(net, progress_bar=False) as sim:
        ...     sim.run_steps(4)
        >>> sim.trange()
        array([0.001, 0.002, 0.003, 0.004])
        >>> sim.trange(sample_every=0.002)
        array([0.002, 0.004])
        """
        if dt is not None:
            if sample_every is not None:
                raise ValidationError(
                    "Cannot specify both `dt` and `sample_every`. Use `sample_every` only.",
                    attr="dt",
                    obj=self,
                )
            warnings.warn("`dt` is deprecated. Use `sample_every` instead.", DeprecationWarning)
            sample_every = dt
        period = 1 if sample_every is None else sample_every / self.dt
        steps = np.arange(1, self.n_steps + 1)
        return self.dt * steps[steps % period < 1]

    # --- training and evaluation ---------------------------------------------

    def _keras_nodes(self):
        """TensorNodes of the model whose function is a Keras layer."""
        nodes = [
            getattr(getattr(obj, "op", None), "node", None) for _, _, obj in self._graph.steps
        ]
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
        """Save all parameters (and optionally the simulation state) to a ``.npz`` file.

        Parameters
        ----------
        path : str
            File name; ``.npz`` is appended if missing.
        include_state : bool
            Also save the simulation state (signal values and time).

        Examples
        --------
        >>> import os, tempfile
        >>> import nengo, nengodl
        >>> with nengo.Network() as net:
        ...     stim = nengo.Node([0.5])
        ...     p = nengo.Probe(stim)
        >>> path = os.path.join(tempfile.mkdtemp(), "params")
        >>> with nengodl.Simulator(net, progress_bar=False) as sim:
        ...     sim.save_params(path)
        >>> os.path.exists(path + ".npz")
        True
        """
        params.save_params(self, path, include_state=include_state)

    def load_params(self, path, include_state=False):
        """Load parameters (and optionally the state) saved by `save_params`.

        Parameters
        ----------
        path : str
            File name; ``.npz`` is appended if missing.
        include_state : bool
            Also restore the simulation state saved with ``include_state=True``.

        Raises
        ------
        nengo.exceptions.ValidationError
            If the file does not match this simulator's model.

        Examples
        --------
        Save a connection weight, train it away, and restore it:

        >>> import os, tempfile
        >>> import keras, nengo, nengodl
        >>> with nengo.Network() as net:
        ...     a = nengo.Node([1.0])
        ...     b = nengo.Node(size_in=1)
        ...     conn = nengo.Connection(a, b, transform=2.0, synapse=None)
        ...     p = nengo.Probe(b)
        >>> data = {a: np.ones((1, 1, 1)), p: np.full((1, 1, 1), 0.5)}  # target: b = 0.5
        >>> path = os.path.join(tempfile.mkdtemp(), "params")
        >>> with nengodl.Simulator(net, progress_bar=False) as sim:
        ...     sim.save_params(path)
        ...     _ = sim.train(data, keras.optimizers.SGD(0.25), n_epochs=3)
        ...     trained = float(sim.data[conn].weights)
        ...     sim.load_params(path)
        ...     restored = float(sim.data[conn].weights)
        >>> trained, restored
        (0.6875, 2.0)
        """
        self._state  # noqa: B018 (the stepper reloads the parameters at its next step)
        params.load_params(self, path, include_state=include_state)

    def get_nengo_params(self, objs, as_dict=False):
        """Keyword arguments that recreate ``objs``, with trained values, in plain nengo.

        Parameters
        ----------
        objs : Ensemble, Connection or list of them
            The objects.
        as_dict : bool
            Return a dict keyed by each object's label instead of a list.

        Returns
        -------
        dict, list or dict of dicts
            For an Ensemble: ``encoders``, ``normalize_encoders``, ``gain``, ``bias``,
            ``max_rates``, ``intercepts``; for a Connection: ``transform`` (and
            ``solver``, ``function`` for decoded connections).

        Examples
        --------
        >>> import nengo, nengodl
        >>> with nengo.Network(seed=0) as net:
        ...     ens = nengo.Ensemble(10, 1)
        >>> with nengodl.Simulator(net, progress_bar=False) as sim:
        ...     params = sim.get_nengo_params(ens)
        >>> sorted(params)
        ['bias', 'encoders', 'gain', 'intercepts', 'max_rates', 'normalize_encoders']
        >>> with nengo.Network() as copy:
        ...     same = nengo.Ensemble(10, 1, **params)
        """
        return params.get_nengo_params(self, objs, as_dict=as_dict)

    def freeze_params(self, objs=None):
        """Write trained parameters into the network objects.

        Afterwards any simulator, ``nengo.Simulator`` included, runs the trained model.

        Parameters
        ----------
        objs : Network, Ensemble, Connection or list, optional
            What to freeze (default: the simulator's whole network).

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
        ...     _ = sim.train(data, keras.optimizers.SGD(0.25), n_epochs=10)
        ...     sim.freeze_params()
        >>> with nengo.Simulator(net, progress_bar=False) as nengo_sim:
        ...     nengo_sim.step()
        >>> round(float(nengo_sim.data[p][0, 0]), 4)  # was 2.0 before training
        0.5015
        """
        params.freeze_params(self, objs)

    def _get_trainer(self):
        if self.closed:
            raise SimulatorClosed("Simulator cannot train or evaluate: it is closed.")
        if self._trainer is None:
            self._trainer = Trainer(self)
        self._state  # noqa: B018 (training may change parameters the stepper holds)
        return self._trainer

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
        return self._get_trainer().train(
            data,
            optimizer,
            objective=objective,
            n_epochs=n_epochs,
            shuffle=shuffle,
            progress_bar=self.progress_bar if progress_bar is None else progress_bar,
            seed=seed,
        )

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
        return self._get_trainer().loss(
            data,
            objective=objective,
            progress_bar=self.progress_bar if progress_bar is None else progress_bar,
            seed=seed,
        )

    def check_gradients(self, data, objective=None, atol=None):
        """Check analytic gradients against finite differences on one minibatch.

        Parameters
        ----------
        data : dict
            Inputs and targets, as for `train`.
        objective : callable or dict, optional
            As for `train`.
        atol : float, optional
            Allowed relative error (default 1e-4 in float64, 1e-2 in float32).

        Returns
        -------
        float
            The largest relative error (a `SimulationError` is raised above ``atol``).

        Examples
        --------
        >>> import keras, nengo, nengodl
        >>> with nengo.Network() as net:
        ...     a = nengo.Node([1.0])
        ...     b = nengo.Node(size_in=1)
        ...     conn = nengo.Connection(a, b, transform=2.0, synapse=None)
        ...     p = nengo.Probe(b)
        >>> data = {a: np.ones((1, 1, 1)), p: np.full((1, 1, 1), 0.5)}  # target: b = 0.5
        >>> with nengodl.Simulator(net, dtype="float64", progress_bar=False) as sim:
        ...     bool(sim.check_gradients(data) < 1e-4)
        True
        >>> with nengodl.Simulator(net, dtype="float32", progress_bar=False) as sim:
        ...     bool(sim.check_gradients(data) < 1e-2)
        True
        """
        from nengodl.training import check_gradients

        return check_gradients(self._get_trainer(), data, objective, atol=atol)

    # --- Keras-style API (NengoDL 3) -------------------------------------------

    def _keras(self):
        if self._keras_api is None:
            self._keras_api = KerasAPI(self)
        self._state  # noqa: B018 (training may change parameters the stepper holds)
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
        self._keras().compile(optimizer, loss, metrics, loss_weights)

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
            Must be False: every minibatch starts from the initial state.
        verbose : int
            0: no output; otherwise a progress bar (if the simulator's
            ``progress_bar`` is on).
        seed : int, optional
            Seed for shuffling and for inputs computed by Nodes not in ``x``.
        batch_size : int, optional
            Accepted for Keras compatibility and ignored: minibatches have the
            simulator's ``minibatch_size``.

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
        return self._keras().fit(
            x,
            y,
            epochs=epochs,
            validation_data=validation_data,
            callbacks=callbacks,
            shuffle=shuffle,
            initial_epoch=initial_epoch,
            n_steps=n_steps,
            stateful=stateful,
            verbose=verbose,
            seed=seed,
            batch_size=batch_size,
        )

    def evaluate(
        self, x=None, y=None, n_steps=None, callbacks=None, verbose=1, seed=None, batch_size=None
    ):
        """Compute the compiled losses and metrics (spiking neurons stay spiking).

        Parameters
        ----------
        x, y : dict or array
            Inputs and targets, as for `fit`.
        n_steps : int, optional
            Number of steps to simulate when ``x`` is empty.
        callbacks : list of keras.callbacks.Callback, optional
            Keras callbacks.
        verbose : int
            0: no output; otherwise a progress bar (if the simulator's
            ``progress_bar`` is on).
        seed : int, optional
            Seed for inputs computed by Nodes not in ``x``.
        batch_size : int, optional
            Accepted for Keras compatibility.

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
        (['loss', 'probe_0_loss', 'probe_0_mean_absolute_error'], 4.0)
        """
        return self._keras().evaluate(
            x,
            y,
            n_steps=n_steps,
            callbacks=callbacks,
            verbose=verbose,
            seed=seed,
            batch_size=batch_size,
        )

    def predict(self, x=None, n_steps=None, stateful=False, verbose=1, seed=None, batch_size=None):
        """Probe outputs for inputs ``x``, each ``(batch, n_steps, size)``.

        Parameters
        ----------
        x : dict or array
            Inputs, as for `fit`.
        n_steps : int, optional
            Number of steps to simulate when ``x`` is empty.
        stateful : bool
            Must be False.
        verbose : int
            0: no output; otherwise a progress bar (if the simulator's
            ``progress_bar`` is on).
        seed : int, optional
            Seed for inputs computed by Nodes not in ``x``.
        batch_size : int, optional
            Accepted for Keras compatibility.

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
        return self._keras().predict(
            x,
            n_steps=n_steps,
            stateful=stateful,
            verbose=verbose,
            seed=seed,
            batch_size=batch_size,
        )

    def predict_on_batch(self, x=None, n_steps=None):
        """`predict` for exactly one minibatch of inputs.

        Parameters
        ----------
        x : dict or array
            Inputs, ``(minibatch_size, n_steps, size)``.
        n_steps : int, optional
            Number of steps to simulate when ``x`` is empty.

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
