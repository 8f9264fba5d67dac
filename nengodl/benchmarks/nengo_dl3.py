"""NengoDL 3 against nengo.Simulator on nengodl's benchmark networks.

Run it with the Python of an environment that has NengoDL 3 (not nengodl)::

    python -m venv /tmp/ndl36
    /tmp/ndl36/bin/pip install nengo-dl==3.6.0 "tensorflow==2.12.*" nengo==3.2.0 click
    /tmp/ndl36/bin/python nengodl/benchmarks/nengo_dl3.py --minibatch 1 64

It loads the network builders and the timing code from this folder by path,
so the table has the same networks and columns as ``python -m
nengodl.benchmarks``; compare the ratio columns of the two.
"""

import importlib.util
import os


def load(name):
    """Import a module of this folder by its file path."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), name + ".py")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv=None):
    """Run the chosen benchmarks on NengoDL 3 (see ``--help``)."""
    import nengo_dl

    networks = load("networks").NETWORKS
    timing = load("timing")
    args = timing.parser(__doc__.splitlines()[0], networks).parse_args(argv)

    def make_sim(net, minibatch_size):
        return nengo_dl.Simulator(net, minibatch_size=minibatch_size, progress_bar=False)

    timing.run_table(args, networks, "nengo_dl", make_sim)


if __name__ == "__main__":
    main()
