"""Data-parallel simulation and training with `tf.distribute` strategies.

A `Simulator` built under a `tf.distribute.MirroredStrategy` or
`tf.distribute.MultiWorkerMirroredStrategy` (or given one with ``strategy=``)
splits every minibatch evenly across the strategy's replicas:

- parameter variables are created under the strategy's scope, so they are
  mirrored on every replica;
- each call passes the *global* inputs and state to `Strategy.run`; every
  replica slices out its own contiguous block of minibatch items (replica ``r``
  simulates items ``r * n, ..., (r + 1) * n - 1`` with ``n`` the per-replica
  batch) and runs the usual simulation loop on it;
- probe data and the new state are gathered back with `Strategy.gather`, which
  keeps replica order, so results come back in input order and the simulator's
  state stays one global array (each replica gets its own items' state back
  on the next call);
- in training (`nengodl.training.executor`, which runs every training,
  evaluation and prediction call through the strategy), losses and gradients
  are averaged over replicas (an all-reduce), which equals the single-device
  value for objectives that average over the minibatch, and the optimizer
  applies the averaged gradient on every replica.

Everything computed on the host (inputs of Nodes, processes) is computed for
the whole global batch, with the same seeds as on one device, on every worker.
"""

import numpy as np
import tensorflow as tf
from nengo.exceptions import ValidationError

from nengodl.runtime.weak import WeakSimulator

#: strategies whose replicas run the same program on equal slices of a batch
SUPPORTED = (tf.distribute.MirroredStrategy, tf.distribute.MultiWorkerMirroredStrategy)


def resolve_strategy(strategy):
    """The strategy a simulator should use, or None for plain execution.

    Parameters
    ----------
    strategy : tf.distribute.Strategy or None
        An explicit strategy; if None, the strategy whose ``scope()`` is active
        (if any) is used.

    Returns
    -------
    tf.distribute.Strategy or None
    """
    if strategy is None:
        if not tf.distribute.has_strategy():
            return None
        strategy = tf.distribute.get_strategy()
    if not isinstance(strategy, SUPPORTED):
        raise ValidationError(
            "strategy must be a tf.distribute.MirroredStrategy or "
            f"tf.distribute.MultiWorkerMirroredStrategy (got {type(strategy).__name__})",
            attr="strategy",
        )
    return strategy


def is_multi_worker(strategy):
    """Whether ``strategy`` spans several processes (so they must agree on order)."""
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def check_batch(strategy, minibatch_size):
    """Per-replica batch size; raise if the global batch does not split evenly.

    Parameters
    ----------
    strategy : tf.distribute.Strategy
        The strategy.
    minibatch_size : int or None
        The simulator's (global) minibatch size.

    Returns
    -------
    int
        Number of minibatch items each replica simulates.
    """
    replicas = strategy.num_replicas_in_sync
    size = 1 if minibatch_size is None else minibatch_size
    if size % replicas:
        raise ValidationError(
            f"minibatch_size ({minibatch_size}) must be a multiple of the number of "
            f"replicas of the distribution strategy ({replicas}); it is the global "
            "batch, split evenly across replicas",
            attr="minibatch_size",
        )
    return size // replicas


def replica_slice(x, size, axis):
    """This replica's block of ``size`` items of a global tensor, along ``axis``."""
    if x is None:
        return None
    rid = tf.distribute.get_replica_context().replica_id_in_sync_group
    return tf.gather(x, tf.range(rid * size, (rid + 1) * size), axis=axis)


class DistributedRunner:
    """Runs a simulator's loop across replicas.

    Parameters
    ----------
    sim : Simulator
        The simulator (its graph built under ``strategy.scope()``).
    strategy : tf.distribute.Strategy
        A supported strategy.
    """

    sim = WeakSimulator()  # the simulator owns this: no reference cycle back

    def __init__(self, sim, strategy):
        self.sim = sim
        self.loop = sim.loop
        self.plan = sim.plan
        self.strategy = strategy
        self.replicas = strategy.num_replicas_in_sync
        self.local = check_batch(strategy, sim.minibatch_size)
        if self.plan.has_host_loop_ops:
            names = sorted(
                {type(obj.op).__name__ for kind, _, obj in self.plan.steps if kind == "host"}
            )
            raise ValidationError(
                "a distribution strategy needs every operator inside the loop to run in "
                f"TensorFlow; these run through Python: {', '.join(names)}",
                attr="strategy",
            )
        self._run_fn = tf.function(self._run, autograph=False, reduce_retracing=True)

    # --- simulation ------------------------------------------------------------

    def _run(self, n_steps, state, feeds):
        loop, n = self.loop, self.local

        def replica(n_steps, state, feeds):
            state = [replica_slice(s, n, 0) for s in state]
            feeds = {k: replica_slice(v, n, 1) for k, v in feeds.items()}
            return loop.loop(n_steps, state, feeds, training=loop.learning_phase)

        state, stacked = self.strategy.run(replica, args=(n_steps, state, feeds))
        return (
            [self.strategy.gather(s, axis=0) for s in state],
            [self.strategy.gather(d, axis=1) for d in stacked],
        )

    def run(self, n_steps, state, feeds):
        """Run ``n_steps`` steps; same arguments and results as `SimLoop.run`."""
        feeds = {k: tf.convert_to_tensor(v) for k, v in feeds.items()}
        state = [tf.convert_to_tensor(s) for s in state]
        with self.strategy.scope():
            state, data = self._run_fn(tf.constant(n_steps, tf.int32), state, feeds)
        return state, self.loop.split_probe_data([d.numpy() for d in data])

    # --- checkpoints ---------------------------------------------------------------

    def sync_from_chief(self, variables, epoch):
        """Give every worker the chief's values of ``variables`` and ``epoch``.

        Used after a checkpoint is restored, so that workers which restored
        different checkpoints (or none) continue from the chief's.

        Returns
        -------
        int
            The chief's ``epoch``.
        """
        if not isinstance(self.strategy, tf.distribute.MultiWorkerMirroredStrategy):
            return epoch
        values = [tf.convert_to_tensor(v) for v in variables]
        values.append(tf.constant(float(epoch), tf.float64))

        def replica(values):
            # global replica 0 lives on the chief (worker 0)
            keep = tf.equal(tf.distribute.get_replica_context().replica_id_in_sync_group, 0)
            own = [tf.where(keep, v, tf.zeros_like(v)) for v in values]
            return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, own)

        with self.strategy.scope():
            out = self.strategy.run(replica, args=(values,))
            out = [self.strategy.experimental_local_results(v)[0] for v in out]
            for var, val in zip(variables, out[:-1]):
                var.assign(val)
        return int(np.round(float(out[-1])))
