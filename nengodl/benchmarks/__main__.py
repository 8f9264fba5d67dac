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
import nengodl.signals
from nengodl.benchmarks.networks import NETWORKS
from nengodl.benchmarks.timing import parser, run_table


def main(argv=None):
    """Run the benchmarks chosen on the command line (see ``--help``)."""
    p = parser(__doc__.splitlines()[0], NETWORKS)
    p.add_argument("--dtype", default="float32")
    p.add_argument("--no-jit", action="store_true", help="run without XLA")
    p.add_argument("--no-optimize", action="store_true", help="skip nengo's operator merger")
    p.add_argument("--unroll", type=int, default=1, help="steps per loop iteration")
    p.add_argument(
        "--no-shard", action="store_true",
        help="run each minibatch in one loop (not split into shards run side by side)",
    )
    p.add_argument(
        "--intra-op-threads", type=int, default=None,
        help="TensorFlow's intra-op thread pool size (1 is fastest at minibatch 1 on CPU)",
    )
    p.add_argument(
        "--carry-all", action="store_true",
        help="carry all state between steps (also what each step sets before reading)",
    )
    p.add_argument(
        "--lif-exp-log", action="store_true",
        help="LIF neurons use exp and log (not the series exact on their ranges)",
    )
    p.add_argument(
        "--no-keep", action="store_true",
        help="let XLA recompute values shared by several operations (e.g. the LIF voltage)",
    )
    p.add_argument(
        "--no-slice-sums", action="store_true",
        help="add overlapping increments of a signal with one scatter (not sums of slices)",
    )
    p.add_argument(
        "--no-fold", action="store_true",
        help="sum long axes in one reduction (not folded in halves first, under XLA)",
    )
    args = p.parse_args(argv)
    if args.no_fold:
        nengodl.ops.basic.FOLD_WIDTH = None
    if args.no_slice_sums:
        nengodl.signals.SLICE_SUMS = False
    if args.lif_exp_log:
        nengodl.ops.neurons.LIF_SERIES = False
    if args.no_keep:
        nengodl.graph.KEEP_SHARED = False
    if args.no_shard:
        nengodl.graph.SHARD_BYTES = 0
    if args.carry_all:
        nengodl.graph.DROP_TRANSIENT = False
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
