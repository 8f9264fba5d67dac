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
- losses and gradients are averaged over replicas (an all-reduce), which equals
  the single-device value for objectives that average over the minibatch, and
  the optimizer applies the averaged gradient on every replica.

Everything computed on the host (inputs of Nodes, processes) is computed for
the whole global batch, with the same seeds as on one device, on every worker.
"""

import numpy as np
import tensorflow as tf
from nengo.exceptions import ValidationError

from nengodl.runtime.weak import WeakSimulator
from nengodl.training.trainer import apply_gradients, check_finite, differentiate

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
    """Runs a simulator's loop, training and evaluation across replicas.

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
        self._fns = {}
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

    # --- training and evaluation -------------------------------------------------

    def _replica_outputs(self, trainer, n_steps, feeds, training):
        n = self.local
        feeds = {k: replica_slice(v, n, 1) for k, v in feeds.items()}
        layout = self.plan.layout
        initial = [layout.initial_value(b, n) for b in layout.state_bases]
        return trainer.probe_outputs(n_steps, feeds, training, initial)

    def _function(self, trainer, kind, objective, variables, masks, training):
        # the key holds the loss functions, so their ids cannot be reused
        key = (kind, training, tuple((objective or {}).items()))
        if key in self._fns:
            return self._fns[key]
        strategy, n = self.strategy, self.local
        mean = tf.distribute.ReduceOp.MEAN

        def replica(n_steps, feeds, targets):
            targets = [replica_slice(t, n, 0) for t in targets]
            if kind != "grads":
                outputs = self._replica_outputs(trainer, n_steps, feeds, training)
                losses = (
                    None
                    if kind == "outputs"
                    else trainer.objective_losses(outputs, targets, objective)
                )
                return losses, outputs, None
            return differentiate(
                lambda: self._replica_outputs(trainer, n_steps, feeds, training),
                lambda outputs: trainer.objective_losses(outputs, targets, objective),
                variables,
                masks,
            )

        def fn(n_steps, feeds, targets):
            losses, outputs, grads = strategy.run(replica, args=(n_steps, feeds, targets))
            outputs = [strategy.gather(o, axis=0) for o in outputs]
            if losses is not None:
                losses = strategy.reduce(mean, losses, axis=None)
            if grads is not None:
                grads = [strategy.reduce(mean, g, axis=None) for g in grads]
            return losses, outputs, grads

        self._fns[key] = tf.function(fn, autograph=False, reduce_retracing=True)
        return self._fns[key]

    def _apply_fn(self, optimizer, variables):
        key = ("apply", optimizer, tuple(id(v) for v in variables))  # the simulator's
        if key not in self._fns:
            strategy, replicas = self.strategy, self.replicas

            def replica(grads):
                # optimizers sum gradients over replicas: each passes its share
                scaled = [g / replicas for g in grads]
                apply_gradients(optimizer, scaled, variables)
                return tf.constant(0)

            def apply(grads):
                strategy.run(replica, args=(grads,))

            self._fns[key] = tf.function(apply, autograph=False)
        return self._fns[key]

    def _call(self, fn, trainer, inputs, targets, objective, n_steps, seed):
        feeds = trainer.host_inputs(inputs, n_steps, seed)
        feeds = {k: tf.convert_to_tensor(v) for k, v in feeds.items()}
        targets = [] if objective is None else trainer.objective_targets(objective, targets)
        targets = [None if t is None else tf.convert_to_tensor(t) for t in targets]
        with self.strategy.scope():
            return fn(tf.constant(n_steps, tf.int32), feeds, targets)

    def check_optimizer(self, optimizer, variables):
        """Raise unless ``optimizer`` can update mirrored variables; build its state."""
        local = [
            getattr(v, "path", v.name)
            for v in variables
            if not isinstance(
                v if isinstance(v, tf.Variable) else getattr(v, "value", v),
                tf.distribute.DistributedValues,
            )
        ]
        if local:
            raise ValidationError(
                f"variables {', '.join(local)} were created outside `strategy.scope()`, "
                "so they cannot be trained under the strategy; create the network's "
                "Keras layers (TensorNodes) inside the scope",
                attr="strategy",
            )
        owner = getattr(optimizer, "_distribution_strategy", self.strategy)
        if owner is not self.strategy:
            raise ValidationError(
                "a Keras optimizer used with a distribution strategy must be created "
                "inside `strategy.scope()`",
                attr="optimizer",
            )
        if hasattr(optimizer, "build") and not getattr(optimizer, "built", True):
            with self.strategy.scope():
                optimizer.build(variables)

    def train_step(self, trainer, optimizer, objective, variables, masks, training=True):
        """Distributed version of `Trainer.train_step` (checks already done)."""

        self.check_optimizer(optimizer, variables)
        fn = self._function(trainer, "grads", objective, variables, masks, training)
        apply_fn = self._apply_fn(optimizer, variables)

        def step(inputs, targets, n_steps, seed):
            losses, outputs, grads = self._call(
                fn, trainer, inputs, targets, objective, n_steps, seed
            )
            losses = losses.numpy()
            check_finite(losses, grads)
            with self.strategy.scope():
                apply_fn(grads)
            self.sim.run_state.trained = True
            return losses, outputs

        return step

    def eval_step(self, trainer, objective, training=False):
        """Distributed version of `Trainer.eval_step`."""
        fn = self._function(trainer, "loss", objective, None, None, training)

        def step(inputs, targets, n_steps, seed):
            losses, outputs, _ = self._call(fn, trainer, inputs, targets, objective, n_steps, seed)
            return losses.numpy(), outputs

        return step

    def predict_step(self, trainer, training=False):
        """Distributed version of `Trainer.predict_step`."""
        fn = self._function(trainer, "outputs", None, None, None, training)

        def step(inputs, n_steps, seed):
            return self._call(fn, trainer, inputs, {}, None, n_steps, seed)[1]

        return step

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
