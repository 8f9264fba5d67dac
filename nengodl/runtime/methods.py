"""nengo's run API of a `Simulator`: run, step, reset, probe data times.

`RunMethods` is a part of `nengodl.Simulator` (a mixin): each method checks
its arguments, then hands the work to the simulator's pieces through their
public interfaces: the `CompiledRunner` (or the distributed runner) runs the
steps, the `RunState` holds the signals, the step count and the probe data,
and the numpy stepper takes single steps.
"""

import warnings

import numpy as np
from nengo.exceptions import SimulatorClosed, ValidationError

from nengodl.build import device_scope
from nengodl.io.checks import check_input_data, check_run_steps, check_run_time, check_seed
from nengodl.progress import Stage
from nengodl.runtime.compiled import run_raising
from nengodl.runtime.seeds import item_seeds


class RunMethods:
    """`Simulator` methods that run, step and reset the simulation (see the
    module's docstring)."""

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
        self.run_state.recorder.clear()

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
        run = self.run_state
        run.reset()
        if include_processes:
            self.runner.loop.reset_host(item_seeds(self.seed, self.plan.minibatch_size))
        if include_trainable:
            run.restore_built_parameters()
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
        stateful = bool(stateful) and self.stateful
        run, plan = self.run_state, self.plan
        if n_steps == 1 and not data and stateful and run.step_numpy():
            return  # a single step costs less in numpy than a call of the compiled loop
        feeds = check_input_data(
            data, plan.node_keys, n_steps, self.plan.minibatch_size, finite=self.check_finite
        )
        if n_steps == 0:
            return
        if progress_bar is None:
            progress_bar = self.progress_bar
        before = None if stateful else (run.tensors, run.host_values())
        feeds = plan.complete_feeds(feeds, run.n_steps, n_steps)
        runner = self.runner if self.distributed is None else self.distributed
        if runner is self.runner and self.runner.needs_compile(n_steps, feeds):
            # reported apart, so that the simulation's time is the loop's own
            with Stage("Compilation", progress_bar), device_scope(self.device), self.seed_scope():
                self.runner.compile(run.tensors, feeds)
        with Stage("Simulation", progress_bar, max_value=n_steps) as stage:
            with device_scope(self.device), self.seed_scope():
                state, outputs = run_raising(runner, plan, n_steps, run.tensors, feeds)
            if stateful:
                # a constant Node given data in this run is itself again in the next
                state = self.runner.loop.restore_constants(state, feeds)
                run.advance(n_steps, state, outputs)
            else:
                run.recorder.append(run.n_steps, outputs)
                run.tensors = before[0]
                run.set_host_values(before[1])
            stage.update(n_steps)

    def step(self, data=None, progress_bar=False, stateful=True):
        """Advance the simulator by one step (``dt`` seconds).

        Parameters
        ----------
        data : dict, optional
            As in `run`, with ``n_steps`` 1.
        progress_bar : bool
            As in `run_steps` (default: no progress bar for one step).
        stateful : bool
            As in `run_steps`.

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
        self.run_steps(1, data=data, progress_bar=progress_bar, stateful=stateful)

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
