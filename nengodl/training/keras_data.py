"""Keras-style ``x`` and ``y``: dicts keyed by Nodes, Probes or their labels, plain
arrays and lists, resolved to the input Nodes and Probes of a simulator."""

import re
import warnings
from collections.abc import Mapping

import nengo
import numpy as np
from nengo.exceptions import ValidationError


def sanitize(label):
    """A label as a name of an input or output: spaces and colons become
    underscores, and what is not a letter, digit, ``_``, ``.``, ``-`` or ``/``
    is left out (NengoDL 3's names).

    Examples
    --------
    >>> sanitize("my probe: 1 (ms)")
    'my_probe__1_ms'
    """
    label = str(label).replace(" ", "_").replace(":", "_")
    return re.sub(r"[^A-Za-z0-9_./-]", "", label)


def io_names(sim):
    """``{object: name}`` of the input Nodes (in `ordered_input_nodes` order)
    then the Probes (in ``sim.model.probes`` order), as NengoDL 3.6 names them:
    the sanitized label, or ``node`` / ``probe`` for an unlabelled one; a name
    already taken gets the first free suffix ``_1``, ``_2``, ...

    Examples
    --------
    >>> import nengo, nengodl
    >>> with nengo.Network() as net:
    ...     stim = nengo.Node([0.5])
    ...     probes = [nengo.Probe(stim), nengo.Probe(stim, label="out"), nengo.Probe(stim)]
    >>> with nengodl.Simulator(net, progress_bar=False) as sim:
    ...     list(io_names(sim).values())
    ['node', 'probe', 'out', 'probe_1']
    """
    names, taken = {}, set()
    for obj in ordered_input_nodes(sim) + list(sim.model.probes):
        base = type(obj).__name__.lower() if obj.label is None else sanitize(obj.label)
        name, k = base, 0
        while name in taken:
            k += 1
            name = f"{base}_{k}"
        taken.add(name)
        names[obj] = name
    return names


def object_name(sim, obj):
    """Name of an input Node or a Probe in ``x``/``y`` keys and in logs (see
    `io_names`)."""
    name = io_names(sim).get(obj) if isinstance(obj, (nengo.Node, nengo.Probe)) else None
    if name is None:
        raise ValidationError(
            f"{obj!r} is not an input Node or a Probe of this simulator's model: only those "
            "have names (the keys of x, y and the logs)",
            attr="obj",
        )
    return name


def ordered_input_nodes(sim):
    """The Nodes whose output data can replace, in the order of the network's
    ``all_nodes`` (the order NengoDL 3 gives a list of input arrays)."""
    nodes = list(sim.plan.node_keys)
    if sim.network is not None:
        order = {n: i for i, n in enumerate(sim.network.all_nodes)}
        nodes.sort(key=lambda n: order.get(n, len(order)))
    return nodes


def input_arrays(sim, x):
    """Keras-style input data ``x`` as a dict from input Node to array (see
    `resolve_keys`), without the Nodes given None (they run their own output)."""
    return {k: v for k, v in resolve_keys(sim, x, "input").items() if v is not None}


def by_position(values, objects, kind):
    """Map a list of arrays (or one array) to ``objects`` in order, warning
    as NengoDL 3 does where the counts differ (the extra objects get none)."""
    if len(values) != len(objects):
        names = [type(v).__name__ for v in values]
        what = "Node" if kind == "input" else "Probe"
        arg = "x" if kind == "input" else "y"
        given = ", ".join(str(o) for o in objects[: len(values)]) or "nothing"
        warnings.warn(
            f"Number of elements ({len(values)}) in {names} does not match number of "
            f"{what}s ({len(objects)}): {arg} is taken in the order of "
            f"{'the network' if kind == 'input' else 'sim.model.probes'}, so it goes to "
            f"{given}"
            + (", and the Nodes without data run their own output" if kind == "input" else "")
            + f"; give {arg} as a dict {{{what}: array}} to say which is whose",
            stacklevel=6,
        )
    return dict(zip(objects, values))


def resolve_keys(sim, value, kind, as_array=True, preferred=None):
    """Map Node/Probe objects to arrays from ``x``/``y``.

    ``value`` is a dict (keyed by objects or labels), a list or tuple (one
    array per input Node / Probe, in order), or one array. One array for a
    model with several input Nodes / Probes goes to the first (with a
    warning, as in NengoDL 3), unless ``preferred`` (the probes that have a
    loss) names just one: it is then that probe's target.
    """
    if kind == "input":
        candidates = ordered_input_nodes(sim)
        what = "input Node"
    else:
        candidates = list(sim.model.probes)
        what = "Probe"
    attr = "x" if kind == "input" else "y"
    if value is None:
        return {}
    if isinstance(value, (list, tuple)):
        out = by_position(list(value), candidates, kind)
    elif not isinstance(value, Mapping):
        if len(candidates) == 0:
            raise ValidationError(f"the model has no {what} for {attr}", attr=attr)
        if len(candidates) == 1:
            out = {candidates[0]: value}
        elif preferred is not None and len(preferred) == 1:
            out = {preferred[0]: value}  # the one probe with a loss
        else:
            out = by_position([value], candidates, kind)
    else:
        out = {}
        for key, arr in value.items():
            if isinstance(key, str):
                names = io_names(sim)
                matches = [c for c in candidates if c.label == key]
                matches += [c for c in candidates if names[c] == key]
                if not matches:
                    raise ValidationError(f"no {what} named '{key}' in the model", attr=attr)
                key = matches[0]
            out[key] = arr
    if as_array:
        out = {k: None if v is None else np.asarray(v) for k, v in out.items()}
    return out
