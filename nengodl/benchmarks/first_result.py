"""Time to first result, each simulator in fresh processes.

``python -m nengodl.benchmarks.first_result`` starts, for each network, a new
Python process per simulator and run, alternating between nengo.Simulator and
nengodl: each builds the network, then times constructing the simulator and its
first run (compilation included), as a script would see it. nengo's processes
import nengo alone (not TensorFlow), as a nengo script does. It prints the
median, fastest and slowest of the ``--repeats`` processes and the ratio of
the medians (below 1.5 is the target).
"""

import argparse
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))  # holds the nengodl the parent imported


def modules():
    """This folder's ``networks`` and ``timing`` modules: from the nengodl
    package, or by path where this file runs as a script (the child processes,
    where nengo's must not import nengodl or TensorFlow)."""
    if __package__:
        from nengodl.benchmarks import networks, timing
    else:
        sys.path.insert(0, HERE)
        import networks
        import timing
    return networks, timing


def child(simulator, network, args):
    """Time one simulator in this process and print the seconds."""
    import nengo

    networks, timing = modules()
    neuron_type = getattr(nengo, args.neuron_type)()
    net = networks.NETWORKS[network](args.dimensions, args.neurons_per_d, neuron_type)
    if simulator == "nengo":
        factory = lambda: nengo.Simulator(net, progress_bar=False)
    else:
        import nengodl

        mb = int(simulator)
        factory = lambda: nengodl.Simulator(net, minibatch_size=mb, progress_bar=False)
    [(_, first, _)] = timing.measure([factory], args.steps, repeats=0)
    print(first)


def main(argv=None):
    """Run the chosen networks (see ``--help``)."""
    networks, timing = modules()
    parser, NETWORKS = timing.parser, networks.NETWORKS
    p = parser(
        __doc__.splitlines()[0], NETWORKS, repeats=5, repeats_help="processes per simulator"
    )
    p.set_defaults(minibatch=[1])
    p.add_argument("--child", nargs=2, help=argparse.SUPPRESS)  # simulator, network
    args = p.parse_args(argv)
    if args.child:
        return child(*args.child, args)
    options = [
        f"--dimensions={args.dimensions}",
        f"--neurons-per-d={args.neurons_per_d}",
        f"--neuron-type={args.neuron_type}",
        f"--steps={args.steps}",
    ]
    sims = ["nengo"] + [str(mb) for mb in args.minibatch]
    print(
        f"{'network':14s} {'mb':>4s} {'sim':8s} {'median s':>9s} {'min s':>7s} "
        f"{'max s':>7s} {'ratio':>7s}",
        flush=True,
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, env.get("PYTHONPATH")]))
    for name in args.networks:
        times = {sim: [] for sim in sims}
        for _ in range(args.repeats):
            for sim in sims:
                out = subprocess.run(
                    [sys.executable, os.path.join(HERE, "first_result.py"), "--child", sim, name]
                    + options,
                    capture_output=True,
                    text=True,
                    env=env,
                )
                if out.returncode:
                    raise RuntimeError(
                        f"the {sim!r} process for {name!r} failed:\n{out.stderr[-3000:]}"
                    )
                times[sim].append(float(out.stdout.split()[-1]))
        base = statistics.median(times["nengo"])
        for sim in sims:
            t = times[sim]
            label, mb = ("nengo", 1) if sim == "nengo" else ("nengodl", int(sim))
            print(
                f"{name:14s} {mb:4d} {label:8s} {statistics.median(t):9.2f} {min(t):7.2f} "
                f"{max(t):7.2f} {statistics.median(t) / base:7.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
