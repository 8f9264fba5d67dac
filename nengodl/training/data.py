"""Training data: inputs and targets checked, split into minibatches; objectives resolved."""

from collections.abc import Mapping

import nengo
import numpy as np
from nengo.exceptions import ValidationError

from nengodl.io.checks import check_finite_data
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
    any_target_size : bool
        Accept targets of size 1 besides the probe's size (Keras losses such as
        ``SparseCategoricalCrossentropy`` take class indices); other sizes are
        refused, rather than broadcast against the output.
    """

    def __init__(self, sim, data, any_target_size=False):
        if not isinstance(data, Mapping) or not data:
            raise ValidationError(
                "data must be a non-empty dict mapping input Nodes and Probes to arrays",
                attr="data",
            )
        self.inputs, self.targets = {}, {}
        shapes = {}
        for obj, value in data.items():
            arr = np.asarray(value)
            if isinstance(obj, nengo.Probe):
                if obj not in sim.model.probes:
                    raise ValidationError(f"{obj} is not in the simulated model", attr="data")
                size = int(np.prod(sim.model.sig[obj]["in"].shape))
                if any_target_size and arr.ndim == 3 and arr.shape[2] == 1:
                    size = 1  # class indices, or one value for every output
                self.targets[obj] = arr
            elif isinstance(obj, nengo.Node):
                if obj not in sim.plan.node_keys:
                    raise ValidationError(
                        f"{obj} is not an input Node (size_in=0) of the simulated model",
                        attr="data",
                    )
                size = obj.size_out
                self.inputs[obj] = arr
            else:
                raise ValidationError(
                    f"data keys must be input Nodes or Probes (got {obj!r})", attr="data"
                )
            if arr.dtype.kind not in "biuf":
                raise ValidationError(
                    f"data for {obj} must be numeric (got dtype {arr.dtype})", attr="data"
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
        if len(set(shapes.values())) > 1:
            listing = ", ".join(f"{k}: {v}" for k, v in shapes.items())
            raise ValidationError(
                f"all data must have the same batch size and number of steps ({listing})",
                attr="data",
            )
        self.batch_size, self.n_steps = next(iter(shapes.values()))
        mb = sim.plan.minibatch_size
        if self.batch_size % mb != 0:
            raise ValidationError(
                f"batch size {self.batch_size} is not a multiple of the simulator's "
                f"minibatch_size ({mb})",
                attr="data",
            )
        self.n_batches = self.batch_size // mb
        self.minibatch_size = mb

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
