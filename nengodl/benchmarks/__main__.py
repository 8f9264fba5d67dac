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


def main(argv=None):
    """Run the benchmarks chosen on the command line (see ``--help``)."""
    p = parser(__doc__.splitlines()[0], NETWORKS)
    p.add_argument("--dtype", default="float32")
    p.add_argument("--no-jit", action="store_true", help="run without XLA")
    p.add_argument("--no-optimize", action="store_true", help="skip nengo's operator merger")
    p.add_argument("--unroll", type=int, default=1, help="steps per loop iteration")
    p.add_argument(
        "--intra-op-threads",
        type=int,
        default=None,
        help="TensorFlow's intra-op thread pool size (1 is fastest at minibatch 1 on CPU)",
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
