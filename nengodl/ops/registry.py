"""Registry mapping nengo operator types to op builders."""

_BUILDERS = {}


class OpBuilder:
    """Base class for op builders.

    Builders with a ``merge_key(op, dt)`` class method run several
    independent operators with equal keys as one (see `nengodl.planner`).

    Parameters
    ----------
    op : nengo.builder.Operator or list of Operator
        The operator to implement, or a merged group of them.
    dt : float
        Simulation time step.

    Attributes
    ----------
    op : nengo.builder.Operator
        The operator (the group's first).
    ops : list of Operator
        The group (just ``[op]`` for an operator of its own).
    """

    # whether each minibatch item's result depends on that item alone (so the
    # minibatch can be split into shards simulated apart)
    items_independent = True
    # whether the builder uses the simulation time where its op reads it
    reads_time = True
    # the fewest operators with equal ``merge_key`` that run as one step: a
    # merged step joins its inputs from several tensors and splits its
    # results, which costs XLA some of its fusions with the operations around
    # it (measured on nengo's circular convolution: merging groups of 2 to 7
    # ran 40% slower than leaving them apart); worth it where it replaces many steps
    merge_min = 8

    def __init__(self, op, dt):
        self.ops = list(op) if isinstance(op, (list, tuple)) else [op]
        self.op = self.ops[0]
        self.dt = dt

    @classmethod
    def supports(cls, op):
        """Whether this builder can run ``op`` natively in TensorFlow."""
        return True

    def __call__(self, ctx):
        """Add this operator's computation for one step, through ``ctx``."""
        raise NotImplementedError


def register(op_type):
    """Class decorator registering an `OpBuilder` for ``op_type``."""

    def wrapper(cls):
        _BUILDERS[op_type] = cls
        return cls

    return wrapper


def find_builder(op):
    """The builder class for ``op``, or None if it must run on the host."""
    for t in type(op).__mro__:
        cls = _BUILDERS.get(t)
        if cls is not None:
            return cls if cls.supports(op) else None
    return None
