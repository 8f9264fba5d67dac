"""XLA programs shared between simulators whose loops trace to the same graph.

TensorFlow keeps every program XLA compiles for the life of the process, keyed
by the name of the traced function, and each new trace gets a new name. A
process that makes many simulators of one model (a test suite, a parameter
sweep) would compile, and keep, the same program again for each of them. The
compiled loop takes all of its values as inputs (the state, the fed values and
the parameters; see `SimLoop.param_values`), so two loops whose traced graphs
are the same compute the same function: the second simulator calls the first
one's traced function, and XLA's compiled program with it.

A traced function is shared only where calling it cannot reach its first
simulator: it captures no tensors or variables, and it holds no stateful
operations (random draws with their own state, Python callbacks), whose state
would then be shared too. A function that updates variables (a training
epoch) is shared where every variable it reads or writes is one of its
arguments, so that each call works on its caller's variables.
"""

import collections
import hashlib
import re

import tensorflow as tf
from tensorflow.python.framework import op_def_registry

from nengodl.runtime.seeds import graph_ops

# stateful ops whose state is a variable handle (an argument, where nothing is
# captured), and the control flow and calls that hold them
VARIABLE_OPS = frozenset(
    {
        "ReadVariableOp",
        "AssignVariableOp",
        "AssignAddVariableOp",
        "AssignSubVariableOp",
        "ResourceGather",
        "ResourceScatterAdd",
        "ResourceScatterUpdate",
        "If",
        "While",
        "StatefulPartitionedCall",
    }
)


def _attr_text(value, function_id, rename):
    """An attribute value as text, functions by `function_id`, node names by ``rename``."""
    if value.HasField("func"):
        attrs = "".join(
            f"{k}={_attr_text(v, function_id, rename)};"
            for k, v in sorted(value.func.attr.items())
        )
        return f"func({function_id(value.func.name)};{attrs})"
    if value.HasField("list") and value.list.func:
        return "funcs(" + ",".join(function_id(f.name) for f in value.list.func) + ")"
    text = str(value)
    # colocation names a node; a tf.custom_gradient is registered under a new
    # number each trace (the optimizer's update has one: see
    # `nengodl.training.trainer.apply_gradients`)
    text = re.sub(r'"loc:@([^"]+)"', lambda m: f'"loc:@{rename.get(m.group(1), "?")}"', text)
    return re.sub(r"CustomGradient-\d+", "CustomGradient", text)


def _ref(name, rename):
    """A node's input (``node:output:index``, ``^node`` for control) by ``rename``."""
    control = name.startswith("^")
    head, *rest = name.lstrip("^").split(":")
    return ("^" if control else "") + ":".join([rename.get(head, "?" + head), *rest])


def _nodes_text(nodes, rename, function_id):
    """Nodes as text, with every name given by ``rename`` (their order)."""
    lines = []
    for node in nodes:
        attrs = "".join(
            f"{k}={_attr_text(v, function_id, rename)};" for k, v in sorted(node.attr.items())
        )
        inputs = ",".join(_ref(i, rename) for i in node.input)
        lines.append(f"{rename[node.name]}={node.op}({inputs})@{node.device}[{attrs}]")
    return "\n".join(lines)


def canonical_text(graph_def):
    """A text of a graph and its function library that is the same for two traces
    of one program: every node, argument and function is named by its place
    (TensorFlow names them anew, and differently, in each trace), a function by
    the digest of its own canonical text.

    Parameters
    ----------
    graph_def : tf.compat.v1.GraphDef
        The graph.

    Returns
    -------
    str
        The text.
    """
    library = {f.signature.name: f for f in graph_def.library.function}
    ids = {}

    def function_id(name):
        if name not in library:
            return name  # not a function of this graph (an op name)
        if name not in ids:
            f = library[name]
            sig = f.signature
            rename = {arg.name: f"a{k}" for k, arg in enumerate(sig.input_arg)}
            rename.update({node.name: f"n{k}" for k, node in enumerate(f.node_def)})
            outputs = [f"o{k}" for k in range(len(sig.output_arg))]
            args = ",".join(str(a.type) + str(a.number_attr) for a in sig.input_arg)
            rets = ",".join(
                f"{o}<-{_ref(f.ret[arg.name], rename)}" for o, arg in zip(outputs, sig.output_arg)
            )
            controls = ",".join(sorted(_ref(f.control_ret[c], rename) for c in sig.control_output))
            attrs = "".join(
                f"{k}={_attr_text(v, function_id, rename)};" for k, v in sorted(f.attr.items())
            )
            text = (
                f"({args})->({rets}|{controls}) stateful={sig.is_stateful} [{attrs}]\n"
                + _nodes_text(f.node_def, rename, function_id)
            )
            ids[name] = hashlib.sha256(text.encode()).hexdigest()[:24]
        return ids[name]

    rename = {node.name: f"n{k}" for k, node in enumerate(graph_def.node)}
    return _nodes_text(graph_def.node, rename, function_id)


def fingerprint(concrete, variables=False):
    """A digest of a traced function's graph that is the same for two traces
    of the same program (`canonical_text`), or None where the function may
    not be shared.

    Parameters
    ----------
    concrete : ConcreteFunction
        The traced function.
    variables : bool
        Allow reading and writing variables (`VARIABLE_OPS`): only those given
        as arguments, as nothing may be captured.

    Returns
    -------
    str or None
        The digest, or None where the function captures tensors or variables
        or holds other stateful operations.
    """
    if concrete.captured_inputs:
        return None
    graph_def = concrete.graph.as_graph_def()
    allowed = VARIABLE_OPS if variables else frozenset()
    for op_type in graph_ops(graph_def):
        op = op_def_registry.get(op_type)
        if op is None or (op.is_stateful and op_type not in allowed):
            return None
    text = canonical_text(graph_def) + repr(concrete.structured_input_signature)
    return hashlib.sha256(text.encode()).hexdigest()


class ProgramCache:
    """The most recently used shareable traced functions, by `fingerprint`."""

    def __init__(self):
        self._functions = collections.OrderedDict()

    def __len__(self):
        return len(self._functions)

    def share(self, concrete, size, variables=False):
        """The function to call for ``concrete``: an earlier trace of the same
        program where one is kept, else ``concrete`` (kept for later traces
        where it can be shared, with at most ``size`` functions kept: the
        least recently used go first; 0 keeps none). ``variables``: as for
        `fingerprint`.
        """
        if size <= 0:
            return concrete
        key = fingerprint(concrete, variables)
        if key is None:
            return concrete
        if key in self._functions:
            self._functions.move_to_end(key)
            return self._functions[key]
        self._functions[key] = concrete
        while len(self._functions) > size:
            self._functions.popitem(last=False)
        return concrete


# the process's (as TensorFlow's compiled programs are): simulation loops, and
# training epochs (larger graphs, so fewer kept: see `Options.shared_epochs`)
PROGRAMS = ProgramCache()
EPOCHS = ProgramCache()


def call_key(args):
    """What picks a call's traced function: the shapes and dtypes of the
    tensors, arrays and variables of ``args``, the other values themselves,
    and the keys of its dicts."""

    def spec(x):
        return (tuple(x.shape), str(x.dtype)) if hasattr(x, "shape") else x

    return repr(tf.nest.map_structure(spec, args))


class SharedFunction:
    """A `tf.function` called through one traced function per `call_key`,
    shared with other simulators' traces of the same program.

    Parameters
    ----------
    function : tf.types.experimental.PolymorphicFunction
        The function.
    size : int
        How many programs ``cache`` keeps (``Options.shared_programs``).
    variables : bool
        The function reads or writes variables, all of them arguments (see
        `fingerprint`).
    cache : ProgramCache
        Where programs are kept (`PROGRAMS`, or `EPOCHS` for training epochs).
    """

    def __init__(self, function, size, variables=False, cache=PROGRAMS):
        self.function, self.size, self.variables = function, size, variables
        self.cache = cache
        self._traced = {}

    def concrete(self, *args):
        """The traced function a call with ``args`` runs."""
        key = call_key(args)
        if key not in self._traced:
            concrete = self.function.get_concrete_function(*args)
            self._traced[key] = self.cache.share(concrete, self.size, self.variables)
        return self._traced[key]

    def __call__(self, *args):
        return self.concrete(*args)(*args)
