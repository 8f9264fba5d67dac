"""``python -m nengodl.benchmarks``: nengodl against nengo.Simulator, in one run.

For each network and minibatch size it prints the build time (construction
including compilation), the time to first result (construction plus the first
run), and item-steps per second of a warm run, for nengo.Simulator and
nengodl, and their ratio, then the peak memory of the process.
"""

import nengodl
import nengodl.graph
import nengodl.ops.basic
import nengodl.ops.neurons
import nengodl.optimizer
import nengodl.signals
from nengodl.benchmarks.networks import NETWORKS
from nengodl.benchmarks.timing import parser, run_table

# graph-optimisation switches: flag, module, setting, value when the flag is given, help
SWITCHES = [
    (
        "--no-shard",
        nengodl.graph,
        "SHARD_BYTES",
        0,
        "run each minibatch in one loop (not split into shards run side by side)",
    ),
    (
        "--carry-all",
        nengodl.graph,
        "DROP_TRANSIENT",
        False,
        "carry all state between steps (also what each step sets before reading)",
    ),
    (
        "--lif-exp-log",
        nengodl.ops.neurons,
        "LIF_SERIES",
        False,
        "LIF neurons use exp and log (not the series exact on their ranges)",
    ),
    (
        "--no-keep",
        nengodl.graph,
        "KEEP_SHARED",
        False,
        "let XLA recompute values shared by several operations (e.g. the LIF voltage)",
    ),
    (
        "--no-slice-sums",
        nengodl.signals,
        "SLICE_SUMS",
        False,
        "add overlapping increments of a signal with one scatter (not sums of slices)",
    ),
    (
        "--no-fold",
        nengodl.ops.basic,
        "FOLD_WIDTH",
        None,
        "sum long axes in one reduction (not folded in halves first, under XLA)",
    ),
    (
        "--clock-in-step",
        nengodl.graph,
        "CLOCK_OUTSIDE",
        False,
        "advance the clock in every step of the XLA loop (not once per call)",
    ),
    (
        "--nengo-closure",
        nengodl.optimizer,
        "FAST_CLOSURE",
        False,
        "nengo's optimiser uses nengo's own transitive closure (not frozensets)",
    ),
]


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
    for flag, _, _, _, text in SWITCHES:
        p.add_argument(flag, action="store_true", help=text)
    args = p.parse_args(argv)
    for flag, module, attr, value, _ in SWITCHES:
        if getattr(args, flag[2:].replace("-", "_")):
            setattr(module, attr, value)
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
        )

    run_table(args, NETWORKS, "nengodl", make_sim)


if __name__ == "__main__":
    main()
