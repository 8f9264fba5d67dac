"""Training data: inputs and targets checked, split into minibatches; objectives resolved."""

import warnings
from collections.abc import Mapping

import nengo
import numpy as np
from nengo.exceptions import ValidationError

from nengodl.io.checks import check_finite_data, check_input_node, numeric_array
from nengodl.objectives import mse


class TrainingData:
    """Inputs and targets split into minibatches.

    Parameters
    ----------
    sim : Simulator
        The simulator (for its input Nodes, probes and minibatch size).
    data : dict
        Map from input Node to inputs and from Probe to targets, each
        ``(batch_size, n_steps, size)``.
    keras_style : bool
        Apply the rules of NengoDL 3's Keras-style ``fit`` / ``evaluate`` /
        ``predict`` instead of NengoDL 2's: targets may have size 1 besides
        the probe's size (Keras losses such as ``SparseCategoricalCrossentropy``
        take class indices; other sizes are refused rather than broadcast), and
        any number of steps (what the loss makes of them); a batch that is not
        a multiple of ``minibatch_size`` loses its last items, with a warning.
        NengoDL 2's API refuses both.
    n_steps : int, optional
        Number of steps to simulate where ``data`` has no inputs (by default,
        the targets' number of steps).
    """

    def __init__(self, sim, data, keras_style=False, n_steps=None):
        if not isinstance(data, Mapping) or not data:
            raise ValidationError(
                "data must be a non-empty dict mapping input Nodes and Probes to arrays",
                attr="data",
            )
        self.inputs, self.targets = {}, {}
        self.weighted = frozenset()  # probes whose targets carry sample weights
        shapes = {}
        for obj, value in data.items():
            arr = numeric_array(value, obj)
            if isinstance(obj, nengo.Probe):
                if obj not in sim.model.probes:
                    raise ValidationError(f"{obj} is not in the simulated model", attr="data")
                size = int(np.prod(sim.model.sig[obj]["in"].shape))
                if keras_style and arr.ndim == 3 and arr.shape[2] == 1:
                    size = 1  # class indices, or one value for every output
                self.targets[obj] = arr
            elif isinstance(obj, nengo.Node):
                check_input_node(obj, sim.plan.node_keys)
                size = obj.size_out
                self.inputs[obj] = arr
            else:
                raise ValidationError(
                    f"data keys must be input Nodes or Probes (got {obj!r})", attr="data"
                )
            if arr.ndim != 3 or arr.shape[2] != size:
                raise ValidationError(
                    f"data for {obj} has shape {arr.shape}; expected "
                    f"(batch_size, n_steps, {size})",
                    attr="data",
                )
            if sim.check_finite:
                check_finite_data(arr, obj, allow_nan=isinstance(obj, nengo.Probe))
            shapes[obj] = arr.shape[:2]
        # Keras-style targets may have their own number of steps (NengoDL 3)
        timed = self.inputs if keras_style else shapes
        if keras_style:
            same = len({s[0] for s in shapes.values()}) <= 1
            same = same and len({shapes[k][1] for k in timed}) <= 1
        else:
            same = len(set(shapes.values())) <= 1
        if not same:
            listing = ", ".join(f"{k}: {v}" for k, v in shapes.items())
            what = (
                "batch size, and inputs the same number of steps"
                if keras_style
                else ("batch size and number of steps")
            )
            raise ValidationError(f"all data must have the same {what} ({listing})", attr="data")
        self.batch_size = next(iter(shapes.values()))[0]
        self.given_batch_size = self.batch_size  # before any cut to whole minibatches
        if timed:
            self.n_steps = shapes[next(iter(timed))][1]
            if n_steps is not None and int(n_steps) != self.n_steps:
                raise ValidationError(
                    f"n_steps={n_steps} does not match the {self.n_steps} steps of the "
                    "input data (give one or the other)",
                    attr="n_steps",
                )
        else:
            self.n_steps = next(iter(shapes.values()))[1] if n_steps is None else int(n_steps)
        mb = sim.plan.minibatch_size
        if self.batch_size % mb != 0:
            if not keras_style:
                raise ValidationError(
                    f"batch size {self.batch_size} is not a multiple of the simulator's "
                    f"minibatch_size ({mb})",
                    attr="data",
                )
            self._truncate(mb)
        self.n_batches = self.batch_size // mb
        self.minibatch_size = mb

    def _truncate(self, mb):
        """Drop the items after the last whole minibatch (as NengoDL 3 does)."""
        if self.batch_size < mb:
            raise ValidationError(
                f"the data's batch size ({self.batch_size}) is less than the simulator's "
                f"minibatch_size ({mb}): it makes no whole minibatch",
                attr="data",
            )
        keep = self.batch_size - self.batch_size % mb
        warnings.warn(
            f"Number of elements in input data ({self.batch_size}) is not evenly "
            f"divisible by Simulator.minibatch_size ({mb}): only the first {keep} items "
            f"are used ({self.batch_size - keep} dropped)",
            stacklevel=6,
        )
        self.inputs = {k: v[:keep] for k, v in self.inputs.items()}
        self.targets = {k: v[:keep] for k, v in self.targets.items()}
        self.batch_size = keep

    def batches(self, rng=None):
        """Yield ``(inputs, targets)`` dicts of minibatches (shuffled with ``rng``)."""
        order = np.arange(self.batch_size)
        if rng is not None:
            rng.shuffle(order)
        for b in range(self.n_batches):
            idx = order[b * self.minibatch_size : (b + 1) * self.minibatch_size]
            yield (
                {k: v[idx] for k, v in self.inputs.items()},
                {k: v[idx] for k, v in self.targets.items()},
            )


class TrainingDataNoInputs:
    """Batches for runs with no input data (only a number of steps)."""

    def __init__(self, batch_size, n_steps, minibatch_size):
        if batch_size % minibatch_size:
            raise ValidationError(
                f"batch size {batch_size} is not a multiple of minibatch_size ({minibatch_size})",
                attr="x",
            )
        self.batch_size, self.n_steps = batch_size, int(n_steps)
        self.minibatch_size = minibatch_size
        self.n_batches = batch_size // minibatch_size
        self.inputs, self.targets = {}, {}
        self.weighted = frozenset()

    def batches(self, rng=None):
        for _ in range(self.n_batches):
            yield {}, {}


def resolve_objective(objective, targets, probes):
    """Map probe -> objective function from the ``objective`` argument
    (``probes``: those of the simulated model)."""
    if objective is None:
        if not targets:
            raise ValidationError("no Probe targets in data for the objective", attr="data")
        return {p: mse for p in targets}
    if callable(objective) and not isinstance(objective, Mapping):
        if len(targets) != 1:
            raise ValidationError(
                "a single objective function needs exactly one Probe target in data "
                f"(got {len(targets)}); pass a dict {{probe: function}}",
                attr="objective",
            )
        return {next(iter(targets)): objective}
    if not isinstance(objective, Mapping):
        raise ValidationError(
            f"objective must be a function or a dict {{probe: function}} "
            f"(got {type(objective).__name__})",
            attr="objective",
        )
    for probe, fn in objective.items():
        if not isinstance(probe, nengo.Probe):
            raise ValidationError(
                f"objective keys must be Probes (got {probe!r})", attr="objective"
            )
        if probe not in probes:
            raise ValidationError(
                f"{probe} is not a probe of this simulator's network", attr="objective"
            )
        if probe not in targets and getattr(fn, "needs_targets", True):
            raise ValidationError(
                f"{probe} is in the objective but has no target in data", attr="objective"
            )
    return dict(objective)
