"""`configure_settings` and the per-object ``trainable`` and ``keep_history`` settings.

Settings live in nengo's own config system, as in NengoDL 3:

- ``trainable`` is set on the network being defined (the innermost ``with``
  block): it becomes a configurable parameter of Ensembles, Neurons,
  Connections, Nodes and Networks, and ``net.config[obj].trainable``
  overrides it per object or per class;
- ``keep_history`` becomes a parameter of Probes in the top-level network's
  config (``net.config[probe].keep_history`` overrides it per probe);
- every other setting is a parameter of the top-level network.

``use_loop``, ``planner``, ``sorter`` and ``simplifications`` are accepted
(checked, and stored) but change nothing: nengodl always runs a loop that
takes any number of steps, and its operator merging and signal layout are
its own (they never change the output; see `nengodl.options.Options` for the
switches that tune them).
"""

import math
from collections.abc import Callable

import nengo
from nengo.ensemble import Neurons
from nengo.exceptions import ConfigError, NetworkContextError, ValidationError
from nengo.params import BoolParam, Parameter

from nengodl.io.checks import check_dtype

TRAINABLE_TYPES = (nengo.Ensemble, Neurons, nengo.Connection, nengo.Node, nengo.Network)


def _check_bool(name, value, optional=False):
    if (optional and value is None) or isinstance(value, bool):
        return value
    expected = "True, False or None" if optional else "True or False"
    raise ValidationError(f"Must be {expected} (got {value!r})", attr=name)


def _check_lif_smoothing(name, value):
    if value is None:
        return None
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value <= 0:
        raise ValidationError(
            f"Must be a positive number (the SoftLIFRate sigma) or None (got {value!r})",
            attr=name,
        )
    return float(value)


def _check_dtype(name, value):
    return None if value is None else check_dtype(value).name


def _check_function(name, value):
    if value is None or isinstance(value, Callable):
        return value
    raise ValidationError(f"Must be a function or None (got {value!r})", attr=name)


def _check_functions(name, value):
    if value is None:
        return None
    if not isinstance(value, (list, tuple)) or not all(isinstance(f, Callable) for f in value):
        raise ValidationError(f"Must be a list of functions or None (got {value!r})", attr=name)
    return list(value)


# setting -> checker(name, value) -> value to store, for settings of the top-level network
NETWORK_SETTINGS = {
    "lif_smoothing": _check_lif_smoothing,
    "inference_only": _check_bool,
    "dtype": _check_dtype,
    "learning_phase": lambda n, v: _check_bool(n, v, optional=True),
    "check_finite": _check_bool,
    "stateful": _check_bool,
    "use_loop": _check_bool,
    "planner": _check_function,
    "sorter": _check_function,
    "simplifications": _check_functions,
}
#: Settings accepted for NengoDL 3 compatibility that change nothing here.
NO_EFFECT = ("use_loop", "planner", "sorter", "simplifications")
#: NengoDL settings refused here, with the reason.
REFUSED = {
    "session_config": (
        "NengoDL 3 removed it (there are no TensorFlow sessions); use tf.config "
        "(e.g. tf.config.experimental.set_memory_growth) instead"
    ),
    "distribute_strategy": (
        "give the strategy to the simulator instead: Simulator(..., strategy=s), or "
        "build it inside `with s.scope():` (a strategy cannot be pickled with the network)"
    ),
}
SETTINGS = {"trainable", "keep_history", "trainable_synapses"} | set(NETWORK_SETTINGS)


def _add_param(config, cls, name, param):
    """Make ``name`` a parameter of ``cls`` in ``config`` (kept if it already is one,
    so that values set per object stay)."""
    if cls not in config.params:
        config.configures(cls)
    if name not in config[cls]._extra_params:
        config[cls].set_param(name, param)


def configure_settings(**kwargs):
    """Configure nengodl settings on the network being defined (``with net:``).

    As in NengoDL 3, each call sets only the settings it names. ``trainable``
    is set on the network being defined (so subnetworks can differ); the
    others on the top-level network of the ``with`` blocks.

    Parameters
    ----------
    trainable : bool or None
        Default trainability of the parameters of this network's objects
        (None leaves the default, True, but makes ``net.config[obj].trainable``
        available; it then takes True, False or None).
    trainable_synapses : bool
        Whether training also changes the time constants of the `nengo.Lowpass`
        synapses of connections whose parameters train (default False: as in
        nengo and NengoDL 3, synapses are fixed). ``net.config[conn]
        .trainable_synapse`` then overrides it per connection. A time constant
        trains as its logarithm (it stays positive); ``save_params`` /
        ``load_params`` keep it and ``freeze_params`` writes it back into the
        connection's synapse. Other synapse types stay fixed.
    keep_history : bool
        Whether probes keep every step of a run (True, the default) or only
        its last step (False: ``sim.data[probe]`` gets one row per run).
        ``net.config[probe].keep_history`` then overrides it per probe.
    stateful : bool
        Whether runs carry the simulation state on to the next call (True, the
        default). False makes every ``run``/``run_steps`` start where the
        simulator stood before it (``stateful=True`` in a call does not
        override it).
    lif_smoothing : float, optional
        Smoothing of the LIF rate approximation used while training.
    inference_only : bool
        Build no training graph (`Simulator.train` and ``fit`` are refused;
        ``learning_phase=True`` with it is a `nengo.exceptions.BuildError`).
    dtype : str, optional
        Default floating point type of simulators of this network,
        ``"float16"``, ``"float32"`` or ``"float64"``.
    learning_phase : bool, optional
        Run ``sim.run`` in training mode too (spiking neurons as rate neurons).
    check_finite : bool
        Refuse NaN and infinite values in ``data=`` and training data (default
        True; False saves one pass over large inputs).
    use_loop : bool
        Accepted, no effect: the loop runs any number of steps either way
        (NengoDL 3's ``use_loop=False`` runs exactly ``unroll_simulation``
        steps; so does a run of that many steps here, with the same output).
    planner, sorter : callable, optional
        Accepted, no effect (nengodl merges operators and lays out signals its
        own way; the output does not depend on it).
    simplifications : list of callable, optional
        Accepted, no effect (as ``planner``).

    Raises
    ------
    nengo.exceptions.NetworkContextError
        Outside a ``with network:`` block.
    nengo.exceptions.ConfigError
        For an unknown setting, or one nengodl refuses (``session_config``,
        ``distribute_strategy``), saying why.
    nengo.exceptions.ValidationError
        For a value of the wrong kind, naming the setting.

    Examples
    --------
    >>> import nengo, nengodl
    >>> with nengo.Network() as net:
    ...     nengodl.configure_settings(trainable=False, keep_history=False)
    ...     net.config[nengo.Ensemble].trainable = True
    ...     ens = nengo.Ensemble(10, 1)
    ...     p = nengo.Probe(ens)
    >>> with nengodl.Simulator(net, progress_bar=False) as sim:
    ...     sim.run_steps(5)
    >>> sim.data[p].shape  # the last step of the run only
    (1, 1)
    """
    if len(nengo.Network.context) == 0:
        raise NetworkContextError(
            "configure_settings must be called inside a `with network:` block"
        )
    for name in kwargs:
        if name in REFUSED:
            raise ConfigError(f"Setting '{name}' is not supported: {REFUSED[name]}")
        if name not in SETTINGS:
            raise ConfigError(f"Unknown setting '{name}'; expected one of {sorted(SETTINGS)}")
    checked = {}
    for name, value in kwargs.items():  # every value is checked before anything is set
        if name == "trainable":
            checked[name] = _check_bool(name, value, optional=True)
        elif name in ("keep_history", "trainable_synapses"):
            checked[name] = _check_bool(name, value)
        else:
            checked[name] = NETWORK_SETTINGS[name](name, value)
    top = nengo.Network.context[0].config
    for name, value in checked.items():
        if name == "trainable":
            config = nengo.Network.context[-1].config
            for cls in TRAINABLE_TYPES:
                _add_param(config, cls, name, BoolParam(name, default=None, optional=True))
            if value is not None:
                config[nengo.Network].trainable = value
        elif name == "keep_history":
            _add_param(top, nengo.Probe, name, BoolParam(name, default=True))
            top[nengo.Probe].keep_history = value
        elif name == "trainable_synapses":
            param = BoolParam("trainable_synapse", default=False)
            _add_param(top, nengo.Connection, "trainable_synapse", param)
            top[nengo.Connection].trainable_synapse = value
        else:
            _add_param(top, nengo.Network, name, Parameter(name, default=None, optional=True))
            setattr(top[nengo.Network], name, value)


def get_setting(model, setting, default=None, obj=None):
    """The value of ``setting`` configured on the network ``model`` (or ``default``).

    Parameters
    ----------
    model : nengo.Network or nengo.builder.Model or None
        The top-level network, or a model built from it (its ``toplevel``
        network is read, as NengoDL 3 does).
    setting : str
        The setting (for ``trainable`` and ``keep_history`` on the objects of
        a network, see `is_trainable` and `keeps_history`, which also follow
        the subnetworks an object is in).
    default
        What to return when the setting is not configured (or None).
    obj : nengo object, optional
        Read the setting from this object's config entry in ``network``
        (``net.config[obj].trainable`` and the like) rather than from the
        network's own.

    Examples
    --------
    >>> with nengo.Network() as net:
    ...     configure_settings(lif_smoothing=0.1, trainable=None)
    ...     a = nengo.Ensemble(10, 1)
    ...     net.config[a].trainable = False
    >>> get_setting(net, "lif_smoothing"), get_setting(net, "trainable", obj=a)
    (0.1, False)
    """
    network = model
    if network is not None and not isinstance(network, nengo.Network):
        network = getattr(network, "toplevel", None)  # a built Model
    if network is None:
        return default
    if obj is not None and obj is not network:
        try:
            value = getattr(network.config[obj], setting)
        except (AttributeError, ConfigError):  # not configured for this kind of object
            return default
        return default if value is None else value
    if nengo.Network not in network.config.params:
        return default
    cfg = network.config[nengo.Network]
    if setting not in cfg._extra_params:
        return default
    try:
        value = getattr(network.config[network], setting)
    except AttributeError:  # a Network subclass with a config entry of its own (spa.Network)
        value = getattr(cfg, setting)
    return default if value is None else value


def keeps_history(network, probe):
    """Whether ``probe`` keeps every step of a run (the ``keep_history`` setting).

    Parameters
    ----------
    network : nengo.Network or None
        The top-level network (where `configure_settings` puts the setting).
    probe : nengo.Probe
        The probe.
    """
    if network is None or nengo.Probe not in network.config.params:
        return True
    if "keep_history" not in network.config[nengo.Probe]._extra_params:
        return True
    return bool(network.config[probe].keep_history)


def _lookup(config, obj):
    """``config[obj].trainable`` if that is configured and set, else None."""
    if not any(cls in config.params for cls in type(obj).__mro__):
        return None
    cfg = config[obj]
    try:
        return cfg.trainable
    except (AttributeError, ConfigError):
        return None


def network_chains(network):
    """Map each object in ``network`` to the chain of networks containing it."""
    chains = {}

    def visit(net, chain):
        chain = chain + [net]
        chains[net] = chain
        for obj in net.ensembles + net.nodes + net.connections:
            chains[obj] = chain
            if isinstance(obj, nengo.Ensemble):
                chains[obj.neurons] = chain
        for sub in net.networks:
            visit(sub, chain)

    visit(network, [])
    return chains


def object_setting(chains, obj):
    """``trainable`` set for ``obj`` itself or its class (innermost config first)."""
    for net in reversed(chains.get(obj, [])):
        value = _lookup(net.config, obj)
        if value is not None:
            return bool(value)
    return None


def is_trainable(chains, obj, cache=None):
    """Whether ``obj``'s parameters train, from the ``trainable`` settings.

    Settings on the object or its class win; then settings on the networks that
    contain it, innermost first; the default is True. ``cache`` (a dict, for one
    ``chains``) keeps the networks' part, which objects of one network share.
    """
    value = object_setting(chains, obj)
    if value is not None:
        return value
    net_chain = chains.get(obj, [])
    key = id(net_chain)  # the chain list of one network is shared by its objects
    if cache is None or key not in cache:
        value = chain_setting(net_chain)
        if cache is None:
            return value
        cache[key] = value
    return cache[key]


def chain_setting(net_chain):
    """The ``trainable`` setting that the networks of ``net_chain`` (outermost
    first) give an object inside the last of them (default True)."""
    for k in range(len(net_chain) - 1, -1, -1):
        for net in reversed(net_chain[: k + 1]):
            value = _lookup(net.config, net_chain[k])
            if value is not None:
                return bool(value)
    return True


def refuse_training(network, reason):
    """Make training any model that contains ``network`` raise a `ValidationError`
    giving ``reason`` (simulating it is unaffected): for a converted Keras model
    whose regularizers nengodl does not carry over.

    Parameters
    ----------
    network : nengo.Network
        The network (a subnetwork of the simulated model, or the model).
    reason : str
        Why it cannot be trained.
    """
    param = Parameter("training_refused", default=None, optional=True)
    _add_param(network.config, nengo.Network, "training_refused", param)
    network.config[nengo.Network].training_refused = reason


def training_refusals(network):
    """The reasons (`refuse_training`) that ``network`` or any of its subnetworks
    cannot be trained."""
    if network is None:
        return []
    reasons = []
    for net in [network, *network.all_networks]:
        if nengo.Network in net.config.params:
            cfg = net.config[nengo.Network]
            if "training_refused" in cfg._extra_params and cfg.training_refused:
                reasons.append(cfg.training_refused)
    return reasons


def trainable_synapses(network):
    """The connections of ``network`` whose `nengo.Lowpass` synapse's time
    constant trains (the ``trainable_synapses`` setting, for connections whose
    parameters train; none in an ``inference_only`` network)."""
    if network is None or get_setting(network, "inference_only", False):
        return []
    chains = network_chains(network)
    return [
        conn
        for conn in network.all_connections
        if type(conn.synapse) is nengo.Lowpass
        and get_setting(network, "trainable_synapse", False, obj=conn)
        and is_trainable(chains, conn)
    ]


def trainable_signals(model, network, keys=None):
    """The parameter signals of ``model`` that training may change.

    Encoders follow their Ensemble's setting, biases their Neurons' setting (or
    the Ensemble's when the Neurons have none), weights their Connection's;
    weights changed by a learning rule never train. ``keys`` (from
    `trainable_keys`) skips the settings' lookup where it was done before the
    signals changed (merged or packed).
    """
    keys = trainable_keys(model, network) if keys is None else keys
    return [model.sig[obj][key] for obj, key in keys]


def trainable_keys(model, network):
    """``(object, key)`` of each ``model.sig`` entry that `trainable_signals` gives."""
    chains = network_chains(network) if network is not None else {}
    in_net = None if network is None else set(network.all_connections)
    cache = {}
    keys = []
    for obj, sig_dict in model.sig.items():
        if isinstance(obj, nengo.Ensemble):
            if isinstance(obj.neuron_type, nengo.Direct):
                continue
            if is_trainable(chains, obj, cache) and sig_dict.get("encoders") is not None:
                keys.append((obj, "encoders"))
            neuron_setting = object_setting(chains, obj.neurons)
            train_bias = (
                is_trainable(chains, obj, cache) if neuron_setting is None else neuron_setting
            )
            if train_bias and model.sig[obj.neurons].get("bias") is not None:
                keys.append((obj.neurons, "bias"))
        elif isinstance(obj, nengo.Connection):
            if obj.learning_rule is not None:
                continue
            if in_net is not None and obj not in in_net:
                continue
            weights = sig_dict.get("weights")
            if weights is not None and not weights.sparse and is_trainable(chains, obj, cache):
                keys.append((obj, "weights"))
        if isinstance(obj, nengo.Connection) and sig_dict.get("log_tau") is not None:
            keys.append((obj, "log_tau"))  # only there where it trains
    return keys
