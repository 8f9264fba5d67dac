"""`configure_settings` and the per-object ``trainable`` setting.

Settings live in nengo's own config system: ``configure_settings(trainable=False)``
makes ``trainable`` a configurable parameter of Ensembles, Neurons, Connections,
Nodes and Networks and sets the default for the whole network, after which
``net.config[obj].trainable`` overrides it per object or per class.
"""

import nengo
from nengo.ensemble import Neurons
from nengo.exceptions import ConfigError
from nengo.params import Parameter

TRAINABLE_TYPES = (nengo.Ensemble, Neurons, nengo.Connection, nengo.Node, nengo.Network)
SETTINGS = {
    "trainable",
    "lif_smoothing",
    "inference_only",
    "dtype",
    "learning_phase",
    "check_finite",
}


def configure_settings(**kwargs):
    """Configure nengodl settings on the network being defined (``with net:``).

    Parameters
    ----------
    trainable : bool or None
        Default trainability of all parameters (None leaves the default, True,
        but makes ``net.config[obj].trainable`` available).
    lif_smoothing : float, optional
        Smoothing of the LIF rate approximation used while training.
    inference_only : bool
        Build no training graph (`Simulator.train` and ``fit`` are refused).
    dtype : str, optional
        Default floating point type of simulators of this network.
    learning_phase : bool
        Run ``sim.run`` in training mode too (spiking neurons as rate neurons).
    check_finite : bool
        Refuse NaN and infinite values in ``data=`` and training data (default
        True; False saves one pass over large inputs).

    Examples
    --------
    >>> import nengo, nengodl
    >>> with nengo.Network() as net:
    ...     nengodl.configure_settings(trainable=False)
    ...     net.config[nengo.Ensemble].trainable = True
    """
    if len(nengo.Network.context) == 0:
        raise ConfigError("configure_settings must be called inside a `with network:` block")
    config = nengo.Network.context[-1].config
    for name, value in kwargs.items():
        if name not in SETTINGS:
            raise ConfigError(f"Unknown setting '{name}'; expected one of {sorted(SETTINGS)}")
        if name == "trainable":
            for cls in TRAINABLE_TYPES:
                if cls not in config.params:
                    config.configures(cls)
                if "trainable" not in config[cls]._extra_params:
                    config[cls].set_param(
                        "trainable", Parameter("trainable", default=None, optional=True)
                    )
            if value is not None:
                config[nengo.Network].trainable = value
        else:
            if nengo.Network not in config.params:
                config.configures(nengo.Network)
            if name not in config[nengo.Network]._extra_params:
                config[nengo.Network].set_param(name, Parameter(name, default=None, optional=True))
            setattr(config[nengo.Network], name, value)


def get_setting(network, name, default=None):
    """The value of setting ``name`` configured on ``network`` (or ``default``)."""
    if network is None or nengo.Network not in network.config.params:
        return default
    cfg = network.config[nengo.Network]
    if name not in cfg._extra_params:
        return default
    value = getattr(network.config[network], name)
    return default if value is None else value


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


def is_trainable(chains, obj):
    """Whether ``obj``'s parameters train, from the ``trainable`` settings.

    Settings on the object or its class win; then settings on the networks that
    contain it, innermost first; the default is True.
    """
    value = object_setting(chains, obj)
    if value is not None:
        return value
    net_chain = chains.get(obj, [])
    for k in range(len(net_chain) - 1, -1, -1):
        for net in reversed(net_chain[: k + 1]):
            value = _lookup(net.config, net_chain[k])
            if value is not None:
                return bool(value)
    return True


def trainable_signals(model, network):
    """The parameter signals of ``model`` that training may change.

    Encoders follow their Ensemble's setting, biases their Neurons' setting (or
    the Ensemble's when the Neurons have none), weights their Connection's;
    weights changed by a learning rule never train.
    """
    chains = network_chains(network) if network is not None else {}
    sigs = []
    for obj, sig_dict in model.sig.items():
        if isinstance(obj, nengo.Ensemble):
            if isinstance(obj.neuron_type, nengo.Direct):
                continue
            if is_trainable(chains, obj) and sig_dict.get("encoders") is not None:
                sigs.append(sig_dict["encoders"])
            neuron_setting = object_setting(chains, obj.neurons)
            train_bias = is_trainable(chains, obj) if neuron_setting is None else neuron_setting
            bias = model.sig[obj.neurons].get("bias")
            if train_bias and bias is not None:
                sigs.append(bias)
        elif isinstance(obj, nengo.Connection):
            if obj.learning_rule is not None:
                continue
            weights = sig_dict.get("weights")
            if weights is not None and not weights.sparse and is_trainable(chains, obj):
                sigs.append(weights)
    return sigs
