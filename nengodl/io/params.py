"""Parameter files: saving and loading trained parameters (and, optionally,
the simulation state), and the simulator methods of parameter I/O.

Trained parameters live in the simulator's `tf.Variable` objects (one per base
signal); `nengodl.io.nengo_params` reads them back as nengo objects'
parameters and freezes them into the network.
"""

import os
import re
import warnings

import nengo
import numpy as np
from nengo.ensemble import Neurons
from nengo.exceptions import SimulatorClosed, ValidationError

from nengodl.io.nengo_params import freeze_params, get_nengo_params
from nengodl.views import flat_positions


def check_open(sim, method):
    """Raise `~nengo.exceptions.SimulatorClosed` for ``method`` of a closed simulator
    (as NengoDL 3.6)."""
    if sim.closed:
        raise SimulatorClosed(f"Cannot call {method} after the simulator is closed")


#: the kinds of objects whose signals are keyed in parameter files, in the order
#: tried; anything else (synapses, processes, learning rules, the model's own
#: signals) is "other"
KEY_KINDS = (
    ("ensemble", nengo.Ensemble),
    ("neurons", Neurons),
    ("node", nengo.Node),
    ("connection", nengo.Connection),
    ("probe", nengo.Probe),
)


def object_keys(model):
    """``{object: key}`` for the objects of ``model.sig``: their kind and their
    index among the model's objects of that kind (``"connection3"``).

    What a parameter means (the weights of the network's fourth connection)
    does not change where a variant of a network adds objects of another kind,
    as a converted Keras model with synapses adds nengo synapses, whereas its
    position among all of the model's objects does.
    """
    counts, keys = {}, {}
    for obj in model.sig:
        kind = next((k for k, t in KEY_KINDS if isinstance(obj, t)), "other")
        keys[obj] = f"{kind}{counts.get(kind, 0)}"
        counts[kind] = counts.get(kind, 0) + 1
    return keys


def signal_keys(sim):
    """``(key, old_key, signal)`` for the signals of the model's objects, in build order.

    Keys (``"<object key>.<name>"``, see `object_keys`) are the same for every
    simulator of the same network, in any process, whereas the order of base
    signals and variables is not (it follows sets of operators). Saved values
    are therefore keyed by signal. ``old_key`` is the key of files saved before
    (``"<index in model.sig>.<name>"``), which loading still accepts.
    """
    keys = object_keys(sim.model)
    for k, (obj, sigs) in enumerate(sim.model.sig.items()):
        for name, sig in sigs.items():
            if sig is not None and hasattr(sig, "base") and not sig.sparse:
                yield f"{keys[obj]}.{name}", f"{k}.{name}", sig


def variable_layout(sim, variables):
    """A string describing which model signals each of ``variables`` holds.

    Two simulators of one network whose trainable variables have equal layouts
    (nengo's merging optimiser can lay them out differently from build to
    build) can exchange state stored per variable, such as an optimizer's.
    """
    bases = {id(var): base for base, var in sim.run_state.variables().items()}
    parts = {}
    for key, _, sig in signal_keys(sim):
        parts.setdefault(sig.base, []).append(f"{key}@{sig.elemoffset}")
    return ";".join(
        ",".join(parts.get(bases.get(id(var)), [tuple(var.shape).__repr__()])) for var in variables
    )


def _uncovered(bases, covered):
    """The bases of ``bases`` with elements no model signal refers to."""
    return [b for b in bases if not covered.get(b, np.zeros(b.size, bool)).all()]


def _coverage(sim, bases):
    covered = {}
    for _, _, sig in signal_keys(sim):
        if sig.base in bases:
            mask = covered.setdefault(sig.base, np.zeros(sig.base.size, bool))
            mask[flat_positions(sig)] = True
    return covered


def save_params(sim, path, include_state=False, extra=None):
    """Save trainable parameters (and optionally the simulation state) to ``path``.

    Values are stored per model signal (see `signal_keys`), so a file saved by
    one simulator loads into any other simulator of the same network (another
    process, or one using a distribution strategy), and into variants of it
    that add objects of other kinds (a converted model with synapses). Only
    what training may change is saved (as NengoDL 3.6's trainable weights):
    constants the model derives from its own definition (neuron gains, a
    ``scale_firing_rates`` factor) stay as each network builds them.

    Parameters
    ----------
    sim : Simulator
        The simulator.
    path : str
        File name; ``.npz`` is appended if missing.
    include_state : bool
        Also save the current simulation state (signals, time).
    extra : dict, optional
        More arrays to store in the same file (e.g. an optimizer's state).
    """
    variables = sim.run_state.variables()
    values = {base: var.numpy().ravel() for base, var in variables.items()}
    trainable = set(sim.plan.trainable_sigs)
    state = {}
    if include_state:
        state = {
            base: val.reshape(len(val), -1) for base, val in sim.run_state.state_arrays().items()
        }
    arrays = {}
    for key, _, sig in signal_keys(sim):
        idx = flat_positions(sig)
        if sig.base in values and sig in trainable:
            arrays[f"param:{key}"] = values[sig.base][idx]
        if sig.base in state:
            arrays[f"state:{key}"] = state[sig.base][:, idx]
    # state elements no model signal refers to (synapses' own): by position
    for k, base in enumerate(_uncovered(list(state), _coverage(sim, state))):
        arrays[f"state_{k}"] = state[base]
    for k, var in enumerate(sim.plan.keras_variables()):
        arrays[f"keras_{k}"] = var.numpy()
    if include_state:
        arrays["n_steps"] = np.array(sim.n_steps)
    arrays.update(extra or {})
    if not str(path).endswith(".npz"):
        path = f"{path}.npz"
    write_npz(path, arrays)


def write_npz(path, arrays):
    """Write ``arrays`` to the ``.npz`` file ``path`` atomically.

    The file is written under a temporary name and then renamed, so a process
    killed while saving leaves the previous file intact.

    Parameters
    ----------
    path : str
        File name (used as is).
    arrays : dict
        Map from entry name to array.
    """
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays)
    os.replace(tmp, path)


def load_params(sim, path, include_state=False):
    """Load values saved by `save_params` into ``sim``.

    Raises
    ------
    ValidationError
        If the file does not match the simulator's model.
    """
    if not str(path).endswith(".npz"):
        path = f"{path}.npz"
    what = "a parameter file written by Simulator.save_params (a .npz archive)"
    if not os.path.exists(path):
        raise ValidationError(f"No file {path}; expected {what}", attr="path")
    try:
        with np.load(path, allow_pickle=False) as f:
            data = dict(f)
    except Exception as e:  # truncated, not a zip archive, a plain .npy...
        raise ValidationError(
            f"Cannot read {path} ({type(e).__name__}: {e}); expected {what}", attr="path"
        ) from None
    if not isinstance(data, dict):
        raise ValidationError(f"{path} is not {what}", attr="path")

    # files saved before entries were keyed by object kind ("param:17.weights")
    positional = any(re.match(r"(param|state):\d", k) for k in data)

    def entry(key, shape, old_key=None):
        if positional and old_key is not None:
            key = old_key
        if key not in data or data[key].shape != shape:
            raise ValidationError(
                f"{path} does not match this model: entry '{key}' is "
                f"{'missing' if key not in data else data[key].shape}, "
                f"expected shape {shape}",
                attr="path",
            )
        return data[key]

    run = sim.run_state
    variables = run.variables()
    values = {base: var.numpy().ravel().copy() for base, var in variables.items()}
    state = {}
    if include_state:
        if "n_steps" not in data:
            raise ValidationError(f"{path} holds no simulation state", attr="path")
        state = {
            base: val.reshape(len(val), -1).copy() for base, val in run.state_arrays().items()
        }
    trainable = set(sim.plan.trainable_sigs)
    for key, old, sig in signal_keys(sim):
        idx = flat_positions(sig)
        if sig.base in values and sig in trainable:
            values[sig.base][idx] = entry(f"param:{key}", (sig.size,), f"param:{old}")
        if sig.base in state:
            shape = (sim.plan.minibatch_size, sig.size)
            state[sig.base][:, idx] = entry(f"state:{key}", shape, f"state:{old}")
    for k, base in enumerate(_uncovered(list(state), _coverage(sim, state))):
        state[base] = entry(f"state_{k}", state[base].shape)
    keras_values = [  # every entry is checked before anything changes
        (var, entry(f"keras_{k}", tuple(var.shape)))
        for k, var in enumerate(sim.plan.keras_variables())
    ]
    for base, var in variables.items():
        var.assign(values[base].reshape(var.shape).astype(np.asarray(var.numpy()).dtype))
    for var, value in keras_values:
        var.assign(value.astype(np.asarray(var.numpy()).dtype))
    if include_state:
        run.set_state_arrays(state)
        run.n_steps = int(data["n_steps"])
    run.trained = True


def resolve_include_state(include_state, include_non_trainable):
    """``include_state``, or the value of its deprecated NengoDL 3 name.

    NengoDL 3.0 and 3.1 called it ``include_non_trainable`` (the simulation
    state was what Keras saw as the non-trainable weights); 3.2 renamed it and
    kept the old name with a DeprecationWarning, as here.
    """
    if include_non_trainable is None:
        return include_state
    warnings.warn(
        "include_non_trainable is deprecated, use include_state instead",
        DeprecationWarning,
        stacklevel=3,
    )
    return include_non_trainable


class ParamsMethods:
    """The `Simulator` methods that read, save, load and freeze parameters."""

    def save_params(self, path, include_state=False, include_non_trainable=None):
        """Save all parameters (and optionally the simulation state) to a ``.npz`` file.

        Every parameter is saved, trainable or not (the weights of Keras layers in
        TensorNodes included), as in NengoDL 3.

        Parameters
        ----------
        path : str
            File name; ``.npz`` is appended if missing.
        include_state : bool
            Also save the simulation state (signal values and time).
        include_non_trainable : bool, optional
            Deprecated name of ``include_state`` (NengoDL 3.0-3.1); it warns and,
            when given, is used instead.

        Examples
        --------
        >>> import os, tempfile
        >>> import nengo, nengodl
        >>> with nengo.Network() as net:
        ...     stim = nengo.Node([0.5])
        ...     p = nengo.Probe(stim)
        >>> path = os.path.join(tempfile.mkdtemp(), "params")
        >>> with nengodl.Simulator(net, progress_bar=False) as sim:
        ...     sim.save_params(path)
        >>> os.path.exists(path + ".npz")
        True
        """
        include_state = resolve_include_state(include_state, include_non_trainable)
        check_open(self, "save_params")
        save_params(self, path, include_state=include_state)

    def load_params(self, path, include_state=False, include_non_trainable=None):
        """Load parameters (and optionally the state) saved by `save_params`.

        Parameters
        ----------
        path : str
            File name; ``.npz`` is appended if missing.
        include_state : bool
            Also restore the simulation state saved with ``include_state=True``.
        include_non_trainable : bool, optional
            Deprecated name of ``include_state`` (as in `save_params`).

        Raises
        ------
        nengo.exceptions.ValidationError
            If the file does not match this simulator's model.

        Examples
        --------
        Save a connection weight, train it away, and restore it:

        >>> import os, tempfile
        >>> import keras, nengo, nengodl
        >>> with nengo.Network() as net:
        ...     a = nengo.Node([1.0])
        ...     b = nengo.Node(size_in=1)
        ...     conn = nengo.Connection(a, b, transform=2.0, synapse=None)
        ...     p = nengo.Probe(b)
        >>> data = {a: np.ones((1, 1, 1)), p: np.full((1, 1, 1), 0.5)}  # target: b = 0.5
        >>> path = os.path.join(tempfile.mkdtemp(), "params")
        >>> with nengodl.Simulator(net, progress_bar=False) as sim:
        ...     sim.save_params(path)
        ...     _ = sim.train(data, keras.optimizers.SGD(0.25), n_epochs=3)
        ...     trained = float(sim.data[conn].weights)
        ...     sim.load_params(path)
        ...     restored = float(sim.data[conn].weights)
        >>> trained, restored
        (0.6875, 2.0)
        """
        include_state = resolve_include_state(include_state, include_non_trainable)
        self.run_state.parameters_changing()
        check_open(self, "load_params")
        load_params(self, path, include_state=include_state)

    def get_nengo_params(self, nengo_objs, as_dict=False):
        """Keyword arguments that recreate ``nengo_objs``, with trained values, in plain nengo.

        Parameters
        ----------
        nengo_objs : Ensemble, Neurons, Connection or list of them
            The objects (Neurons stand for their Ensemble).
        as_dict : bool
            Return a dict keyed by each object's label instead of a list.

        Returns
        -------
        dict, list or dict of dicts
            For an Ensemble: ``encoders``, ``normalize_encoders``, ``gain``, ``bias``,
            ``max_rates``, ``intercepts``; for a Connection: ``transform`` (and
            ``solver``, ``function`` for decoded connections); a sparse or
            convolution transform comes back as a `nengo.Sparse` or
            `nengo.Convolution` holding the current weights.

        Raises
        ------
        nengo.exceptions.ValidationError
            For a Node (it has no such parameters), an Ensemble of Direct
            neurons, or an object of another network.

        Examples
        --------
        >>> import nengo, nengodl
        >>> with nengo.Network(seed=0) as net:
        ...     ens = nengo.Ensemble(10, 1)
        >>> with nengodl.Simulator(net, progress_bar=False) as sim:
        ...     params = sim.get_nengo_params(ens)
        >>> sorted(params)
        ['bias', 'encoders', 'gain', 'intercepts', 'max_rates', 'normalize_encoders']
        >>> with nengo.Network() as copy:
        ...     same = nengo.Ensemble(10, 1, **params)
        """
        return get_nengo_params(self, nengo_objs, as_dict=as_dict)

    def freeze_params(self, objs=None):
        """Write trained parameters into the network objects.

        Afterwards any simulator, ``nengo.Simulator`` included, runs the trained model.

        Parameters
        ----------
        objs : Network, Ensemble, Connection or list, optional
            What to freeze (default: the simulator's whole network).

        Examples
        --------
        >>> import keras, nengo, nengodl
        >>> with nengo.Network() as net:
        ...     a = nengo.Node([1.0])
        ...     b = nengo.Node(size_in=1)
        ...     conn = nengo.Connection(a, b, transform=2.0, synapse=None)
        ...     p = nengo.Probe(b)
        >>> data = {a: np.ones((1, 1, 1)), p: np.full((1, 1, 1), 0.5)}  # target: b = 0.5
        >>> with nengodl.Simulator(net, progress_bar=False) as sim:
        ...     _ = sim.train(data, keras.optimizers.SGD(0.25), n_epochs=10)
        ...     sim.freeze_params()
        >>> with nengo.Simulator(net, progress_bar=False) as nengo_sim:
        ...     nengo_sim.step()
        >>> round(float(nengo_sim.data[p][0, 0]), 4)  # was 2.0 before training
        0.5015
        """
        freeze_params(self, objs)
