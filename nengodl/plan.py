"""The plan: how each operator of a built nengo model runs, decided once.

`make_plan` turns the built (and optimised) model into a `Plan`: which
operators run natively in TensorFlow (merged where independent operators of
one kind can run as one), which call nengo's step function on the host inside
the loop, which are computed on the host ahead of each run (input Nodes and
processes); where each signal lives (`SignalLayout`); which parameters
training may change; and where the clock is advanced. Executors
(`nengodl.runtime`) run a plan; nothing in it changes after it is made.
"""

import dataclasses
import hashlib
import types
import warnings

import numpy as np
from nengo.builder.operator import SimPyFunc
from nengo.builder.probe import SimProbe
from nengo.exceptions import BuildError

from nengodl.config import is_trainable
from nengodl.ops import find_builder
from nengodl.ops.basic import TimeUpdateBuilder
from nengodl.runtime.host import ErrorBox, HostOp, is_input_op
from nengodl.signals import SignalLayout
from nengodl.views import flat_positions

_WARNED = set()


def warn_host_fallback(op):
    """Warn once per kind of operator that runs through Python inside the loop."""
    if isinstance(op, SimPyFunc):
        return  # Python Node functions are Python by design
    what = getattr(op, "neurons", None) or getattr(op, "process", None) or op
    name = type(what).__name__
    if name not in _WARNED:
        _WARNED.add(name)
        warnings.warn(
            f"{name} has no TensorFlow implementation in nengodl: it runs nengo's "
            "Python step function inside the loop, once per minibatch item, which is "
            "slow and turns XLA off"
        )


def written_indices(operators):
    """Map base signal -> boolean mask of the elements some operator writes."""
    written = {}
    for op in operators:
        for sig in op.sets + op.incs + op.updates:
            if sig.sparse:
                continue
            mask = written.setdefault(sig.base, np.zeros(sig.base.size, dtype=bool))
            mask[flat_positions(sig)] = True
    return written


def make_builder(builder, op, dt):
    """The builder instance for ``op`` (or a merged group), errors as BuildErrors."""
    try:
        return builder(op, dt)
    except BuildError:
        raise
    except Exception as e:
        raise BuildError(f"Cannot build operator {op} in TensorFlow: {e}") from e


@dataclasses.dataclass(frozen=True, eq=False)
class Plan:
    """How a built model runs; made by `make_plan`, never changed afterwards.

    Attributes
    ----------
    model : nengo.builder.Model
        The built model.
    dt : float
        The time step.
    dtype : tf.DType
        Floating point type of the simulation.
    minibatch_size : int
        Number of minibatch items.
    steps : tuple
        ``(kind, key, obj)`` in execution order: ``("native", None, builder)``,
        ``("host", None, HostOp)`` (nengo's step function inside the loop) or
        ``("pre", key, HostOp)`` (computed ahead of each run, fed as ``key``).
    host_ops : tuple of HostOp
        Every host operator, in nengo's order (so random draws match nengo's).
    pre_ops : mapping
        Feed key to the `HostOp` computed ahead of each run.
    node_keys : mapping
        Input Node to the key its run-time data is fed under.
    const_inputs : mapping
        Feed key to the signal of a constant Node, set at the start of a step
        when data is given for it.
    probes, probe_sigs : tuple
        The probes and the signals they record.
    probe_groups : tuple of tuple
        Indices of the probes recorded in one array, one group per dtype.
    layout : SignalLayout
        Which bases are state and which parameters, and their dtypes.
    param_masks : mapping
        Parameter base to the mask of its trainable elements.
    pinned_masks : mapping
        State base to the mask of the trainable parameters merged into it by
        nengo's optimiser (never written by any operator).
    clock : OpBuilder or None
        The builder of nengo's TimeUpdate.
    reads_clock : bool
        Whether a probe or an operator in the loop other than the clock's reads
        the step count or the time.
    errors : ErrorBox
        Where host steps keep the first exception raised during a run.
    trainable_sigs : frozenset
        The signals training may change.
    trainable_chains : mapping
        The network's ``trainable`` settings (for Keras layers in TensorNodes).
    """

    model: object
    dt: float
    dtype: object
    minibatch_size: int
    steps: tuple
    host_ops: tuple
    pre_ops: types.MappingProxyType
    node_keys: types.MappingProxyType
    const_inputs: types.MappingProxyType
    probes: tuple
    probe_sigs: tuple
    probe_groups: tuple
    layout: SignalLayout
    param_masks: types.MappingProxyType
    pinned_masks: types.MappingProxyType
    clock: object
    reads_clock: bool
    errors: ErrorBox
    trainable_sigs: frozenset
    trainable_chains: types.MappingProxyType

    @property
    def has_host_loop_ops(self):
        """Whether some operator calls nengo's Python step inside the loop."""
        return any(kind == "host" for kind, _, _ in self.steps)

    @property
    def items_independent(self):
        """Whether each minibatch item's result depends on that item alone."""
        return all(getattr(obj, "items_independent", True) for _, _, obj in self.steps)

    @property
    def fed_keys(self):
        """Keys of the values fed each step by default (the pre-computed outputs)."""
        return [k for k, h in self.pre_ops.items() if h.output is not None]

    def fingerprint(self):
        """A digest of the plan's steps: equal for two plans exactly where they
        run the same operators, merged the same way, in the same order, on the
        same layout of signals (names, addresses and parameter values aside).

        Returns
        -------
        str
            40 hexadecimal digits.
        """
        bases = {}

        def describe(op):
            signals = ",".join(
                f"{bases.setdefault(s.base, len(bases))}{s.shape}+{s.elemoffset}"
                for s in op.all_signals
            )
            return f"{type(op).__name__}({signals})"

        lines = []
        for kind, _, obj in self.steps:
            ops = getattr(obj, "ops", None) or [getattr(obj, "op", None)]
            what = " ".join(describe(op) for op in ops if op is not None)
            lines.append(f"{kind} {type(obj).__name__} {what}")
        return hashlib.sha1("\n".join(lines).encode()).hexdigest()

    def keras_nodes(self):
        """TensorNodes of the model whose function is a Keras layer."""
        nodes = [getattr(getattr(obj, "op", None), "node", None) for _, _, obj in self.steps]
        return [n for n in nodes if n is not None and n.is_keras]

    def keras_variables(self):
        """All variables of Keras layers in TensorNodes (trainable or not)."""
        return [v for node in self.keras_nodes() for v in node.tensor_func.variables]

    def keras_trainable(self):
        """Trainable variables of Keras layers in TensorNodes."""
        return [
            v
            for node in self.keras_nodes()
            if is_trainable(self.trainable_chains, node)
            for v in node.tensor_func.trainable_variables
        ]

    def feed_sig(self, key):
        """The signal that the values fed for ``key`` set."""
        return self.pre_ops[key].output if key in self.pre_ops else self.const_inputs[key]

    def complete_feeds(self, feeds, start_step, n_steps):
        """``feeds`` (feed key to ``(n_steps, batch) + shape`` arrays) with the
        outputs of the host operators computed ahead of a run that are not
        given, everything in the dtype it is fed as."""
        feeds = dict(feeds)
        for key, host in self.pre_ops.items():
            if key in feeds:
                continue
            dtype = None if host.output is None else self.feed_dtype(host.output)
            out = host.precompute(start_step, n_steps, dtype)
            if out is not None:
                feeds[key] = out
        return {
            k: np.asarray(v, dtype=self.feed_dtype(self.feed_sig(k))) for k, v in feeds.items()
        }

    def feed_dtype(self, sig):
        """Numpy dtype of values fed for ``sig``."""
        return self.layout.np_dtype(sig.base)

    def clock_bases(self):
        """The bases of the step count and the time."""
        return {self.clock.op.step.base, self.clock.op.time.base}

    def state_bytes(self, bases):
        """Bytes of the values of ``bases`` (per minibatch item for state)."""
        return sum(b.size * self.layout.tf_dtype(b).size for b in bases)

    def param_bytes(self):
        """Bytes of all parameters (shared by the minibatch items)."""
        return self.state_bytes(self.layout.param_bases)

    def probe_row_bytes(self):
        """Bytes of one step of probe data for the whole minibatch."""
        return self.minibatch_size * sum(
            sig.size * self.layout.tf_dtype(sig.base).size for sig in self.probe_sigs
        )


def _reads_clock(operators, clock, probe_sigs, pre_ops):
    bases = {clock.op.step.base, clock.op.time.base}
    if any(sig.base in bases for sig in probe_sigs):
        return True
    pre = {h.op for h in pre_ops.values()}
    for op in operators:
        if op is clock.op or op in pre or isinstance(op, SimProbe):
            continue
        builder = find_builder(op)
        if builder is not None and not builder.reads_time:
            continue
        if any(sig.base in bases for sig in op.reads + op.sets + op.incs + op.updates):
            return True
    return False


def _trainable_masks(layout, trainable_sigs, tf_ops):
    masks, pinned = {}, {}
    written = written_indices(tf_ops)
    for sig in trainable_sigs:
        base = sig.base
        if not layout.tf_dtype(base).is_floating:
            continue
        idx = flat_positions(sig)
        if base in layout.param_bases:
            target = masks
        elif layout.is_state(base) and not written.get(base, np.zeros(0, bool))[idx].any():
            # a parameter merged into a state signal by nengo's optimiser: its
            # elements are never written, so they are pinned to a variable
            target = pinned
        else:
            continue
        target.setdefault(base, np.zeros(base.size, dtype=bool))[idx] = True
    return masks, pinned


def make_plan(
    model,
    operators,
    input_nodes,
    dtype,
    minibatch_size,
    trainable_sigs=(),
    merged=None,
    trainable_chains=None,
):
    """Plan how the operators of a built model run.

    Parameters
    ----------
    model : nengo.builder.Model
        The built (and optionally optimised) model.
    operators : list of Operator
        The model's operators in execution order.
    input_nodes : dict
        Map from each input Node whose value can be given as run-time data to
        its output signal.
    dtype : tf.DType
        Floating point type.
    minibatch_size : int
        Number of minibatch items.
    trainable_sigs : list of Signal
        Parameter signals that training may change.
    merged : dict, optional
        Map from each merged operator to its group (`nengodl.planner.merge_groups`,
        which also gives ``operators`` their order).
    trainable_chains : dict, optional
        The network's ``trainable`` settings (`nengodl.config.network_chains`).

    Returns
    -------
    Plan
    """
    dt = model.dt
    errors = ErrorBox()
    steps, host_ops, pre_ops, tf_ops = [], [], {}, []
    hosts = {}  # host ops are made in nengo's order, so random draws match nengo
    for op in operators:
        if not isinstance(op, SimProbe) and find_builder(op) is None:
            hosts[op] = HostOp(op, dt, minibatch_size, errors, dtype)
            host_ops.append(hosts[op])
    merged = merged or {}
    ordered = operators
    for op in ordered:
        if isinstance(op, SimProbe):
            continue
        builder = find_builder(op)
        if is_input_op(op) and builder is None:
            key = f"pre{len(pre_ops)}"
            pre_ops[key] = hosts[op]
            steps.append(("pre", key, hosts[op]))
        elif builder is not None:
            if op in merged:
                group = merged[op]
                if group[0] is op:
                    steps.append(("native", None, make_builder(builder, group, dt)))
                    tf_ops.extend(group)
                continue
            steps.append(("native", None, make_builder(builder, op, dt)))
            tf_ops.append(op)
        else:
            warn_host_fallback(op)
            steps.append(("host", None, hosts[op]))
            tf_ops.append(op)

    clock = next(
        (obj for kind, _, obj in steps if kind == "native" and isinstance(obj, TimeUpdateBuilder)),
        None,
    )

    # input signals that are set ahead of each step (constant Nodes)
    pre_outputs = {id(h.output): key for key, h in pre_ops.items() if h.output}
    node_keys, const_inputs = {}, {}
    for k, (node, sig) in enumerate(input_nodes.items()):
        if id(sig) in pre_outputs:
            node_keys[node] = pre_outputs[id(sig)]
        else:
            node_keys[node] = f"node{k}"
            const_inputs[f"node{k}"] = sig

    probes = tuple(model.probes)
    probe_sigs = tuple(model.sig[p]["in"] for p in probes)
    fed = [h.output for h in pre_ops.values() if h.output is not None]
    fed += list(const_inputs.values())
    layout = SignalLayout(model, tf_ops, fed, probe_sigs, dtype)
    groups = {}  # probes are recorded in one array per dtype
    for k, sig in enumerate(probe_sigs):
        groups.setdefault(layout.tf_dtype(sig.base), []).append(k)
    masks, pinned = _trainable_masks(layout, trainable_sigs, tf_ops)
    proxy = types.MappingProxyType
    return Plan(
        model=model,
        dt=dt,
        dtype=dtype,
        minibatch_size=minibatch_size,
        steps=tuple(steps),
        host_ops=tuple(host_ops),
        pre_ops=proxy(pre_ops),
        node_keys=proxy(node_keys),
        const_inputs=proxy(const_inputs),
        probes=probes,
        probe_sigs=probe_sigs,
        probe_groups=tuple(tuple(g) for g in groups.values()),
        layout=layout,
        param_masks=proxy(masks),
        pinned_masks=proxy(pinned),
        clock=clock,
        reads_clock=clock is not None and _reads_clock(ordered, clock, probe_sigs, pre_ops),
        errors=errors,
        trainable_sigs=frozenset(trainable_sigs),
        trainable_chains=proxy(dict(trainable_chains or {})),
    )
