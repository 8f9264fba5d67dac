"""``python -m nengodl.benchmarks``: nengodl against nengo.Simulator, in one run.

For each network and minibatch size it prints the build time (construction
including compilation), the time to first result (construction plus the first
run), and item-steps per second of a warm run, for nengo.Simulator and
nengodl, and their ratio.
"""

import argparse
import resource
import time

import nengo

import nengodl
from nengodl.benchmarks.networks import NETWORKS


def measure(sim_factory, n_steps, repeats=2):
    start = time.perf_counter()
    sim = sim_factory()
    built = time.perf_counter()
    sim.run_steps(n_steps)
    first = time.perf_counter()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        sim.run_steps(n_steps)
        best = min(best, time.perf_counter() - t0)
    sim.close()
    return built - start, first - start, best


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", nargs="+", default=list(NETWORKS), choices=list(NETWORKS))
    parser.add_argument("--dimensions", type=int, default=64)
    parser.add_argument("--neurons-per-d", type=int, default=64)
    parser.add_argument("--neuron-type", default="LIF")
    parser.add_argument("--minibatch", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--no-jit", action="store_true", help="run without XLA")
    parser.add_argument(
        "--no-optimize", action="store_true", help="skip nengo's operator merger"
    )
    args = parser.parse_args(argv)
    neuron_type = getattr(nengo, args.neuron_type)()
    print(f"{'network':14s} {'mb':>4s} {'sim':8s} {'build s':>8s} {'first s':>8s} "
          f"{'item-steps/s':>13s} {'ratio':>7s}")
    for name in args.networks:
        net = NETWORKS[name](args.dimensions, args.neurons_per_d, neuron_type)
        _, nengo_first, nengo_run = measure(
            lambda: nengo.Simulator(net, progress_bar=False), args.steps
        )
        nengo_rate = args.steps / nengo_run
        print(f"{name:14s} {1:4d} {'nengo':8s} {'':>8s} {nengo_first:8.2f} {nengo_rate:13.0f} {1.0:7.2f}")
        for mb in args.minibatch:
            build, first, run = measure(
                lambda: nengodl.Simulator(
                    net,
                    minibatch_size=mb,
                    progress_bar=False,
                    dtype=args.dtype,
                    jit=not args.no_jit,
                    optimize=not args.no_optimize,
                ),
                args.steps,
            )
            rate = mb * args.steps / run
            print(f"{name:14s} {mb:4d} {'nengodl':8s} {build:8.2f} {first:8.2f} "
                  f"{rate:13.0f} {rate / nengo_rate:7.2f}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory: {peak:.0f} MiB")


if __name__ == "__main__":
    main()
