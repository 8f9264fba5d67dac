"""What one minibatch computes, and the pieces of a training step.

`Trainer` holds the model's side of training and evaluation: the inputs of a
minibatch (given, or computed on the host), the probes' outputs of a run from
a given state, the objectives' losses and the trainable variables. The
functions here differentiate the losses, decide whether an update is usable
and apply it. `nengodl.training.executor.Executor` runs minibatches with them.
"""

import keras
import numpy as np
import tensorflow as tf
from nengo.exceptions import SimulationError, ValidationError
from tensorflow.python.framework import ops as tf_ops

from nengodl.runtime.host import HostOp
from nengodl.runtime.weak import WeakSimulator
from nengodl.training.loop import random_state


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
    """What a minibatch of training, evaluation or prediction computes.

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
                k: HostOp(h.op, plan.dt, plan.minibatch_size, plan.errors, plan.dtype)
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
        """The final state and the probes' outputs of a run from ``initial``
        (inside a traced function).

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
        final : list of tf.Tensor
            The state after the last step.
        outputs : list of tf.Tensor
            Each probe's output, ``(minibatch_size, n_steps, size)`` (one step
            where it keeps no history, see `kept_history`).
        """
        state = [tf.convert_to_tensor(v) for v in initial]
        training = training or self.loop.learning_phase  # configure_settings(learning_phase=True)
        # the epoch may be XLA-compiled, whose loop is not unrolled (see `SimLoop.loop`)
        unroll = 1 if self.sim.jit else None
        final, stacked = self.loop.loop(
            n_steps, state, feeds, training=training, max_steps=max_steps, unroll=unroll
        )
        return final, self.kept_history(self.loop.probe_tensors(stacked))

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

    def variables(self):
        """Trainable variables and their gradient masks (None: no mask)."""
        pairs = [(v, m) for v, m in self.loop.trainable]
        pairs += [(v, None) for v in self.plan.keras_trainable()]
        return pairs


def get_inference_only(sim):
    """Whether the simulator's network was configured with ``inference_only``."""
    from nengodl.config import get_setting

    return bool(get_setting(sim.model.toplevel, "inference_only", False))
