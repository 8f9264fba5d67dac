"""Trained parameters as nengo objects' parameters: reading them back
(`get_nengo_params`) and writing them into the network (`freeze_params`), so
that any nengo simulator runs the trained model."""

import inspect

import nengo
import numpy as np
from nengo.ensemble import Neurons
from nengo.exceptions import ValidationError
from nengo.solvers import NoSolver

from nengodl.ops.synapses import trained_synapse


def check_in_model(sim, obj):
    """Refuse an object that is not part of the simulator's model."""
    if obj not in sim.model.params:
        raise ValidationError(
            f"{obj} is not in this simulator's network (objects of another network, or "
            "a copy of one, have no parameters here)",
            attr="objs",
        )


def signal_value(sim, sig):
    """Current value of a parameter (or state, item 0) signal of ``sim``."""
    return sim.run_state.view_value(sig)[0]


def trained_ensemble(sim, ens, built):
    """``built`` (a BuiltEnsemble) with the simulator's current encoders and bias."""
    if isinstance(ens.neuron_type, nengo.Direct):
        return built
    enc_sig = sim.model.sig[ens]["encoders"]
    bias_sig = sim.model.sig[ens.neurons]["bias"]
    if enc_sig in sim.plan.trainable_sigs:
        scaled = signal_value(sim, enc_sig)
        encoders = scaled * (ens.radius / built.gain)[:, None]
        built = built._replace(scaled_encoders=scaled, encoders=encoders)
    if bias_sig in sim.plan.trainable_sigs:
        built = built._replace(bias=signal_value(sim, bias_sig))
    return built


def trained_connection(sim, conn, built):
    """``built`` (a BuiltConnection) with the simulator's current weights."""
    sig = sim.model.sig[conn].get("weights")
    if sig is None or sig.sparse or sig not in sim.plan.trainable_sigs:
        return built
    return built._replace(weights=signal_value(sim, sig))


def current_params(sim, obj, built):
    """The built parameters of ``obj`` as currently trained (``sim``: the
    simulator, or its `nengodl.io.probes.TrainedSource`; only its ``model``,
    ``plan`` and ``run_state`` are read)."""
    if isinstance(obj, nengo.Ensemble):
        return trained_ensemble(sim, obj, built)
    if isinstance(obj, nengo.Connection):
        return trained_connection(sim, obj, built)
    return built


def _with_init(transform, init):
    """A transform like ``transform`` (Convolution, ConvolutionTranspose) with ``init``."""
    names = inspect.signature(type(transform).__init__).parameters
    kwargs = {n: getattr(transform, n) for n in names if n not in ("self", "init")}
    return type(transform)(init=init, **kwargs)


def ensemble_params(sim, ens):
    """Keyword arguments recreating ``ens`` with its current encoders and bias."""
    if isinstance(ens.neuron_type, nengo.Direct):
        raise ValidationError(
            f"get_nengo_params cannot recreate {ens}: it has Direct neurons, whose "
            "encoders nengo's builder ignores (copy its parameters from sim.data instead)",
            attr="objs",
        )
    built = trained_ensemble(sim, ens, sim.model.params[ens])
    return dict(
        encoders=built.encoders,
        normalize_encoders=False,
        gain=built.gain,
        bias=built.bias,
        max_rates=nengo.dists.Uniform(0, 1),
        intercepts=nengo.dists.Uniform(-1, 1),
    )


def connection_params(sim, conn):
    """Keyword arguments recreating ``conn`` with its current weights (and
    synapse, where its time constant trains)."""
    params = connection_weights(sim, conn)
    log_tau = sim.model.sig[conn].get("log_tau")
    if log_tau is not None:
        params["synapse"] = trained_synapse(signal_value(sim, log_tau))
    return params


def connection_weights(sim, conn):
    """Keyword arguments recreating ``conn``'s transform with its current weights."""
    weights = trained_connection(sim, conn, sim.model.params[conn]).weights
    transform = conn.transform
    if weights is None:  # no weights (NoTransform): nothing to carry over
        return dict(transform=None)
    if isinstance(transform, nengo.Sparse):
        if isinstance(weights, nengo.transforms.SparseMatrix):
            sparse = nengo.Sparse(
                transform.shape, indices=np.array(weights.indices), init=np.array(weights.data)
            )
        else:  # a scipy.sparse matrix
            sparse = nengo.Sparse(transform.shape, init=weights.copy())
        return dict(transform=sparse)
    if isinstance(transform, nengo.Convolution) or (
        isinstance(transform, nengo.transforms.Transform) and np.ndim(weights) > 2
    ):
        return dict(transform=_with_init(transform, np.array(weights)))
    if (
        isinstance(conn.pre_obj, nengo.Ensemble)
        and not isinstance(conn.pre_obj.neuron_type, nengo.Direct)
        and not conn.solver.weights
    ):
        size = weights.shape[0]
        return dict(
            solver=NoSolver(weights.T, weights=False),
            function=lambda x, size=size: np.zeros(size),
            transform=nengo.transforms.Dense((size, size), np.eye(size)) if size > 1 else 1,
        )
    return dict(transform=weights)


def get_nengo_params(sim, objs, as_dict=False):
    """Keyword arguments that recreate ``objs`` with their trained parameters.

    Parameters
    ----------
    sim : Simulator
        The (trained) simulator.
    objs : Ensemble, Neurons, Connection or list of them
        The objects (Neurons stand for their Ensemble).
    as_dict : bool
        Return a dict keyed by each object's label instead of a list.

    Returns
    -------
    list or dict
        For an Ensemble: ``encoders``, ``normalize_encoders``, ``gain``, ``bias``,
        ``max_rates``, ``intercepts``; for a Connection: ``solver``, ``function``
        and ``transform`` (decoded connections) or ``transform`` (others: an
        array, or a `nengo.Sparse` / `nengo.Convolution` like the connection's
        own, holding the current weights).

    Raises
    ------
    nengo.exceptions.ValidationError
        For objects of another network, Nodes and other objects that have no
        such parameters, and Ensembles of Direct neurons.
    """
    single = not isinstance(objs, (list, tuple))
    objs = [objs] if single else list(objs)
    objs = [obj.ensemble if isinstance(obj, Neurons) else obj for obj in objs]
    for obj in objs:
        if isinstance(obj, nengo.Node):
            raise ValidationError(
                f"get_nengo_params cannot recreate {obj}: a Node has no parameters "
                "that training changes (its output is its own function); pass Ensembles "
                "and Connections",
                attr="objs",
            )
        if not isinstance(obj, (nengo.Ensemble, nengo.Connection)):
            raise ValidationError(
                f"get_nengo_params supports Ensembles and Connections (got {obj!r})",
                attr="objs",
            )
        check_in_model(sim, obj)
    out = [
        ensemble_params(sim, o) if isinstance(o, nengo.Ensemble) else connection_params(sim, o)
        for o in objs
    ]
    if as_dict:
        return {obj.label or str(obj): p for obj, p in zip(objs, out)}
    return out[0] if single else out


def freeze_params(sim, objs=None):
    """Write trained parameters into the network objects.

    Afterwards any nengo simulator (nengo's own included) runs the trained model.

    Parameters
    ----------
    sim : Simulator
        The (trained) simulator.
    objs : Network, Ensemble, Connection or list, optional
        What to freeze (default: the simulator's whole network).
    """
    if objs is None:
        objs = [sim.network]
    elif not isinstance(objs, (list, tuple)):
        objs = [objs]
    flat = []
    for obj in objs:
        if isinstance(obj, nengo.Network):
            flat.extend(obj.all_ensembles)
            flat.extend(c for c in obj.all_connections if c.learning_rule is None)
        else:
            flat.append(obj)
    for obj in flat:
        check_in_model(sim, obj)
    for obj in flat:
        if isinstance(obj, nengo.Ensemble) and isinstance(obj.neuron_type, nengo.Direct):
            continue
        params = get_nengo_params(sim, obj)
        if isinstance(obj, nengo.Connection) and sim.model.sig[obj].get("weights") is None:
            # no weights (nothing to freeze but a trained synapse, if any)
            params = {k: v for k, v in params.items() if k == "synapse"}
        for name, value in params.items():
            setattr(obj, name, value)
