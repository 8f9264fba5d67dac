"""Training and evaluation: the seed tutorial's `Simulator.train` and `Simulator.loss`.

Each minibatch runs the simulation from the initial state for the data's
``n_steps`` inside one `tf.function`, spiking neurons swapped for their rate
counterparts while training, and the objectives compare probe outputs with
targets. Training never changes the simulator's run state (time, probe data).
"""

from collections.abc import Mapping

import keras
import nengo
import numpy as np
import tensorflow as tf
from nengo.exceptions import SimulationError, ValidationError

from nengodl.data import check_count, check_finite_data
from nengodl.host import HostOp
from nengodl.objectives import mse
from nengodl.progress import Stage
from nengodl.runtime.xla import warn_xla_fallback


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


def masked_gradients(grads, masks, variables):
    """Gradients restricted to the trainable elements (``masks``; None: all of a
    variable), with zeros for variables the loss does not depend on."""
    return [
        tf.zeros(v.shape, v.dtype) if g is None else (g if m is None else g * m)
        for g, m, v in zip(grads, masks, variables)
    ]


def random_state(seed):
    """``np.random.RandomState(seed)``; with ``seed=None`` it is seeded from numpy's
    global generator, so that `numpy.random.seed` (or ``keras.utils.set_random_seed``)
    makes shuffling and stochastic inputs repeatable."""
    return np.random.RandomState(np.random.randint(2**31 - 1) if seed is None else seed)


def check_finite(losses, grads):
    """Raise `SimulationError` if a loss or gradient is not finite.

    Parameters
    ----------
    losses : ndarray
        Loss values of one minibatch.
    grads : list of tf.Tensor
        Gradients about to be applied.
    """
    if not np.all(np.isfinite(losses)):
        raise SimulationError(
            f"training loss became {float(np.sum(losses))}; parameters are "
            "left at their last finite values"
        )
    if not all(np.isfinite(g.numpy()).all() for g in grads):
        raise SimulationError(
            "training gradients became non-finite; parameters are left at their last finite values"
        )


class TrainingData:
    """Inputs and targets split into minibatches.

    Parameters
    ----------
    sim : Simulator
        The simulator (for its input Nodes, probes and minibatch size).
    data : dict
        Map from input Node to inputs and from Probe to targets, each
        ``(batch_size, n_steps, size)``.
    any_target_size : bool
        Accept targets of size 1 besides the probe's size (Keras losses such as
        ``SparseCategoricalCrossentropy`` take class indices); other sizes are
        refused, rather than broadcast against the output.
    """

    def __init__(self, sim, data, any_target_size=False):
        if not isinstance(data, Mapping) or not data:
            raise ValidationError(
                "data must be a non-empty dict mapping input Nodes and Probes to arrays",
                attr="data",
            )
        self.inputs, self.targets = {}, {}
        shapes = {}
        for obj, value in data.items():
            arr = np.asarray(value)
            if isinstance(obj, nengo.Probe):
                if obj not in sim.model.probes:
                    raise ValidationError(f"{obj} is not in the simulated model", attr="data")
                size = int(np.prod(sim.model.sig[obj]["in"].shape))
                if any_target_size and arr.ndim == 3 and arr.shape[2] == 1:
                    size = 1  # class indices, or one value for every output
                self.targets[obj] = arr
            elif isinstance(obj, nengo.Node):
                if obj not in sim.plan.node_keys:
                    raise ValidationError(
                        f"{obj} is not an input Node (size_in=0) of the simulated model",
                        attr="data",
                    )
                size = obj.size_out
                self.inputs[obj] = arr
            else:
                raise ValidationError(
                    f"data keys must be input Nodes or Probes (got {obj!r})", attr="data"
                )
            if arr.dtype.kind not in "biuf":
                raise ValidationError(
                    f"data for {obj} must be numeric (got dtype {arr.dtype})", attr="data"
                )
            if arr.ndim != 3 or arr.shape[2] != size:
                raise ValidationError(
                    f"data for {obj} has shape {arr.shape}; expected "
                    f"(batch_size, n_steps, {size})",
                    attr="data",
                )
            if sim.check_finite:
                check_finite_data(arr, obj, allow_nan=isinstance(obj, nengo.Probe))
            shapes[obj] = arr.shape[:2]
        if len(set(shapes.values())) > 1:
            listing = ", ".join(f"{k}: {v}" for k, v in shapes.items())
            raise ValidationError(
                f"all data must have the same batch size and number of steps ({listing})",
                attr="data",
            )
        self.batch_size, self.n_steps = next(iter(shapes.values()))
        mb = sim.plan.minibatch_size
        if self.batch_size % mb != 0:
            raise ValidationError(
                f"batch size {self.batch_size} is not a multiple of the simulator's "
                f"minibatch_size ({mb})",
                attr="data",
            )
        self.n_batches = self.batch_size // mb
        self.minibatch_size = mb

    def batches(self, rng=None):
        """Yield ``(inputs, targets)`` dicts of minibatches (shuffled with ``rng``)."""
        order = np.arange(self.batch_size)
        if rng is not None:
            rng.shuffle(order)
        for b in range(self.n_batches):
            idx = order[b * self.minibatch_size : (b + 1) * self.minibatch_size]
            yield (
                {k: v[idx] for k, v in self.inputs.items()},
                {k: v[idx] for k, v in self.targets.items()},
            )


def resolve_objective(objective, targets, probes):
    """Map probe -> objective function from the ``objective`` argument
    (``probes``: those of the simulated model)."""
    if objective is None:
        if not targets:
            raise ValidationError("no Probe targets in data for the objective", attr="data")
        return {p: mse for p in targets}
    if callable(objective) and not isinstance(objective, Mapping):
        if len(targets) != 1:
            raise ValidationError(
                "a single objective function needs exactly one Probe target in data "
                f"(got {len(targets)}); pass a dict {{probe: function}}",
                attr="objective",
            )
        return {next(iter(targets)): objective}
    if not isinstance(objective, Mapping):
        raise ValidationError(
            f"objective must be a function or a dict {{probe: function}} "
            f"(got {type(objective).__name__})",
            attr="objective",
        )
    for probe, fn in objective.items():
        if not isinstance(probe, nengo.Probe):
            raise ValidationError(
                f"objective keys must be Probes (got {probe!r})", attr="objective"
            )
        if probe not in probes:
            raise ValidationError(
                f"{probe} is not a probe of this simulator's network", attr="objective"
            )
        if probe not in targets and getattr(fn, "needs_targets", True):
            raise ValidationError(
                f"{probe} is in the objective but has no target in data", attr="objective"
            )
    return dict(objective)


class Trainer:
    """Runs training and evaluation passes for a simulator.

    Parameters
    ----------
    sim : Simulator
        The simulator.
    """

    def __init__(self, sim):
        self.sim = sim
        self.plan = sim.plan
        self.loop = sim.loop
        self._fns = {}
        self._train_hosts = None

    # --- inputs --------------------------------------------------------------

    def _host_inputs(self, inputs, n_steps, seed):
        """Feeds for one minibatch: given inputs, the rest computed on the host."""
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

    def _outputs(self, n_steps, feeds, training, initial, max_steps=None):
        state = [tf.constant(v) for v in initial]
        training = training or self.loop.learning_phase  # configure_settings(learning_phase=True)
        # the epoch may be XLA-compiled, whose loop is not unrolled (see `SimLoop.loop`)
        unroll = 1 if self.sim.jit else None
        _, stacked = self.loop.loop(
            n_steps, state, feeds, training=training, max_steps=max_steps, unroll=unroll
        )
        return self.loop.probe_tensors(stacked)

    def _losses(self, outputs, targets, objective):
        """Per-objective loss values (float64 vector)."""
        by_probe = dict(zip(self.plan.probes, outputs))
        values = []
        for (probe, fn), target in zip(objective.items(), targets):
            out = by_probe[probe]
            if target is not None:
                target = tf.cast(target, out.dtype)
            values.append(tf.cast(tf.reshape(fn(out, target), ()), tf.float64))
        return tf.stack(values)

    @staticmethod
    def _targets(objective, targets):
        return [targets.get(p) for p in objective]

    def _function(self, kind, objective, variables, training):
        key = (kind, training, tuple((id(p), id(f)) for p, f in (objective or {}).items()))
        if key in self._fns:
            return self._fns[key]
        initial = [np.asarray(s) for s in self.loop.initial_state()]

        if kind == "grads":

            def fn(n_steps, feeds, targets):
                with tf.GradientTape() as tape:
                    outputs = self._outputs(n_steps, feeds, training, initial)
                    losses = self._losses(outputs, targets, objective)
                    total = tf.reduce_sum(losses)
                return losses, outputs, tape.gradient(total, variables)

        elif kind == "loss":

            def fn(n_steps, feeds, targets):
                outputs = self._outputs(n_steps, feeds, training, initial)
                return self._losses(outputs, targets, objective), outputs

        else:  # outputs only

            def fn(n_steps, feeds):
                return self._outputs(n_steps, feeds, training, initial)

        fn = tf.function(fn, autograph=False, reduce_retracing=True)
        self._fns[key] = fn
        return fn

    def _apply_fn(self, optimizer, variables):
        key = ("apply", id(optimizer), tuple(id(v) for v in variables))
        if key not in self._fns:

            def apply(grads):
                optimizer.apply_gradients(zip(grads, variables))

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
        that runs one minibatch and applies one optimiser update."""
        check_optimizer(optimizer)
        if get_inference_only(self.sim):
            raise ValidationError(
                "this network is configured with inference_only=True: it cannot be trained",
                attr="inference_only",
            )
        pairs = self.variables()
        if not pairs:
            raise ValidationError(
                "nothing to train: no trainable parameters (check the `trainable` settings)",
                attr="trainable",
            )
        variables = [v for v, _ in pairs]
        masks = [None if m is None or m.all() else tf.constant(m, v.dtype) for v, m in pairs]
        if self.sim.distributed is not None:
            return self.sim.distributed.train_step(
                self, optimizer, objective, variables, masks, training
            )
        grads_fn = self._function("grads", objective, variables, training)
        apply_fn = self._apply_fn(optimizer, variables)

        def step(inputs, targets, n_steps, seed):
            feeds = self._host_inputs(inputs, n_steps, seed)
            losses, outputs, grads = grads_fn(
                tf.constant(n_steps, tf.int32), feeds, self._targets(objective, targets)
            )
            losses = losses.numpy()
            grads = masked_gradients(grads, masks, variables)
            check_finite(losses, grads)
            apply_fn(grads)
            self.sim.run_state.trained = True
            return losses, outputs

        return step

    def eval_step(self, objective, training=False):
        """A function ``step(inputs, targets, n_steps, seed) -> (losses, outputs)``."""
        if self.sim.distributed is not None:
            return self.sim.distributed.eval_step(self, objective, training)
        fn = self._function("loss", objective, None, training)

        def step(inputs, targets, n_steps, seed):
            feeds = self._host_inputs(inputs, n_steps, seed)
            losses, outputs = fn(
                tf.constant(n_steps, tf.int32), feeds, self._targets(objective, targets)
            )
            return losses.numpy(), outputs

        return step

    def predict_step(self, training=False):
        """A function ``step(inputs, n_steps, seed) -> outputs`` (one per probe)."""
        if self.sim.distributed is not None:
            return self.sim.distributed.predict_step(self, training)
        fn = self._function("outputs", None, None, training)

        def step(inputs, n_steps, seed):
            feeds = self._host_inputs(inputs, n_steps, seed)
            return fn(tf.constant(n_steps, tf.int32), feeds)

        return step

    # --- the seed's API --------------------------------------------------------

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
        rng = random_state(seed) if shuffle else None
        seeds = random_state(seed)
        last = [float("nan")]
        epoch_fn = None  # distributed training, and inputs computed on the host: by batch
        if self.sim.distributed is None:
            create_optimizer_variables(optimizer, [v for v, _ in self.variables()])
            epoch_fn = self._epoch_function(optimizer, objective, tdata)
        with Stage(
            "Training",
            progress_bar,
            max_value=n_epochs * tdata.n_batches,
            suffix=lambda: f"loss: {last[0]:.4g}",
            variables=("epoch", "loss"),
        ) as stage:
            done = 0
            for epoch in range(n_epochs):
                losses = []
                batches = list(tdata.batches(rng))
                if epoch_fn is not None:
                    losses = epoch_fn(batches)
                    batches = []
                    done += len(losses)
                for inputs, targets in batches:
                    values, _ = step(inputs, targets, tdata.n_steps, seeds.randint(2**31 - 1))
                    losses.append(float(np.sum(values)))
                    done += 1
                    stage.update(done, epoch=epoch + 1, loss=float(np.mean(losses)))
                stage.update(done, epoch=epoch + 1, loss=float(np.mean(losses)))
                last[0] = float(np.mean(losses))
        return last[0]

    def _epoch_function(self, optimizer, objective, tdata):
        """One compiled call that trains on every minibatch of an epoch, or None.

        Used when all inputs come from the data (nothing is computed on the host
        per minibatch). A batch whose loss is not finite stops the updates.
        """
        plan = self.plan
        fed = {plan.node_keys[n] for n in tdata.inputs}
        if any(key not in fed for key in plan.fed_keys):
            return None
        pairs = self.variables()
        variables = [v for v, _ in pairs]
        masks = [None if m is None or m.all() else tf.constant(m, v.dtype) for v, m in pairs]
        initial = [np.asarray(s) for s in self.loop.initial_state()]
        n_steps = tdata.n_steps
        keys = [plan.node_keys[n] for n in tdata.inputs]
        dtypes = [plan.feed_dtype(plan.feed_sig(k)) for k in keys]

        def fn(feeds, targets):
            first = next(iter(feeds.values())) if feeds else targets[0]
            n_batches = first.shape[0] if first.shape[0] is not None else tf.shape(first)[0]

            def body(b, losses, stop):
                with tf.GradientTape() as tape:
                    outputs = self._outputs(
                        tf.constant(n_steps),
                        {k: v[b] for k, v in feeds.items()},
                        True,
                        initial,
                        max_steps=n_steps,
                    )
                    total = tf.reduce_sum(
                        self._losses(
                            outputs, [None if t is None else t[b] for t in targets], objective
                        )
                    )
                grads = masked_gradients(tape.gradient(total, variables), masks, variables)
                finite = tf.reduce_all(
                    [tf.math.is_finite(total)]
                    + [tf.reduce_all(tf.math.is_finite(g)) for g in grads]
                )

                def apply():
                    optimizer.apply_gradients(zip(grads, variables))
                    return tf.constant(True)

                tf.cond(
                    tf.logical_and(finite, tf.logical_not(stop)), apply, lambda: tf.constant(False)
                )
                return b + 1, losses.write(b, total), tf.logical_or(stop, tf.logical_not(finite))

            _, losses, stop = tf.while_loop(
                lambda b, *_: b < n_batches,
                body,
                (tf.constant(0), tf.TensorArray(tf.float64, size=n_batches), tf.constant(False)),
                maximum_iterations=n_batches,
            )
            return losses.stack(), stop

        # XLA runs an epoch ~20x faster than TensorFlow's executor once compiled (the
        # compilation costs about as much as 20 epochs on the seed tutorial); models XLA
        # cannot compile fall back on the first call
        compiled = [tf.function(fn, autograph=False, jit_compile=True)] if self.sim.jit else []
        compiled.append(tf.function(fn, autograph=False))

        def call(feeds, targets):
            if len(compiled) > 1:  # not known yet whether XLA compiles it
                try:
                    result = compiled[0](feeds, targets)
                except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError) as e:
                    warn_xla_fallback(e, "training epoch")
                    compiled.pop(0)
                else:
                    del compiled[1:]
                    return result
            return compiled[0](feeds, targets)

        def run_epoch(batches):
            feeds = {
                k: np.stack([np.swapaxes(inp[n], 0, 1) for inp, _ in batches]).astype(dt)
                for k, n, dt in zip(keys, tdata.inputs, dtypes)
            }
            targets = [
                np.stack([tgt[p] for _, tgt in batches]) if p in tdata.targets else None
                for p in objective
            ]
            losses, stop = call(feeds, targets)
            losses = losses.numpy()
            # batches before a non-finite one did update the parameters
            self.sim.run_state.trained = True
            if bool(stop):
                bad = losses[~np.isfinite(losses)]
                what = f"loss became {bad[0]}" if len(bad) else "gradients became non-finite"
                raise SimulationError(
                    f"training {what}; parameters are left at their last finite values"
                )
            return [float(v) for v in losses]

        return run_epoch

    def loss(self, data, objective=None, progress_bar=True, seed=None):
        """See `Simulator.loss`."""
        tdata = TrainingData(self.sim, data)
        objective = resolve_objective(objective, tdata.targets, self.sim.model.probes)
        step = self.eval_step(objective)
        seeds = random_state(seed)
        losses = []
        with Stage("Calculation", progress_bar, max_value=tdata.n_batches) as stage:
            for inputs, targets in tdata.batches():
                values, _ = step(inputs, targets, tdata.n_steps, seeds.randint(2**31 - 1))
                losses.append(float(np.sum(values)))
                stage.update(len(losses))
        return float(np.mean(losses))


def check_gradients(trainer, data, objective=None, atol=None, n_checks=5, eps=None, seed=0):
    """Compare analytic gradients with central finite differences.

    Parameters
    ----------
    trainer : Trainer
        The simulator's trainer.
    data : dict
        Inputs and targets, as for `Simulator.train` (one minibatch is used).
    objective : callable or dict, optional
        As for `Simulator.train`.
    atol : float, optional
        Allowed error, relative to ``max(1, |numeric gradient|)`` (default 1e-4
        in float64, 1e-2 in float32, whose finite differences are coarse).
    n_checks : int
        Elements checked per variable.
    eps : float, optional
        Finite difference step (default 1e-5 in float64, 1e-3 in float32).

    Returns
    -------
    float
        The largest relative error found.

    Raises
    ------
    SimulationError
        If an error exceeds ``atol``.
    """
    double = trainer.plan.dtype == tf.float64
    atol = (1e-4 if double else 1e-2) if atol is None else atol
    eps = (1e-5 if double else 1e-3) if eps is None else eps
    tdata = TrainingData(trainer.sim, data)
    objective = resolve_objective(objective, tdata.targets, trainer.sim.model.probes)
    inputs, targets = next(tdata.batches())
    pairs = trainer.variables()
    variables = [v for v, _ in pairs]
    grads_fn = trainer._function("grads", objective, variables, True)
    loss_step = trainer.eval_step(objective, training=True)
    feeds = trainer._host_inputs(inputs, tdata.n_steps, seed)
    _, _, grads = grads_fn(
        tf.constant(tdata.n_steps, tf.int32), feeds, trainer._targets(objective, targets)
    )
    rng = random_state(seed)
    worst = 0.0
    for (var, mask), grad in zip(pairs, grads):
        original = var.numpy().copy()
        flat_mask = np.ones(original.size, bool) if mask is None else np.asarray(mask).ravel()
        candidates = np.flatnonzero(flat_mask)
        grad = np.zeros(original.size) if grad is None else np.asarray(grad).ravel()
        for i in rng.choice(candidates, size=min(n_checks, len(candidates)), replace=False):
            values = []
            for sign in (1, -1):
                pert = original.ravel().copy()
                pert[i] += sign * eps
                var.assign(pert.reshape(original.shape))
                values.append(float(np.sum(loss_step(inputs, targets, tdata.n_steps, seed)[0])))
            var.assign(original)
            numeric = (values[0] - values[1]) / (2 * eps)
            err = abs(numeric - grad[i]) / max(1.0, abs(numeric))
            worst = max(worst, err)
            if err > atol:
                raise SimulationError(
                    f"gradient mismatch for {var.name} element {i}: analytic {grad[i]:.6g}, "
                    f"numeric {numeric:.6g}"
                )
    return worst


def get_inference_only(sim):
    """Whether the simulator's network was configured with ``inference_only``."""
    from nengodl.config import get_setting

    return bool(get_setting(sim.network, "inference_only", False))
