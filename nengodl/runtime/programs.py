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
would then be shared too.
"""

import collections
import hashlib
import re

from tensorflow.python.framework import op_def_registry

from nengodl.runtime.seeds import graph_ops

_SUFFIX = re.compile(r"(\d+)$")


def _uid(name):
    found = _SUFFIX.search(name)
    return int(found.group(1)) if found else -1


def fingerprint(concrete):
    """A digest of a traced function's graph that is the same for two traces
    of the same program (the per-trace names of its nested functions replaced
    by their order), or None where the function may not be shared.

    Parameters
    ----------
    concrete : ConcreteFunction
        The traced function.

    Returns
    -------
    str or None
        The digest, or None where the function captures tensors or holds
        stateful operations.
    """
    if concrete.captured_inputs:
        return None
    graph_def = concrete.graph.as_graph_def()
    for op_type in graph_ops(graph_def):
        op = op_def_registry.get(op_type)
        if op is None or op.is_stateful:
            return None
    # nested functions are named with a process-wide counter, in the order
    # they are traced, which is the same for two traces of one program (the
    # library lists them by name); the names show in argument names too
    functions = sorted(graph_def.library.function, key=lambda f: _uid(f.signature.name))
    names = [f.signature.name for f in functions]
    text = "".join(str(n) for n in graph_def.node) + "".join(str(f) for f in functions)
    if names:
        order = {name: f"@{k}@" for k, name in enumerate(names)}
        pattern = re.compile(
            "|".join(map(re.escape, sorted(names, key=len, reverse=True))) + r"(?![0-9])"
        )
        text = pattern.sub(lambda m: order[m.group(0)], text)
    text += repr(concrete.structured_input_signature)
    return hashlib.sha256(text.encode()).hexdigest()


class ProgramCache:
    """The most recently used shareable traced functions, by `fingerprint`."""

    def __init__(self):
        self._functions = collections.OrderedDict()

    def __len__(self):
        return len(self._functions)

    def share(self, concrete, size):
        """The function to call for ``concrete``: an earlier trace of the same
        program where one is kept, else ``concrete`` (kept for later traces
        where it can be shared, with at most ``size`` functions kept: the
        least recently used go first; 0 keeps none).
        """
        if size <= 0:
            return concrete
        key = fingerprint(concrete)
        if key is None:
            return concrete
        if key in self._functions:
            self._functions.move_to_end(key)
            return self._functions[key]
        self._functions[key] = concrete
        while len(self._functions) > size:
            self._functions.popitem(last=False)
        return concrete


PROGRAMS = ProgramCache()  # the process's (as TensorFlow's compiled programs are)
