"""The one executor of training, evaluation and prediction.

Every front end (NengoDL 2's ``train`` / ``loss``, the Keras-style ``fit`` /
``evaluate`` / ``predict``) runs its minibatches through `Executor.runner`:
one traced function per purpose (``"train"``, ``"evaluate"``, ``"predict"``),
objective, optimizer and learning phase, which runs *any number* of
minibatches per call in a loop inside the graph (a whole epoch when nothing
needs to hear of each minibatch as it ends, else ``steps_per_execution`` of
them, as in Keras 3), always through a `tf.distribute` strategy: the
simulator's (its replicas each simulate an equal block of every minibatch) or
TensorFlow's default one on one device.

A training step computes the losses and gradients of one minibatch on every
replica, averages them over the replicas, and applies the optimizer where the
losses and gradients are usable (`usable_update`); the first minibatch that is
not stops the updates of the call (and training, with `stop_error`). With
``stateful=True`` each minibatch starts where the one before left the
simulator, and the simulator is left where the last one ended.
"""

import keras
import numpy as np
import tensorflow as tf
from nengo.exceptions import ValidationError

from nengodl.build import device_scope
from nengodl.config import training_refusals
from nengodl.runtime.distributed import replica_slice
from nengodl.runtime.programs import EPOCHS, SharedFunction
from nengodl.runtime.weak import WeakSimulator
from nengodl.runtime.xla import warn_xla_fallback
from nengodl.training.trainer import (
    apply_gradients,
    check_optimizer,
    create_optimizer_variables,
    differentiate,
    get_inference_only,
    optimizer_variables,
    stop_error,
    usable_update,
)

#: what a call of `Executor.runner` computes
PURPOSES = ("train", "evaluate", "predict")

MEAN = tf.distribute.ReduceOp.MEAN


class Results:
    """What one call of a runner gives back.

    Attributes
    ----------
    losses : ndarray
        ``(n_batches, n_objectives)``: each minibatch's loss per objective
        (no columns for ``"predict"``).
    outputs : list or None
        For each minibatch, each probe's output ``(minibatch_size, n_steps,
        size)`` (in ``plan.probes`` order); None where not asked for.
    """

    def __init__(self, losses, outputs):
        self.losses, self.outputs = losses, outputs


class Executor:
    """Runs minibatches of training, evaluation and prediction for a simulator.

    Parameters
    ----------
    sim : Simulator
        The simulator.
    trainer : Trainer
        What a minibatch computes (inputs, probe outputs, losses, variables).
    """

    sim = WeakSimulator()  # the simulator owns this: no reference cycle back

    def __init__(self, sim, trainer):
        self.sim = sim
        self.trainer = trainer
        self.plan = sim.plan
        self.loop = sim.loop
        dist = sim.distributed
        self.strategy = tf.distribute.get_strategy() if dist is None else dist.strategy
        self.replicas = self.strategy.num_replicas_in_sync
        self.local = (self.plan.minibatch_size or 1) // self.replicas
        self._fns = {}

    # --- the front ends' entry -------------------------------------------------

    def runner(
        self,
        purpose,
        objective=None,
        optimizer=None,
        training=None,
        stateful=False,
        with_outputs=None,
    ):
        """A function ``run(batches, n_steps) -> Results`` that runs the
        minibatches ``batches`` (a list of ``(inputs, targets, seed)``, as an
        `EpochIterator` gives them) in one call.

        Parameters
        ----------
        purpose : str
            ``"train"`` (apply one optimizer update per minibatch; where nothing is
            trainable the losses are computed all the same, as in Keras),
            ``"evaluate"`` (losses and outputs) or ``"predict"`` (outputs).
        objective : dict, optional
            Probe -> loss ``fn(output, target)`` (not for ``"predict"``).
        optimizer : keras.optimizers.Optimizer or tf.compat.v1.train.Optimizer
            For ``"train"``.
        training : bool, optional
            The learning phase (default: True for ``"train"`` only).
        stateful : bool
            Start from the simulator's state and leave it at the end (its
            `n_steps` advance), instead of starting every minibatch from the
            initial state and leaving the simulator as it was.
        with_outputs : bool, optional
            Return the probes' outputs (default: not for ``"train"``).
        """
        if purpose not in PURPOSES:
            raise ValueError(f"purpose must be one of {PURPOSES} (got {purpose!r})")
        training = purpose == "train" if training is None else bool(training)
        with_outputs = purpose != "train" if with_outputs is None else bool(with_outputs)
        variables, masks = [], []
        if purpose == "train":
            check_optimizer(optimizer)
            if get_inference_only(self.sim):
                raise ValidationError(
                    "this network is configured with inference_only=True: it cannot be trained",
                    attr="inference_only",
                )
            refusals = training_refusals(self.sim.model.toplevel)
            if refusals:
                raise ValidationError(
                    f"this network cannot be trained: {'; '.join(refusals)}", attr="optimizer"
                )
            pairs = self.trainer.variables()
            variables = [v for v, _ in pairs]
            masks = [None if m is None or m.all() else m for _, m in pairs]
            if variables:
                self._prepare_optimizer(optimizer, variables)
            else:
                optimizer = None  # as Keras and NengoDL 3: the losses, no update
        spec = (purpose, objective, optimizer, variables, masks, training, stateful, with_outputs)
        trainer, plan, run = self.trainer, self.plan, self.sim.run_state
        initial = [np.asarray(s) for s in self.loop.initial_state()]
        held = self._held(optimizer)

        def run_batches(batches, n_steps):
            n = len(batches)
            per_batch = []
            for b, (inputs, _, seed) in enumerate(batches):
                if stateful:
                    feeds = {plan.node_keys[k]: np.swapaxes(v, 0, 1) for k, v in inputs.items()}
                    feeds = plan.complete_feeds(feeds, run.n_steps + b * n_steps, n_steps)
                else:
                    feeds = trainer.host_inputs(inputs, n_steps, seed)
                per_batch.append(feeds)
            feeds = {k: np.stack([f[k] for f in per_batch]) for k in per_batch[0]}
            per_target = [trainer.objective_targets(objective or {}, t) for _, t, _ in batches]
            targets = [None if t[0] is None else np.stack(t) for t in zip(*per_target)]
            state = list(run.tensors) if stateful else initial
            # XLA where a call trains on several minibatches: its compilation is
            # paid back over the epochs (a step at a time it runs without)
            jit = self.sim.jit and self.replicas == 1 and purpose == "train" and n > 1
            call = self._function(spec, jit, n_steps if jit else None)
            with self.sim.seed_scope(), device_scope(self.sim.device):
                losses, stop, n_done, final, outputs = call(
                    held, tf.constant(n_steps, tf.int32), feeds, targets, state, n
                )
            losses, n_done = losses.numpy(), int(n_done)
            if optimizer is not None and n_done:
                run.trained = True
            if stateful:
                run.tensors = self.loop.restore_constants(final, per_batch[-1])
                run.n_steps += n_done * n_steps
            if bool(stop):
                stop_error(losses[: n_done + 1])
            if with_outputs:
                outputs = [o.numpy() for o in outputs]
                outputs = [[o[b] for o in outputs] for b in range(n)]
            return Results(losses, outputs if with_outputs else None)

        return run_batches

    # --- traced functions ---------------------------------------------------

    def _held(self, optimizer):
        """Every variable a call reads or writes, passed in (one device) so that
        nothing of this simulator is in the traced graph: a simulator of the same
        model calls the same traced function, and XLA program (see
        `nengodl.runtime.programs`)."""
        if self.replicas > 1:
            return []
        return [
            v.value if isinstance(v, keras.Variable) else v
            for v in self.loop.all_variables()
            + self.plan.keras_variables()
            + optimizer_variables(optimizer)
        ]

    def _prepare_optimizer(self, optimizer, variables):
        """Create the optimizer's state for ``variables`` up front (so that a traced
        function can apply updates from its first call); under a strategy, raise
        unless it can update mirrored variables."""
        if self.replicas == 1:
            create_optimizer_variables(optimizer, variables)
            return
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
        if getattr(optimizer, "_distribution_strategy", self.strategy) is not self.strategy:
            raise ValidationError(
                "a Keras optimizer used with a distribution strategy must be created "
                "inside `strategy.scope()`",
                attr="optimizer",
            )
        if hasattr(optimizer, "build") and not getattr(optimizer, "built", True):
            with self.strategy.scope():
                optimizer.build(variables)

    def _function(self, spec, jit, max_steps):
        """The callable of ``spec`` (see `runner`), traced once per key: with XLA
        where ``jit`` (falling back to TensorFlow's executor, with a warning, for a
        model XLA cannot compile)."""
        # the key holds the loss functions and optimizer, so their ids cannot be reused
        purpose, objective, optimizer, _, _, training, stateful, with_outputs = spec
        key = (purpose, tuple((objective or {}).items()), optimizer, training, stateful)
        key += (with_outputs, jit, max_steps)
        if key in self._fns:
            return self._fns[key]
        fn = self._traceable(spec, max_steps)
        if self.replicas > 1:
            traced = tf.function(fn, autograph=False, reduce_retracing=True)
            strategy = self.strategy

            def call(held, n_steps, feeds, targets, state, n):
                with strategy.scope():
                    return traced(held, n_steps, feeds, targets, state, tf.constant(n))

        elif not jit:
            traced = tf.function(fn, autograph=False, reduce_retracing=True)

            def call(held, n_steps, feeds, targets, state, n):
                return traced(held, n_steps, feeds, targets, state, tf.constant(n))

        else:
            size = self.loop.options.shared_epochs
            compiled = [
                SharedFunction(tf.function(fn, autograph=False, jit_compile=j), size, True, EPOCHS)
                for j in (True, False)
            ]

            def call(held, n_steps, feeds, targets, state, n):
                # ``n`` static, for XLA's loop bounds
                if len(compiled) > 1:  # not known yet whether XLA compiles it
                    try:
                        result = compiled[0](held, n_steps, feeds, targets, state, n)
                    except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError) as e:
                        warn_xla_fallback(e, "training epoch")
                        compiled.pop(0)
                    else:
                        del compiled[1:]
                        return result
                return compiled[0](held, n_steps, feeds, targets, state, n)

        self._fns[key] = call
        return call

    def _traceable(self, spec, max_steps):
        """``fn(held, n_steps, feeds, targets, state, n_batches) -> (losses, stop,
        n_done, final state, outputs)``: the minibatches of one call, in a loop."""
        purpose, objective, optimizer, variables, masks, training, stateful, with_outputs = spec
        trainer, strategy, replicas, local = self.trainer, self.strategy, self.replicas, self.local
        plan = self.plan
        zipped = list(zip(variables, masks))
        objective = objective or {}
        train = purpose == "train" and optimizer is not None

        def replica(n_steps, feeds, targets, start):
            if replicas > 1:
                feeds = {k: replica_slice(v, local, 1) for k, v in feeds.items()}
                targets = [replica_slice(t, local, 0) for t in targets]
                start = [replica_slice(s, local, 0) for s in start]
            final = []

            def outputs():
                end, outs = trainer.probe_outputs(n_steps, feeds, training, start, max_steps)
                final.extend(end)
                return outs

            def losses(outs):
                if not objective:
                    return tf.zeros((0,), tf.float64)
                return trainer.objective_losses(outs, targets, objective)

            if train:
                consts = [None if m is None else tf.constant(m, v.dtype) for v, m in zipped]
                values, outs, grads = differentiate(outputs, losses, variables, consts)
            else:
                outs = outputs()
                values, grads = losses(outs), []
            return values, outs, grads, final if stateful else []

        def apply(grads):
            if replicas == 1:
                apply_gradients(optimizer, grads, variables)
                return tf.constant(True)

            def replica_apply(grads):
                # optimizers sum gradients over replicas: each passes its share
                apply_gradients(optimizer, [g / replicas for g in grads], variables)
                return tf.constant(0)

            strategy.run(replica_apply, args=(grads,))
            return tf.constant(True)

        def fn(held, n_steps, feeds, targets, state, n_batches):
            del held  # only there so that the variables are arguments, not captures

            def body(b, losses, stop, n_done, carried, outs_arrays):
                start = carried if stateful else state
                args = (
                    n_steps,
                    {k: v[b] for k, v in feeds.items()},
                    [None if t is None else t[b] for t in targets],
                    start,
                )
                values, outs, grads, final = strategy.run(replica, args=args)
                if replicas > 1:
                    values = strategy.reduce(MEAN, values, axis=None)
                    grads = [strategy.reduce(MEAN, g, axis=None) for g in grads]
                    outs = [strategy.gather(o, axis=0) for o in outs]
                    final = [strategy.gather(s, axis=0) for s in final]
                go = tf.logical_not(stop)
                if train:
                    go = tf.logical_and(go, usable_update(values, grads))
                    go = tf.cond(go, lambda: apply(grads), lambda: tf.constant(False))
                if stateful:
                    # (a replica's gathered state has lost its static shape)
                    carried = [
                        tf.ensure_shape(tf.where(go, f, c), c.shape)
                        for f, c in zip(final, carried)
                    ]
                if with_outputs:
                    outs_arrays = [a.write(b, o) for a, o in zip(outs_arrays, outs)]
                return (
                    b + 1,
                    losses.write(b, values),
                    tf.logical_not(go),
                    n_done + tf.cast(go, tf.int32),
                    carried,
                    outs_arrays,
                )

            size = n_batches
            outs_arrays = [
                tf.TensorArray(tf.as_dtype(plan.feed_dtype(sig)), size=size)
                for sig in (plan.probe_sigs if with_outputs else [])
            ]
            _, losses, stop, n_done, final, outs_arrays = tf.while_loop(
                lambda b, *_: b < n_batches,
                body,
                (
                    tf.constant(0),
                    tf.TensorArray(tf.float64, size=size, element_shape=(len(objective),)),
                    tf.constant(False),
                    tf.constant(0),
                    [tf.convert_to_tensor(s) for s in state] if stateful else [],
                    outs_arrays,
                ),
                maximum_iterations=n_batches,
            )
            return losses.stack(), stop, n_done, final, [a.stack() for a in outs_arrays]

        return fn
