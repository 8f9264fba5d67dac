"""Training and evaluation: NengoDL 2's `Simulator.train` and `Simulator.loss`.

Each minibatch runs the simulation from the initial state for the data's
``n_steps`` inside one `tf.function`, spiking neurons swapped for their rate
counterparts while training, and the objectives compare probe outputs with
targets. Training never changes the simulator's run state (time, probe data).
"""

import keras
import numpy as np
import tensorflow as tf
from nengo.exceptions import SimulationError, ValidationError
from tensorflow.python.framework import ops as tf_ops

from nengodl.io.checks import check_count
from nengodl.runtime.host import HostOp
from nengodl.runtime.programs import EPOCHS, SharedFunction
from nengodl.runtime.weak import WeakSimulator
from nengodl.runtime.xla import warn_xla_fallback
from nengodl.training.data import TrainingData, resolve_objective
from nengodl.training.loop import (
    EpochIterator,
    EpochLogs,
    evaluate_batches,
    fit_epochs,
    random_state,
)


def check_optimizer(optimizer):
    """Raise a clear error unless ``optimizer`` is a Keras or TF1-style optimizer."""
    if isinstance(optimizer, (keras.optimizers.Optimizer, tf.compat.v1.train.Optimizer)):
        return optimizer
    raise ValidationError(
        f"optimizer must be a Keras optimizer (e.g. keras.optimizers.RMSprop) or a "
        f"tf.compat.v1.train optimizer (got {type(optimizer).__name__})",
        attr="optimizer",
    )


def create_optimizer_variables(optimizer, variables):
    """Create ``optimizer``'s slot variables for ``variables`` up front, so that a
    compiled function can apply gradients from its first call."""
    if isinstance(optimizer, keras.optimizers.Optimizer):
        if not optimizer.built:
            optimizer.build(variables)
    else:
        with tf.init_scope():
            optimizer._create_slots(variables)  # what apply_gradients does first


def optimizer_variables(optimizer):
    """The state variables of a Keras or ``tf.compat.v1`` optimizer (maybe empty)."""
    if optimizer is None:
        return []
    variables = getattr(optimizer, "variables", [])
    return list(variables() if callable(variables) else variables)


def apply_gradients(optimizer, grads, variables):
    """``optimizer.apply_gradients(zip(grads, variables))`` inside a traced
    function, leaving nothing of the trace registered for the process's life.

    A Keras optimizer sums the gradients over the replicas through a
    ``tf.custom_gradient``, which in a traced function registers its gradient
    function in TensorFlow's global gradient registry, under a new name each
    trace, for good; that function holds the traced graph (for the epoch
    function, the whole epoch's graph: about 5 MiB on a small model) and the
    handles of the variables it captured, so each simulator that trained kept
    its graphs and parameters for the life of the process. Nothing
    differentiates an optimizer update, so the gradient functions registered
    while it is traced are removed again (only the entries new since the call
    began; with TensorFlow internals other than expected, nothing is removed).

    Parameters
    ----------
    optimizer : keras.optimizers.Optimizer or tf.compat.v1.train.Optimizer
        The optimizer.
    grads : list of tf.Tensor
        The gradients.
    variables : list of tf.Variable
        The variables they update.
    """
    registry = getattr(getattr(tf_ops, "gradient_registry", None), "_registry", None)
    before = set(registry) if isinstance(registry, dict) else None
    optimizer.apply_gradients(zip(grads, variables))
    if before is not None and not tf.executing_eagerly():
        for name in [n for n in registry if n not in before]:
            if str(name).startswith("CustomGradient"):
                registry.pop(name, None)


def masked_gradients(grads, masks, variables):
    """Gradients restricted to the trainable elements (``masks``; None: all of a
    variable), with zeros for variables the loss does not depend on."""
    return [
        tf.zeros(v.shape, v.dtype) if g is None else (g if m is None else g * m)
        for g, m, v in zip(grads, masks, variables)
    ]


def usable_update(losses, grads):
    """Whether one minibatch's update may be applied (a boolean tensor): no loss
    is NaN or +inf, and every gradient is finite. A loss of -inf is one driven as
    low as it goes, and training goes on (as in NengoDL 3 and Keras)."""
    losses = tf.convert_to_tensor(losses)
    loss_ok = tf.logical_not(
        tf.reduce_any(tf.math.is_nan(losses)) | tf.reduce_any(tf.equal(losses, np.inf))
    )
    return tf.reduce_all([loss_ok] + [tf.reduce_all(tf.math.is_finite(g)) for g in grads])


def check_finite(losses, grads):
    """Raise `SimulationError` unless `usable_update` says the update may be applied.

    Parameters
    ----------
    losses : ndarray
        Loss values of one minibatch.
    grads : list of tf.Tensor
        Gradients about to be applied.
    """
    if not bool(usable_update(losses, grads)):
        stop_error(losses)


def stop_error(losses):
    """Raise the `SimulationError` of training stopped by a minibatch whose
    ``losses`` (or, where they are usable, gradients) are not finite."""
    losses = np.asarray(losses)
    totals = np.atleast_1d(losses.sum(axis=-1))
    bad = totals[np.isnan(totals) | (totals == np.inf)]
    what = f"loss became {bad[0]}" if len(bad) else "gradients became non-finite"
    raise SimulationError(f"training {what}; parameters are left at their last finite values")


def differentiate(outputs_fn, losses_fn, variables, masks=None):
    """One minibatch's ``(losses, outputs, gradients)`` (inside a traced function).

    Parameters
    ----------
    outputs_fn : callable
        ``outputs_fn() -> outputs`` runs the simulation.
    losses_fn : callable
        ``losses_fn(outputs) -> losses`` (one per objective).
    variables : list of tf.Variable
        What the gradients of the total loss are taken with respect to.
    masks : list, optional
        Gradient masks (see `masked_gradients`); None: the raw gradients
        (None for a variable the loss does not depend on).
    """
    with tf.GradientTape() as tape:
        outputs = outputs_fn()
        losses = losses_fn(outputs)
        total = tf.reduce_sum(losses)
    grads = tape.gradient(total, variables)
    if masks is not None:
        grads = masked_gradients(grads, masks, variables)
    return losses, outputs, grads


class Trainer:
    """Runs training and evaluation passes for a simulator.

    Parameters
    ----------
    sim : Simulator
        The simulator.
    """

    sim = WeakSimulator()  # the simulator owns this: no reference cycle back

    def __init__(self, sim):
        self.sim = sim
        self.plan = sim.plan
        self.loop = sim.loop
        self._fns = {}
        self._train_hosts = None

    # --- inputs --------------------------------------------------------------

    def host_inputs(self, inputs, n_steps, seed):
        """Feeds for one minibatch: given inputs, the rest computed on the host.

        Parameters
        ----------
        inputs : dict
            Input Node -> ``(minibatch_size, n_steps, size)`` array.
        n_steps : int
            Number of steps.
        seed : int
            Seed of the Nodes computed on the host (one stream per item).

        Returns
        -------
        dict
            Feed key -> ``(n_steps, minibatch_size, size)`` array.
        """
        plan = self.plan
        feeds = {}
        for node, arr in inputs.items():
            key = plan.node_keys[node]
            feeds[key] = np.swapaxes(arr, 0, 1).astype(plan.feed_dtype(plan.feed_sig(key)))
        if self._train_hosts is None:
            self._train_hosts = {
                k: HostOp(h.op, plan.dt, plan.minibatch_size, plan.errors)
                for k, h in plan.pre_ops.items()
            }
        needed = {k: h for k, h in self._train_hosts.items() if k not in feeds and h.output}
        if needed:
            seeds = random_state(seed).randint(2**31 - 1, size=plan.minibatch_size)
            for item, s in enumerate(seeds):
                rng = np.random.RandomState(s)
                for host in needed.values():
                    host.make_item(item, rng)
            for key, host in needed.items():
                feeds[key] = host.precompute(0, n_steps, plan.feed_dtype(host.output))
        return feeds

    # --- compiled functions ----------------------------------------------------

    def probe_outputs(self, n_steps, feeds, training, initial, max_steps=None):
        """The probes' outputs of a run from ``initial`` (inside a traced function).

        Parameters
        ----------
        n_steps : tf.Tensor
            Number of steps.
        feeds : dict
            Feed key -> tensor (`host_inputs`).
        training : bool
            The learning phase (or ``configure_settings(learning_phase=True)``).
        initial : list of ndarray or tf.Tensor
            The state to start from (``loop.initial_state()``).
        max_steps : int, optional
            Static bound of ``n_steps`` (for XLA).

        Returns
        -------
        list of tf.Tensor
            Each probe's output, ``(minibatch_size, n_steps, size)`` (one step
            where it keeps no history, see `kept_history`).
        """
        state = [tf.convert_to_tensor(v) for v in initial]
        training = training or self.loop.learning_phase  # configure_settings(learning_phase=True)
        # the epoch may be XLA-compiled, whose loop is not unrolled (see `SimLoop.loop`)
        unroll = 1 if self.sim.jit else None
        _, stacked = self.loop.loop(
            n_steps, state, feeds, training=training, max_steps=max_steps, unroll=unroll
        )
        return self.kept_history(self.loop.probe_tensors(stacked))

    def kept_history(self, outputs):
        """Each probe's output as the model returns and scores it: the last step
        alone for a probe configured with ``keep_history=False`` (NengoDL 3).

        Parameters
        ----------
        outputs : list of tf.Tensor or ndarray
            Each probe's output, ``(minibatch_size, n_steps, size)``, in
            ``plan.probes`` order.
        """
        last_only = self.sim.run_state.recorder.last_only
        return [o[:, -1:] if p in last_only else o for p, o in zip(self.plan.probes, outputs)]

    def objective_losses(self, outputs, targets, objective):
        """Per-objective loss values.

        Parameters
        ----------
        outputs : list of tf.Tensor
            Each probe's output, ``(batch, n_steps, size)``, in ``plan.probes`` order.
        targets : list
            Each objective's target (`objective_targets`), or None.
        objective : dict
            Map from Probe to its loss function ``fn(output, target)``.

        Returns
        -------
        tf.Tensor
            The losses, one per objective (float64 vector).
        """
        by_probe = dict(zip(self.plan.probes, outputs))
        values = []
        for (probe, fn), target in zip(objective.items(), targets):
            out = by_probe[probe]
            if target is not None:
                target = tf.cast(target, out.dtype)
            values.append(tf.cast(tf.reshape(fn(out, target), ()), tf.float64))
        return tf.stack(values)

    @staticmethod
    def objective_targets(objective, targets):
        """``targets`` (a dict keyed by Probe) as a list in ``objective``'s order,
        None for a probe without one."""
        return [targets.get(p) for p in objective]

    def compiled_function(self, kind, objective, variables, training):
        """The traced function of one minibatch, made once per ``kind``,
        ``objective`` and ``training``.

        Parameters
        ----------
        kind : str
            ``"grads"``: ``fn(n_steps, feeds, targets) -> (losses, outputs,
            gradients of variables)``; ``"loss"``: ``-> (losses, outputs)``;
            ``"outputs"``: ``fn(n_steps, feeds) -> outputs``; ``"grads_from"``:
            ``fn(n_steps, feeds, targets, state) -> (losses, outputs, gradients,
            final state)``, from ``state`` instead of the initial state.
        objective : dict or None
            Probe -> loss ``fn(output, target)``.
        variables : list of tf.Variable or None
            What ``"grads"`` differentiates.
        training : bool
            The learning phase.

        Returns
        -------
        tf.types.experimental.PolymorphicFunction
            The function.
        """
        # the key holds the loss functions, so their ids cannot be reused
        key = (kind, training, tuple((objective or {}).items()))
        if key in self._fns:
            return self._fns[key]
        initial = [np.asarray(s) for s in self.loop.initial_state()]

        if kind == "grads":

            def fn(n_steps, feeds, targets):
                return differentiate(
                    lambda: self.probe_outputs(n_steps, feeds, training, initial),
                    lambda outputs: self.objective_losses(outputs, targets, objective),
                    variables,
                )

        elif kind == "loss":

            def fn(n_steps, feeds, targets):
                outputs = self.probe_outputs(n_steps, feeds, training, initial)
                return self.objective_losses(outputs, targets, objective), outputs

        elif kind == "grads_from":  # from a given state; the final state too

            def fn(n_steps, feeds, targets, state):
                final = []

                def outputs():
                    end, stacked = self.loop.loop(n_steps, state, feeds, training=training)
                    final.extend(end)
                    return self.kept_history(self.loop.probe_tensors(stacked))

                losses, outputs, grads = differentiate(
                    outputs,
                    lambda outputs: self.objective_losses(outputs, targets, objective),
                    variables,
                )
                return losses, outputs, grads, final

        else:  # outputs only

            def fn(n_steps, feeds):
                return self.probe_outputs(n_steps, feeds, training, initial)

        fn = tf.function(fn, autograph=False, reduce_retracing=True)
        self._fns[key] = fn
        return fn

    def _apply_fn(self, optimizer, variables):
        key = ("apply", optimizer, tuple(id(v) for v in variables))  # the simulator's
        if key not in self._fns:

            def apply(grads):
                apply_gradients(optimizer, grads, variables)

            self._fns[key] = tf.function(apply, autograph=False)
        return self._fns[key]

    def variables(self):
        """Trainable variables and their gradient masks (None: no mask)."""
        pairs = [(v, m) for v, m in self.loop.trainable]
        pairs += [(v, None) for v in self.plan.keras_trainable()]
        return pairs

    # --- steps ---------------------------------------------------------------

    def train_step(self, optimizer, objective, training=True):
        """A function ``step(inputs, targets, n_steps, seed) -> (losses, outputs)``
        that runs one minibatch and applies one optimiser update (none where
        nothing is trainable: the losses are computed all the same)."""
        check_optimizer(optimizer)
        if get_inference_only(self.sim):
            raise ValidationError(
                "this network is configured with inference_only=True: it cannot be trained",
                attr="inference_only",
            )
        pairs = self.variables()
        if not pairs:
            # as Keras and NengoDL 3: nothing changes, the loss is still computed
            return self.eval_step(objective, training)
        variables = [v for v, _ in pairs]
        masks = [None if m is None or m.all() else tf.constant(m, v.dtype) for v, m in pairs]
        if self.sim.distributed is not None:
            return self.sim.distributed.train_step(
                self, optimizer, objective, variables, masks, training
            )
        grads_fn = self.compiled_function("grads", objective, variables, training)
        apply_fn = self._apply_fn(optimizer, variables)

        def step(inputs, targets, n_steps, seed):
            feeds = self.host_inputs(inputs, n_steps, seed)
            losses, outputs, grads = grads_fn(
                tf.constant(n_steps, tf.int32), feeds, self.objective_targets(objective, targets)
            )
            losses = losses.numpy()
            grads = masked_gradients(grads, masks, variables)
            check_finite(losses, grads)
            apply_fn(grads)
            self.sim.run_state.trained = True
            return losses, outputs

        return step

    def stateful_train_step(self, optimizer, objective, training=True):
        """`train_step` for ``fit(stateful=True)`` (NengoDL 3.6): each minibatch
        starts where the simulator stands and leaves it at the end (its signals,
        `n_steps` and time advance), so that state carries from one minibatch to
        the next; the gradients stop at the minibatch's start. Nodes without
        data compute their output on the simulator's own host operators, at its
        time, as in ``predict(stateful=True)``."""
        check_optimizer(optimizer)
        if self.sim.distributed is not None:
            raise ValidationError(
                "fit(stateful=True) is not supported under a distribution strategy",
                attr="stateful",
            )
        pairs = self.variables()
        variables = [v for v, _ in pairs]
        masks = [None if m is None or m.all() else tf.constant(m, v.dtype) for v, m in pairs]
        grads_fn = self.compiled_function("grads_from", objective, variables, training)
        apply_fn = self._apply_fn(optimizer, variables)
        plan, run = self.plan, self.sim.run_state

        def step(inputs, targets, n_steps, seed):
            feeds = {plan.node_keys[node]: np.swapaxes(arr, 0, 1) for node, arr in inputs.items()}
            feeds = plan.complete_feeds(feeds, run.n_steps, n_steps)
            losses, outputs, grads, final = grads_fn(
                tf.constant(n_steps, tf.int32),
                feeds,
                self.objective_targets(objective, targets),
                list(run.tensors),
            )
            losses = losses.numpy()
            grads = masked_gradients(grads, masks, variables)
            check_finite(losses, grads)
            if variables:
                apply_fn(grads)
                self.sim.run_state.trained = True
            run.tensors = self.loop.restore_constants(final, feeds)
            run.n_steps += n_steps
            return losses, outputs

        return step

    def eval_step(self, objective, training=False):
        """A function ``step(inputs, targets, n_steps, seed) -> (losses, outputs)``."""
        if self.sim.distributed is not None:
            return self.sim.distributed.eval_step(self, objective, training)
        fn = self.compiled_function("loss", objective, None, training)

        def step(inputs, targets, n_steps, seed):
            feeds = self.host_inputs(inputs, n_steps, seed)
            losses, outputs = fn(
                tf.constant(n_steps, tf.int32), feeds, self.objective_targets(objective, targets)
            )
            return losses.numpy(), outputs

        return step

    def predict_step(self, training=False):
        """A function ``step(inputs, n_steps, seed) -> outputs`` (one per probe)."""
        if self.sim.distributed is not None:
            return self.sim.distributed.predict_step(self, training)
        fn = self.compiled_function("outputs", None, None, training)

        def step(inputs, n_steps, seed):
            feeds = self.host_inputs(inputs, n_steps, seed)
            return fn(tf.constant(n_steps, tf.int32), feeds)

        return step

    # --- NengoDL 2's API --------------------------------------------------------

    def train(
        self,
        data,
        optimizer,
        objective=None,
        n_epochs=1,
        shuffle=True,
        progress_bar=True,
        seed=None,
    ):
        """See `Simulator.train`."""
        check_optimizer(optimizer)
        n_epochs = check_count(n_epochs, "n_epochs")
        tdata = TrainingData(self.sim, data)
        if n_epochs == 0:
            return None  # as Keras's fit with no epochs: the data checked, nothing trained
        objective = resolve_objective(objective, tdata.targets, self.sim.model.probes)
        step = self.train_step(optimizer, objective)
        names = [str(p) for p in objective]
        logs = fit_epochs(
            step,
            EpochIterator(tdata, shuffle, seed),
            n_epochs,
            lambda: EpochLogs(names),
            epoch_fn=self.epoch_function(optimizer, objective, tdata),
            progress=progress_bar,
        )
        return logs["loss"]

    def epoch_function(self, optimizer, objective, tdata):
        """One compiled call that trains on every minibatch of an epoch, or None.

        Only where all inputs come from the data (nothing is computed on the host
        per minibatch) and no distribution strategy is used. It returns one row
        of losses (one per objective) per minibatch; a batch whose loss is NaN
        or +inf, or whose gradients are not finite, stops the updates.
        """
        if self.sim.distributed is not None or not self.variables():
            return None
        create_optimizer_variables(optimizer, [v for v, _ in self.variables()])
        plan = self.plan
        fed = {plan.node_keys[n] for n in tdata.inputs}
        if any(key not in fed for key in plan.fed_keys):
            return None
        pairs = self.variables()
        variables = [v for v, _ in pairs]
        masks = [None if m is None or m.all() else m for _, m in pairs]
        initial = [np.asarray(s) for s in self.loop.initial_state()]
        n_steps = tdata.n_steps
        keys = [plan.node_keys[n] for n in tdata.inputs]
        dtypes = [plan.feed_dtype(plan.feed_sig(k)) for k in keys]
        # every variable the epoch reads or writes, and the initial state, passed
        # in so that nothing of this simulator is in the graph: a simulator of the
        # same model calls the same traced function (and XLA program) on its own
        # (see `nengodl.runtime.programs`)
        held = [
            v.value if isinstance(v, keras.Variable) else v
            for v in self.loop.all_variables()
            + self.plan.keras_variables()
            + optimizer_variables(optimizer)
        ]

        def fn(held, initial, feeds, targets, n_batches):
            # the masks made here are constants of the graph, not captured tensors
            tf_masks = [
                None if m is None else tf.constant(m, v.dtype) for v, m in zip(variables, masks)
            ]

            def body(b, losses, stop, n_applied):
                values, _, grads = differentiate(
                    lambda: self.probe_outputs(
                        tf.constant(n_steps),
                        {k: v[b] for k, v in feeds.items()},
                        True,
                        initial,
                        max_steps=n_steps,
                    ),
                    lambda outputs: self.objective_losses(
                        outputs, [None if t is None else t[b] for t in targets], objective
                    ),
                    variables,
                    tf_masks,
                )
                finite = usable_update(values, grads)

                def apply():
                    apply_gradients(optimizer, grads, variables)
                    return tf.constant(True)

                applied = tf.cond(
                    tf.logical_and(finite, tf.logical_not(stop)), apply, lambda: tf.constant(False)
                )
                return (
                    b + 1,
                    losses.write(b, values),
                    tf.logical_or(stop, tf.logical_not(finite)),
                    n_applied + tf.cast(applied, tf.int32),
                )

            _, losses, stop, n_applied = tf.while_loop(
                lambda b, *_: b < n_batches,
                body,
                (
                    tf.constant(0),
                    tf.TensorArray(tf.float64, size=n_batches, element_shape=(len(objective),)),
                    tf.constant(False),
                    tf.constant(0),
                ),
                maximum_iterations=n_batches,
            )
            return losses.stack(), stop, n_applied

        # XLA runs an epoch ~20x faster than TensorFlow's executor once compiled (the
        # compilation costs about as much as 20 epochs of the From Nengo to NengoDL
        # tutorial's training); models XLA cannot compile fall back on the first call
        size = self.loop.options.shared_epochs
        compiled = [
            SharedFunction(tf.function(fn, autograph=False, jit_compile=jit), size, True, EPOCHS)
            for jit in ([True, False] if self.sim.jit else [False])
        ]

        def call(feeds, targets, n_batches):
            if len(compiled) > 1:  # not known yet whether XLA compiles it
                try:
                    result = compiled[0](held, initial, feeds, targets, n_batches)
                except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError) as e:
                    warn_xla_fallback(e, "training epoch")
                    compiled.pop(0)
                else:
                    del compiled[1:]
                    return result
            return compiled[0](held, initial, feeds, targets, n_batches)

        def run_epoch(batches):
            feeds = {
                k: np.stack([np.swapaxes(inp[n], 0, 1) for inp, _ in batches]).astype(dt)
                for k, n, dt in zip(keys, tdata.inputs, dtypes)
            }
            targets = [
                np.stack([tgt[p] for _, tgt in batches]) if p in tdata.targets else None
                for p in objective
            ]
            losses, stop, n_applied = call(feeds, targets, len(batches))  # static, for XLA
            losses = losses.numpy()
            # batches before a non-finite one did update the parameters (and where
            # none did, the parameters are still the built ones)
            if int(n_applied) > 0:
                self.sim.run_state.trained = True
            if bool(stop):
                stop_error(losses)
            return losses

        return run_epoch

    def loss(self, data, objective=None, progress_bar=True, seed=None):
        """See `Simulator.loss`."""
        tdata = TrainingData(self.sim, data)
        objective = resolve_objective(objective, tdata.targets, self.sim.model.probes)
        logs = evaluate_batches(
            self.eval_step(objective),
            EpochIterator(tdata, seed=seed),
            EpochLogs([str(p) for p in objective]),
            progress_bar,
            label="Calculation",
        )
        return logs.mean_loss()


def get_inference_only(sim):
    """Whether the simulator's network was configured with ``inference_only``."""
    from nengodl.config import get_setting

    return bool(get_setting(sim.model.toplevel, "inference_only", False))
