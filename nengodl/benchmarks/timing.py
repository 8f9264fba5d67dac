"""Timing and the results table shared by the benchmark command lines.

This module imports only nengo (not nengodl), so that the NengoDL 3 comparison
script (`nengodl/benchmarks/nengo_dl3.py`) can load it in an environment of
its own.
"""

import argparse
import resource
import time

import nengo


def measure(sim_factories, n_steps, repeats=3):
    """Time simulators: construction, first run, and best of ``repeats`` runs.

    Each simulator is constructed and run once in turn; then the warm runs
    alternate between them, so that every simulator sees the same machine
    conditions (on a shared machine the speed of both drifts from minute to
    minute, and their ratio is what counts).

    Parameters
    ----------
    sim_factories : list of callable
        Each returns a new simulator.
    n_steps : int
        Steps per run.
    repeats : int
        Warm runs timed per simulator.

    Returns
    -------
    list of tuple
        For each factory ``(build, first, run)``: seconds to construct the
        simulator, seconds from the start of construction to the end of the
        first run, and seconds of the fastest warm run.

    Examples
    --------
    >>> net = nengo.Network()
    >>> with net:
    ...     _ = nengo.Ensemble(10, 1)
    >>> [(build, first, run)] = measure([lambda: nengo.Simulator(net, progress_bar=False)], 10)
    >>> 0 < build <= first
    True
    """
    sims, results = [], []
    for factory in sim_factories:
        start = time.perf_counter()
        sim = factory()
        built = time.perf_counter()
        sim.run_steps(n_steps)
        sims.append(sim)
        results.append([built - start, time.perf_counter() - start, float("inf")])
    for _ in range(repeats):
        for sim, result in zip(sims, results):
            t0 = time.perf_counter()
            sim.run_steps(n_steps)
            result[2] = min(result[2], time.perf_counter() - t0)
    for sim in sims:
        sim.close()
    return [tuple(r) for r in results]


def parser(description, networks, repeats=3, repeats_help="warm runs timed per simulator"):
    """The command-line options common to the benchmark scripts."""
    p = argparse.ArgumentParser(description=description)
    default = [n for n in networks if n != "chain"]  # chain is for size checks
    p.add_argument("--networks", nargs="+", default=default, choices=list(networks))
    p.add_argument("--dimensions", type=int, default=64)
    p.add_argument("--neurons-per-d", type=int, default=64)
    p.add_argument("--neuron-type", default="LIF")
    p.add_argument("--minibatch", type=int, nargs="+", default=[1, 64])
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=repeats, help=repeats_help)
    return p


def run_table(args, networks, label, make_sim):
    """Print, for each network, nengo.Simulator's speed and ``make_sim``'s at
    each minibatch size, with the per-item throughput ratio.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed options (see `parser`).
    networks : dict
        Name to network builder ``f(dimensions, neurons_per_d, neuron_type)``.
    label : str
        Name of the simulator under test, for the table.
    make_sim : callable
        ``make_sim(net, minibatch_size)`` returns a new simulator.
    """
    neuron_type = getattr(nengo, args.neuron_type)()
    print(
        f"{'network':14s} {'mb':>4s} {'sim':8s} {'build s':>8s} {'first s':>8s} "
        f"{'item-steps/s':>13s} {'ratio':>7s}",
        flush=True,
    )
    for name in args.networks:
        net = networks[name](args.dimensions, args.neurons_per_d, neuron_type)
        factories = [lambda net=net: nengo.Simulator(net, progress_bar=False)]
        factories += [lambda mb=mb, net=net: make_sim(net, mb) for mb in args.minibatch]
        (_, first, run), *tested = measure(factories, args.steps, args.repeats)
        nengo_rate = args.steps / run
        print(
            f"{name:14s} {1:4d} {'nengo':8s} {'':>8s} {first:8.2f} {nengo_rate:13.0f} {1.0:7.2f}",
            flush=True,
        )
        for mb, (build, first, run) in zip(args.minibatch, tested):
            rate = mb * args.steps / run
            print(
                f"{name:14s} {mb:4d} {label:8s} {build:8.2f} {first:8.2f} {rate:13.0f} "
                f"{rate / nengo_rate:7.2f}",
                flush=True,
            )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory: {peak:.0f} MiB")
