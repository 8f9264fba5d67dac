"""Checking a simulator's gradients against finite differences: of a loss
against the parameters (`check_gradients`, NengoDL 2's) and of the
probes' outputs against the inputs (`check_input_gradients`, NengoDL 3's)."""

from collections.abc import Mapping

import numpy as np
import tensorflow as tf
from nengo.exceptions import SimulationError, ValidationError

from nengodl.training.data import TrainingData, resolve_objective
from nengodl.training.loop import random_state
from nengodl.training.trainer import differentiate


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
    feeds = trainer.host_inputs(inputs, tdata.n_steps, seed)
    n_steps = tf.constant(tdata.n_steps, tf.int32)
    targets = trainer.objective_targets(objective, targets)
    initial = [np.asarray(s) for s in trainer.loop.initial_state()]

    def outputs(feeds):
        return trainer.probe_outputs(n_steps, feeds, True, initial)[1]

    def losses(outs):
        return trainer.objective_losses(outs, targets, objective)

    grads_fn = tf.function(
        lambda feeds: differentiate(lambda: outputs(feeds), losses, variables), autograph=False
    )
    loss_fn = tf.function(lambda feeds: tf.reduce_sum(losses(outputs(feeds))), autograph=False)
    _, _, grads = grads_fn(feeds)
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
                values.append(float(loss_fn(feeds)))
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


def _input_arrays(sim, nodes, inputs):
    """The input arrays of a gradient check, one per input Node (zeros by default)."""
    batch = sim.minibatch_size or 1
    dtype = sim.plan.dtype.as_numpy_dtype
    if inputs is None:
        n_steps = 2 * sim.unroll_simulation
        return [np.zeros((batch, n_steps, node.size_out), dtype) for node in nodes], n_steps
    if isinstance(inputs, Mapping):
        unknown = [key for key in inputs if key not in nodes]
        if unknown:
            raise ValidationError(
                f"{unknown[0]} is not an input Node of this model (the input Nodes are {nodes})",
                attr="inputs",
            )
        given = dict(inputs)
    else:
        given = dict(zip(nodes, inputs))
        if len(inputs) != len(nodes):
            raise ValidationError(
                f"got {len(inputs)} input arrays for the {len(nodes)} input Nodes {nodes}",
                attr="inputs",
            )
    n_steps = None
    arrays = []
    for node in nodes:
        if node not in given:
            arrays.append(None)
            continue
        arr = np.asarray(given[node], dtype)
        if arr.ndim != 3 or arr.shape[0] != batch or arr.shape[2] != node.size_out:
            raise ValidationError(
                f"input for {node} has shape {arr.shape}, expected "
                f"({batch}, n_steps, {node.size_out})",
                attr="inputs",
            )
        if n_steps is not None and arr.shape[1] != n_steps:
            raise ValidationError(
                f"input for {node} has {arr.shape[1]} steps, the others {n_steps}",
                attr="inputs",
            )
        n_steps = arr.shape[1]
        arrays.append(arr)
    if n_steps is None:
        n_steps = 2 * sim.unroll_simulation
    arrays = [
        np.zeros((batch, n_steps, node.size_out), dtype) if arr is None else arr
        for node, arr in zip(nodes, arrays)
    ]
    return arrays, n_steps


def check_input_gradients(sim, inputs=None, outputs=None, atol=None, rtol=1e-3):
    """NengoDL 3's gradient check: probe outputs against the model's inputs.

    The analytic Jacobian of each probe's output (every step of a run from the
    initial state, in training mode) with respect to the input Nodes' data is
    compared with central finite differences (`tf.test.compute_gradient`).

    Parameters
    ----------
    sim : Simulator
        The simulator.
    inputs : list or dict of numpy.ndarray, optional
        Data for the input Nodes, each ``(minibatch_size, n_steps, size_out)``:
        a list in the model's order of input Nodes, or a dict from Node (Nodes
        left out get zeros). Default: zeros for ``2 * unroll_simulation`` steps.
    outputs : nengo.Probe or list of nengo.Probe, optional
        The probes checked (default: all).
    atol : float, optional
        Absolute tolerance (default 1e-5 in float64, 1e-3 in float32, whose
        finite differences are coarse).
    rtol : float
        Tolerance relative to the numeric gradient.

    Returns
    -------
    dict
        Probe to ``{"analytic": [...], "numeric": [...]}``, one Jacobian per
        input Node, of shape ``(output size, input size)``, each flattened over
        minibatch, steps and signal (in that order).

    Raises
    ------
    SimulationError
        If ``|analytic - numeric| >= atol + rtol * |numeric|`` anywhere, if a
        gradient is NaN, or if the network is configured with ``inference_only``.
    """
    from nengodl.config import get_setting

    if get_setting(sim.model.toplevel, "inference_only", False):
        raise SimulationError(
            "this network is configured with inference_only=True: it has no gradients to check"
        )
    plan = sim.plan
    double = plan.dtype == tf.float64
    atol = (1e-5 if double else 1e-3) if atol is None else atol
    delta = 1e-6 if double else 1e-3
    nodes = list(plan.node_keys)
    if outputs is None:
        outputs = list(plan.probes)
    elif not isinstance(outputs, (list, tuple)):
        outputs = [outputs]
    for probe in outputs:
        if probe not in plan.probes:
            raise ValidationError(f"{probe} is not a probe of this model", attr="outputs")
    if not nodes:
        raise ValidationError("the model has no input Nodes to check gradients for", "inputs")
    arrays, n_steps = _input_arrays(sim, nodes, inputs)
    trainer = sim.trainer
    base = trainer.host_inputs(dict(zip(nodes, arrays)), n_steps, 0)
    keys = [plan.node_keys[node] for node in nodes]
    initial = [np.asarray(s) for s in trainer.loop.initial_state()]
    fn = tf.function(
        lambda n_steps, feeds: trainer.probe_outputs(n_steps, feeds, True, initial)[1],
        autograph=False,
    )
    steps = tf.constant(n_steps, tf.int32)

    def probe_output(k):
        def f(*xs):
            feeds = dict(base)
            for key, x in zip(keys, xs):
                feeds[key] = tf.cast(tf.transpose(x, (1, 0, 2)), base[key].dtype)
            return fn(steps, feeds)[k]

        return f

    grads = {}
    for probe in outputs:
        analytic, numeric = tf.test.compute_gradient(
            probe_output(plan.probes.index(probe)), arrays, delta=delta
        )
        grads[probe] = {"analytic": list(analytic), "numeric": list(numeric)}
        for a, n in zip(analytic, numeric):
            if np.any(np.isnan(a)) or np.any(np.isnan(n)):
                raise SimulationError(f"NaNs in the gradients of {probe}")
            fail = np.abs(a - n) >= atol + rtol * np.abs(n)
            if np.any(fail):
                raise SimulationError(
                    f"gradient check failed for {probe}: numeric {n[fail][:5]}, "
                    f"analytic {a[fail][:5]} (of {int(fail.sum())} elements out of tolerance)"
                )
    return grads
