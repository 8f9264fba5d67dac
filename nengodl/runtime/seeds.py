"""Seeds of TensorFlow random ops inside TensorNodes.

TensorFlow seeds the random ops of a traced function from the graph-level
seed; `graph_seed` sets it to the simulator's seed while the simulation is
traced, so that ``tf.random`` in a TensorNode repeats from simulator to
simulator with one seed.
"""

import contextlib
import random
import threading

import numpy as np
import tensorflow as tf

# random ops that keep their state in their kernel: XLA draws them from a process-wide
# stream, so a loop with one of them runs without XLA (see `Simulator.seed_scope`)
STATEFUL_RANDOM_OPS = frozenset(
    {
        "RandomUniform",
        "RandomUniformInt",
        "RandomStandardNormal",
        "TruncatedNormal",
        "ParameterizedTruncatedNormal",
        "RandomShuffle",
        "Multinomial",
        "RandomGamma",
        "RandomPoisson",
        "RandomPoissonV2",
    }
)


def graph_ops(graph_def):
    """Op types of a graph and of the functions in its library (loop bodies)."""
    types = {node.op for node in graph_def.node}
    for function in graph_def.library.function:
        types.update(node.op for node in function.node_def)
    return types


# TensorFlow's global seed is one for the process: one thread at a time holds it
_SEED_LOCK = threading.RLock()


@contextlib.contextmanager
def graph_seed(seed):
    """TensorFlow's global random seed is ``seed`` inside, and what it was after.

    Functions traced inside take ``seed`` as their graph-level seed (TensorFlow
    copies the eager global seed into a function's graph when tracing starts),
    so their random ops get the same seeds in every simulator of the model with
    this seed. The eager context's seed and op-seed stream are swapped in and
    back out, rather than set with `tf.random.set_seed`, which would restart
    the user's own random stream and, by clearing TensorFlow's kernel cache,
    the streams of every random op already traced (other simulators'
    included). Eager random ops run inside (in a Keras layer's ``build``, say)
    work, but share TensorFlow's eager kernels, so are not reproducible from
    one simulator to the next; seed their initializers instead.

    The global seed is the process's, so one thread at a time is inside (other
    threads wait; a thread may enter again inside its own block).
    """
    from tensorflow.python.eager import context  # no public way to swap it back

    with _SEED_LOCK:
        yield from _swapped_seed(context.context(), seed)


def _swapped_seed(ctx, seed):
    """The body of `graph_seed`, the lock held."""
    missing = object()
    previous = (getattr(ctx, "_seed", missing), getattr(ctx, "_rng", missing))
    if previous[0] is missing:  # pragma: no cover (another TensorFlow)
        tf.random.set_seed(seed)
        yield
        return
    ctx._seed, ctx._rng = seed, random.Random(seed)
    try:
        yield
    finally:
        ctx._seed = previous[0]
        if previous[1] is missing:
            del ctx._rng
        else:
            ctx._rng = previous[1]


def item_seeds(seed, minibatch_size):
    """Seeds for the random state of each minibatch item (item 0 uses ``seed``)."""
    extra = np.random.RandomState(seed).randint(np.iinfo(np.int32).max, size=minibatch_size - 1)
    return [seed] + [int(s) for s in extra]
