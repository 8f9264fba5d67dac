"""``python -m nengodl.benchmarks``: nengodl against nengo.Simulator, in one run.

For each network and minibatch size it prints the build time (construction
including compilation), the time to first result (construction plus the first
run), and item-steps per second of a warm run, for nengo.Simulator and
nengodl, and their ratio, then the peak memory of the process.
"""

import nengodl
from nengodl.benchmarks.networks import NETWORKS
from nengodl.benchmarks.timing import parser, run_table
from nengodl.options import Options

# graph-optimisation switches: flag, option, value when the flag is given, help
SWITCHES = [
    (
        "--no-shard",
        "shard_bytes",
        0,
        "run each minibatch in one loop (not split into shards run side by side)",
    ),
    (
        "--carry-all",
        "drop_transient",
        False,
        "carry all state between steps (also what each step sets before reading)",
    ),
    (
        "--lif-exp-log",
        "lif_series",
        False,
        "LIF neurons use exp and log (not the series exact on their ranges)",
    ),
    (
        "--no-keep",
        "keep_shared",
        False,
        "let XLA recompute values shared by several operations (e.g. the LIF voltage)",
    ),
    (
        "--no-slice-sums",
        "slice_sums",
        False,
        "add overlapping increments of a signal with one scatter (not sums of slices)",
    ),
    (
        "--no-fold",
        "fold_width",
        None,
        "sum long axes in one reduction (not folded in halves first, under XLA)",
    ),
    (
        "--clock-in-step",
        "clock_outside",
        False,
        "advance the clock in every step of the XLA loop (not once per call)",
    ),
    (
        "--nengo-closure",
        "fast_closure",
        False,
        "nengo's optimiser uses nengo's own transitive closure (not frozensets)",
    ),
]


def options_from(args):
    """The `Options` the switches on the command line ask for."""
    return Options(
        **{
            option: value
            for flag, option, value, _ in SWITCHES
            if getattr(args, flag[2:].replace("-", "_"))
        }
    )


# help texts of the options that the benchmark scripts share (`timing.parser`)
COMMON_HELP = {
    "--networks": "networks to time, of %(choices)s (default: all but chain, which is for "
    "size checks)",
    "--dimensions": "dimensions of each network (default: %(default)s)",
    "--neurons-per-d": "neurons per dimension (default: %(default)s)",
    "--neuron-type": "nengo neuron type, by class name (default: %(default)s)",
    "--minibatch": "minibatch sizes to time nengodl at (default: 1 64)",
    "--steps": "simulation steps of each timed run (default: %(default)s)",
    "--repeats": "warm runs timed per simulator; the best counts (default: %(default)s)",
}


def main(argv=None):
    """Run the benchmarks chosen on the command line (see ``--help``)."""
    p = parser(__doc__.splitlines()[0], NETWORKS)
    p.prog = "python -m nengodl.benchmarks"
    p.description = (
        "Time nengodl against nengo.Simulator on benchmark networks: build time, time to "
        "first result, warm item-steps/s and their ratio, then the process's peak memory."
    )
    for action in p._actions:
        for flag in action.option_strings:
            action.help = COMMON_HELP.get(flag, action.help)
        if "--networks" in action.option_strings:
            action.metavar = "NAME"
    p.add_argument(
        "--dtype", default="float32", help="the simulator's dtype (default: %(default)s)"
    )
    p.add_argument("--no-jit", action="store_true", help="run without XLA")
    p.add_argument("--no-optimize", action="store_true", help="skip nengo's operator merger")
    p.add_argument(
        "--unroll",
        type=int,
        default=1,
        help="unroll_simulation: steps per loop iteration (default: %(default)s)",
    )
    p.add_argument(
        "--intra-op-threads",
        type=int,
        default=None,
        help="size of TensorFlow's intra-op thread pool (default: TensorFlow's choice)",
    )
    for flag, _, _, text in SWITCHES:
        p.add_argument(flag, action="store_true", help=text)
    args = p.parse_args(argv)
    options = options_from(args)
    if args.intra_op_threads is not None:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.intra_op_threads)

    def make_sim(net, minibatch_size):
        return nengodl.Simulator(
            net,
            minibatch_size=minibatch_size,
            progress_bar=False,
            dtype=args.dtype,
            jit=not args.no_jit,
            optimize=not args.no_optimize,
            unroll_simulation=args.unroll,
            options=options,
        )

    run_table(args, NETWORKS, "nengodl", make_sim)


if __name__ == "__main__":
    main()
