"""Keras-style ``x`` and ``y``: dicts keyed by Nodes, Probes or their labels, plain
arrays and lists, resolved to the input Nodes and Probes of a simulator."""

import warnings
from collections.abc import Mapping

import nengo
import numpy as np
from nengo.exceptions import ValidationError


def object_name(sim, obj):
    """Name of an input Node or a Probe in ``x``/``y`` keys and in logs: its label,
    else ``node_<index>`` (in `ordered_input_nodes` order) or ``probe_<index>`` (in
    ``sim.model.probes``)."""
    if isinstance(obj, nengo.Probe):
        if obj in sim.model.probes:
            return obj.label or f"probe_{sim.model.probes.index(obj)}"
    elif isinstance(obj, nengo.Node):
        nodes = ordered_input_nodes(sim)
        if obj in nodes:
            return obj.label or f"node_{nodes.index(obj)}"
    raise ValidationError(
        f"{obj!r} is not an input Node or a Probe of this simulator's model: only those "
        "have names (the keys of x, y and the logs)",
        attr="obj",
    )


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
                matches = [c for c in candidates if c.label == key]
                matches += [c for c in candidates if object_name(sim, c) == key]
                if not matches:
                    raise ValidationError(f"no {what} named '{key}' in the model", attr=attr)
                key = matches[0]
            out[key] = arr
    if as_array:
        out = {k: None if v is None else np.asarray(v) for k, v in out.items()}
    return out
