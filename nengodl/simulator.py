"""`nengodl.Simulator`: nengo's simulator API on a compiled TensorFlow loop."""

import dataclasses
import warnings

from nengo.exceptions import ReadonlyError, SimulatorClosed, ValidationError

from nengodl.build import build_simulation, resolve_dtype, resolve_seed
from nengodl.io.checks import (
    check_device,
    check_dt,
    check_minibatch_size,
    check_network,
    check_seed,
)
from nengodl.io.params import ParamsMethods
from nengodl.io.probes import SimulationData
from nengodl.options import Options
from nengodl.runtime.distributed import (
    DistributedRunner,
    check_batch,
    is_multi_worker,
    resolve_strategy,
)
from nengodl.runtime.methods import RunMethods
from nengodl.runtime.seeds import graph_seed
from nengodl.runtime.state import SignalValues
from nengodl.training.executor import Executor
from nengodl.training.keras_methods import KerasMethods
from nengodl.training.seed_methods import SeedTrainingMethods
from nengodl.training.trainer import Trainer


class Simulator(RunMethods, ParamsMethods, SeedTrainingMethods, KerasMethods):
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
        Floating point precision, ``"float16"``, ``"float32"`` or ``"float64"``
        (float16 computes LIF rates, and their gradients, in float32: their range
        near the threshold overflows float16's). The default is
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
        (default: ``Options()``).

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
        self.seed = resolve_seed(check_seed(seed), network)
        check_device(device)
        if options is not None and not isinstance(options, Options):
            raise ValidationError(
                f"Must be a nengodl.options.Options (got {options!r})", attr="options", obj=self
            )
        self.options = Options() if options is None else options
        self.progress_bar = progress_bar
        self.device = device
        minibatch_size = check_minibatch_size(minibatch_size)
        self._minibatch_size = minibatch_size
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
                # merging is the same in every process now, but multi-worker runs
                # are only tested without it
                optimize = False
        self.optimize = optimize
        self.dtype = resolve_dtype(dtype, network, model)
        self.network = network
        built = build_simulation(
            network,
            model,
            dt=dt,
            seed=self.seed,
            dtype=self.dtype,
            minibatch_size=minibatch_size,
            optimize=optimize,
            options=self.options,
            jit=jit,
            unroll=unroll_simulation,
            device=device,
            strategy=strategy,
            progress_bar=progress_bar,
        )
        self.model, self.dg, self._step_order = built.model, built.dg, built.step_order
        self._plan, self._runner, self._run_state = built.plan, built.runner, built.run_state
        self.check_finite, self._stateful = built.check_finite, built.stateful
        if strategy is not None:
            self._dist = DistributedRunner(self, strategy)
        self.data = SimulationData(self.model.params, built.run_state.recorder, self)
        self.closed = False
        self._trainer = None
        self._executor = None
        self._keras_api = None
        self.reset(seed=self.seed)

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
        options = state.get("options") or Options()
        self.__init__(
            network=None,
            model=state["model"],
            dt=state["dt"],
            seed=state["seed"],
            progress_bar=state["progress_bar"],
            # the pickled model is merged and packed already: the planner merges
            # its operators again in the same way (and leaves its signals as they
            # are); nengo's merger, which could merge the packed signals further, not
            optimize=state["optimize"],
            options=dataclasses.replace(options, nengo_merge_ops=0),
            device=state["device"],
            minibatch_size=state["minibatch_size"],
            dtype=state["dtype"],
            jit=state.get("jit", True),
            unroll_simulation=state.get("unroll_simulation", 1),
        )
        if state.get("distributed") and self._dist is None:
            warnings.warn(
                "this simulator was pickled with a distribution strategy, which cannot be "
                "pickled; it runs without one (unpickle it inside `strategy.scope()` to "
                "use one)"
            )
        self._run_state.restore(state["run_state"])
        self.options = options
        if state["closed"]:
            self.close()

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
    def executor(self):
        """(`nengodl.training.executor.Executor`) Runs the minibatches of training,
        evaluation and prediction, through the distribution strategy (developer API)."""
        trainer = self.trainer  # raises once closed
        if self._executor is None:
            self._executor = Executor(self, trainer)
        return self._executor

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
    def unroll(self):
        """(int) NengoDL 3's name of ``unroll_simulation`` (read-only)."""
        return self.unroll_simulation

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

    # --- training and evaluation ---------------------------------------------
