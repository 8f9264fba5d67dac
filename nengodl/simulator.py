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
from nengo.exceptions import BuildError, ReadonlyError, SimulatorClosed, ValidationError
from nengo.utils.simulator import operator_dependency_graph

from nengodl import optimizer
from nengodl.config import get_setting, keeps_history, network_chains, trainable_signals
from nengodl.io.checks import (
    check_device,
    check_dt,
    check_dtype,
    check_input_data,
    check_minibatch_size,
    check_network,
    check_run_steps,
    check_run_time,
    check_seed,
)
from nengodl.io.params import ParamsMethods
from nengodl.io.probes import ProbeRecorder, SimulationData
from nengodl.options import Options
from nengodl.plan import make_plan, operator_order
from nengodl.progress import Stage
from nengodl.runtime.compiled import CompiledRunner
from nengodl.runtime.distributed import (
    DistributedRunner,
    check_batch,
    is_multi_worker,
    resolve_strategy,
)
from nengodl.runtime.numpy_step import NumpyStepper
from nengodl.runtime.seeds import STATEFUL_RANDOM_OPS, graph_ops, graph_seed
from nengodl.runtime.state import RunState, SignalValues
from nengodl.tensor_node import TensorNode
from nengodl.training.methods import KerasMethods, SeedTrainingMethods
from nengodl.training.trainer import Trainer

logger = logging.getLogger(__name__)

MAXINT = np.iinfo(np.int32).max


def item_seeds(seed, minibatch_size):
    """Seeds for the random state of each minibatch item (item 0 uses ``seed``)."""
    extra = np.random.RandomState(seed).randint(MAXINT, size=minibatch_size - 1)
    return [seed] + [int(s) for s in extra]


class Simulator(ParamsMethods, SeedTrainingMethods, KerasMethods):
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
        Seed for all stochastic operators (default ``network.seed + 1``, or random),
        also the graph-level seed of TensorFlow random ops in TensorNodes (so
        ``tf.random.uniform`` in a TensorNode draws the same numbers in every
        simulator with this seed; such a loop runs without XLA, whose random
        streams are the process's).
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
        than ``options.xla_max_steps`` operations, run without XLA).
    strategy : tf.distribute.Strategy, optional
        A `tf.distribute.MirroredStrategy` or
        `tf.distribute.MultiWorkerMirroredStrategy` splitting each minibatch
        across its replicas (default: the strategy whose ``scope()`` is active,
        if any); ``minibatch_size`` is the global batch and must divide evenly.
        XLA is not used under a strategy. See ``docs/distributed.md``.
    options : nengodl.options.Options, optional
        Tuning options of the compiled loop, none of which changes the output
        (default: `Options.from_module`, read now).

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
        self.unroll_simulation = unroll_simulation
        self._jit_requested = jit
        check_network(network)
        if model is None:
            check_dt(dt)
        seed = check_seed(seed)
        if seed is None:
            if network is not None and network.seed is not None:
                seed = network.seed + 1
            else:
                seed = np.random.randint(MAXINT)
        self.seed = seed
        check_device(device)
        self.options = Options.from_module() if options is None else options
        self.progress_bar = progress_bar
        self.optimize = optimize
        self.device = device
        minibatch_size = check_minibatch_size(minibatch_size)
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
        self.dtype = check_dtype(dtype)

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
                optimizer.optimize(self.model, self.dg, self.options)
        self._step_order = operator_order(self.model.operators, self.dg)

        # run-time data can replace the output of any Node without input (but
        # a TensorNode's output is its function's, never data)
        input_nodes = {
            obj: sigs["out"]
            for obj, sigs in self.model.sig.items()
            if isinstance(obj, nengo.Node)
            and obj.size_in == 0
            and not isinstance(obj, TensorNode)
            and sigs.get("out") is not None
        }

        self.network = network
        toplevel = network if network is not None else self.model.toplevel
        self.check_finite = bool(get_setting(toplevel, "check_finite", True))
        self._stateful = bool(get_setting(toplevel, "stateful", True))
        if get_setting(toplevel, "learning_phase") and get_setting(toplevel, "inference_only"):
            raise BuildError(
                "this network is configured with inference_only=True and "
                "learning_phase=True: an inference-only model has no training behaviour "
                "to run with (drop one of the two settings)"
            )
        with Stage("Construction", progress_bar):
            with self._device_scope(), self._strategy_scope(strategy), self.seed_scope():
                self._plan = make_plan(
                    self.model,
                    self._step_order,
                    input_nodes,
                    self.dtype,
                    self._batch,
                    trainable_signals(self.model, toplevel),
                    dg=self.dg,
                    trainable_chains=network_chains(toplevel) if toplevel is not None else {},
                )
                self._runner = CompiledRunner(
                    self._plan,
                    self.options,
                    jit=jit,
                    lif_smoothing=get_setting(toplevel, "lif_smoothing"),
                    learning_phase=get_setting(toplevel, "learning_phase", False),
                    unroll=unroll_simulation,
                    sharding=strategy is None and self._on_cpu(),
                )
                self._runner.trace()
                if self._runner.jit and any(isinstance(n, TensorNode) for n in self.model.sig):
                    traced = self._runner.loop.trace().graph.as_graph_def()
                    if graph_ops(traced) & STATEFUL_RANDOM_OPS:
                        logger.info("stateful random ops in a TensorNode: running without XLA")
                        self._runner.disable_xla()
                        self._runner.loop.make_serial()  # draws in step order
                        self._runner.loop.trace()  # (traced here, with the seed)
            if strategy is not None:
                self._dist = DistributedRunner(self, strategy)
        # probes configured with keep_history=False: one row (the last step) per run
        last_only = [p for p in self.model.probes if not keeps_history(toplevel, p)]
        recorder = ProbeRecorder(
            self.model.probes, self._plan.probe_sigs, self.dt, minibatch_size, last_only
        )
        stepper = None
        if self._dist is None and NumpyStepper.usable(self._runner.loop, self._step_order):
            stepper = NumpyStepper(self._runner.loop, self._step_order)
        self._run_state = RunState(self._runner.loop, recorder, stepper)
        self.data = SimulationData(self.model.params, recorder, self)

        # the Keras layers' weights as built, for reset(include_trainable=True)
        self._initial_extra = [np.array(v.numpy()) for v in self._plan.keras_variables()]
        self.closed = False
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
        return {
            "model": self.model,
            "dt": self.dt,
            "seed": self.seed,
            "progress_bar": self.progress_bar,
            "optimize": self.optimize,
            "device": self.device,
            "minibatch_size": self._minibatch_size,
            "dtype": self.dtype.name,
            "jit": self._jit_requested,
            "unroll_simulation": self.unroll_simulation,
            "options": self.options,
            "distributed": self._dist is not None,
            "closed": self.closed,
            "run_state": self._run_state.snapshot(),
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
        self._run_state.restore(state["run_state"])
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

    # --- the pieces (developer API) ------------------------------------------

    @property
    def plan(self):
        """(`nengodl.plan.Plan`) How the model runs (developer API)."""
        return self._plan

    @property
    def runner(self):
        """(`nengodl.runtime.compiled.CompiledRunner`) Runs of many steps, with
        or without XLA (developer API)."""
        return self._runner

    @property
    def loop(self):
        """(`nengodl.runtime.loop.SimLoop`) The simulation loop and its
        parameter variables (developer API)."""
        return self._runner.loop

    @property
    def run_state(self):
        """(`nengodl.runtime.state.RunState`) Signal values, step count and
        probe data (developer API)."""
        return self._run_state

    @property
    def distributed(self):
        """(`nengodl.runtime.distributed.DistributedRunner` or None) The runner across a
        distribution strategy's replicas (developer API)."""
        return self._dist

    @property
    def trainer(self):
        """(`nengodl.training.Trainer`) The training and evaluation loop that
        both training APIs run on (developer API)."""
        if self.closed:
            raise SimulatorClosed("Simulator cannot train or evaluate: it is closed.")
        if self._trainer is None:
            self._trainer = Trainer(self)
        self._run_state.parameters_changing()  # training may change what the stepper holds
        return self._trainer

    @property
    def jit(self):
        """(bool) Whether runs go through the XLA-compiled loop."""
        return self._runner.jit

    def seed_scope(self):
        """A context in which TensorFlow functions traced get the simulator's seed
        as their graph-level random seed (developer API: every trace of the
        simulation, training included, should happen inside one, so that random
        ops in TensorNodes draw reproducible numbers)."""
        return graph_seed(self.seed)

    @property
    def stateful(self):
        """(bool) Whether runs carry the simulation state on to the next call
        (``configure_settings(stateful=...)``, default True; NengoDL 3)."""
        return self._stateful

    @property
    def keras_model(self):
        """(`nengodl.training.keras_model.SimulatorModel`) NengoDL 3's Keras model
        of the simulation: the model Keras callbacks see in `fit`, with
        ``summary()``, ``weights``, ``get_weights``/``set_weights`` and
        ``save_weights``/``load_weights`` (a `save_params` file, with the
        optimizer's state).

        Examples
        --------
        >>> import nengo, nengodl
        >>> with nengo.Network() as net:
        ...     a = nengo.Node([1.0])
        ...     b = nengo.Node(size_in=2)
        ...     _ = nengo.Connection(a, b, transform=[[1.0], [2.0]])
        ...     p = nengo.Probe(b)
        >>> with nengodl.Simulator(net, progress_bar=False) as sim:
        ...     sim.keras_model.count_params()
        2
        """
        if self.closed:
            raise SimulatorClosed("Simulator has no keras_model: it is closed.")
        return self._keras().model

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
        return self._run_state.n_steps

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
        return self._run_state.n_steps * self.dt

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
        return SignalValues(self._run_state, self._minibatch_size is not None)

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
        self._run_state.recorder.clear()

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
        run = self._run_state
        run.reset()
        if include_processes:
            self._runner.loop.reset_host(item_seeds(self.seed, self._batch))
        if include_trainable:
            for base, var in run.variables().items():
                var.assign(self._plan.layout.initial_value(base))
            for var, value in zip(self._plan.keras_variables(), self._initial_extra):
                var.assign(value)
            run.trained = False
        if include_probes:
            self.clear_probes()

    def soft_reset(self, include_trainable=False, include_probes=False):
        """Deprecated (as in NengoDL 3): use `reset` with the same keywords.

        Equivalent to ``reset(include_trainable=include_trainable,
        include_probes=include_probes, include_processes=False)``: the signals and
        the time are reset; probe data, trained values and the state of
        processes and Node functions are kept.

        Parameters
        ----------
        include_trainable : bool
            Also return trained parameters to their built values.
        include_probes : bool
            Also clear the recorded probe data.

        Examples
        --------
        >>> import warnings
        >>> import nengo, nengodl
        >>> with nengo.Network() as net:
        ...     stim = nengo.Node([0.5])
        ...     p = nengo.Probe(stim)
        >>> with nengodl.Simulator(net, progress_bar=False) as sim:
        ...     sim.run_steps(3)
        ...     with warnings.catch_warnings(record=True):
        ...         sim.soft_reset()
        ...     sim.n_steps, sim.data[p].shape
        (0, (3, 1))
        """
        warnings.warn(
            "Simulator.soft_reset is deprecated, use Simulator.reset(include_trainable=False, "
            "include_probes=False, include_processes=False) instead",
            DeprecationWarning,
            stacklevel=2,
        )
        self.reset(
            include_probes=include_probes,
            include_trainable=include_trainable,
            include_processes=False,
        )

    def run(self, time_in_seconds, data=None, progress_bar=None, stateful=True):
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
        stateful : bool
            As in `run_steps`.

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
            self.run_steps(steps, data=data, progress_bar=progress_bar, stateful=stateful)

    def run_steps(self, n_steps, data=None, progress_bar=None, stateful=True):
        """Simulate for the given number of ``dt`` steps.

        Parameters
        ----------
        n_steps : int
            Number of steps to run.
        data : dict, optional
            As in `run`.
        progress_bar : bool, optional
            Override the simulator's ``progress_bar`` setting for this run.
        stateful : bool
            Whether the run carries the simulation on (NengoDL 3). With False
            the run starts where the simulator stands and its probe data is
            recorded, but the simulator's signals, `n_steps` and `time` stay as
            they were before it (the next run starts from the same state; the
            internal state of Python Node functions and processes computed on the
            host is not rewound). ``configure_settings(stateful=False)`` makes
            every run behave so.

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

        A run that leaves the simulator where it was:

        >>> with nengodl.Simulator(net, progress_bar=False) as sim:
        ...     sim.run_steps(3, stateful=False)
        >>> sim.n_steps, sim.data[p].shape
        (0, (3, 1))
        """
        if self.closed:
            raise SimulatorClosed("Simulator cannot run because it is closed.")
        n_steps = check_run_steps(n_steps)
        if not isinstance(stateful, (bool, np.bool_)):
            raise ValidationError(f"Must be True or False (got {stateful!r})", attr="stateful")
        stateful = bool(stateful) and self._stateful
        run, plan = self._run_state, self._plan
        if n_steps == 1 and not data and stateful and run.step_numpy():
            return  # a single step costs less in numpy than a call of the compiled loop
        feeds = check_input_data(
            data, plan.node_keys, n_steps, self._batch, finite=self.check_finite
        )
        if n_steps == 0:
            return
        if progress_bar is None:
            progress_bar = self.progress_bar
        before = None if stateful else (run.tensors, run.host_values())
        feeds = plan.complete_feeds(feeds, run.n_steps, n_steps)
        runner = self._runner if self._dist is None else self._dist
        if runner is self._runner and self._runner.needs_compile(n_steps, feeds):
            # reported apart, so that the simulation's time is the loop's own
            with Stage("Compilation", progress_bar), self._device_scope(), self.seed_scope():
                self._runner.compile(run.tensors, feeds)
        with Stage("Simulation", progress_bar, max_value=n_steps) as stage:
            try:
                with self._device_scope(), self.seed_scope():
                    state, outputs = runner.run(n_steps, run.tensors, feeds)
            except tf.errors.OpError:
                err = plan.errors.pop()
                if err is not None:
                    raise err from None
                raise
            if stateful:
                # a constant Node given data in this run is itself again in the next
                state = self._runner.loop.restore_constants(state, feeds)
                run.advance(n_steps, state, outputs)
            else:
                run.recorder.append(run.n_steps, outputs)
                run.tensors = before[0]
                run.set_host_values(before[1])
            stage.update(n_steps)

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
