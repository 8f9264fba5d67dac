"""Probe data: accumulated over runs, subsampled as nengo does, shown in `sim.data`."""

from collections import namedtuple
from collections.abc import Mapping, MutableSequence

import numpy as np
from nengo.exceptions import ValidationError


def sample_mask(probe, dt, first_step, n_steps):
    """Which of the steps ``first_step + 1 ... first_step + n_steps`` a probe records."""
    period = 1 if probe.sample_every is None else probe.sample_every / dt
    steps = np.arange(first_step + 1, first_step + n_steps + 1)
    return steps % period < 1


TrainedSource = namedtuple("TrainedSource", "model plan run_state")
TrainedSource.__doc__ = """What `nengodl.io.nengo_params.current_params` reads of a simulator
(its ``model``, ``plan`` and ``run_state``), kept by `SimulationData`."""


class ProbeRecorder:
    """Accumulates the data of each probe over runs.

    Parameters
    ----------
    probes : list of nengo.Probe
        The probes of the model.
    dt : float
        Simulation time step.
    minibatch_size : int or None
        The simulator's minibatch size (None for no minibatch axis in the data).
    last_only : collection of nengo.Probe, optional
        Probes configured with ``keep_history=False``: each run adds only its
        last step to their data (NengoDL 3).
    """

    def __init__(self, probes, signals, dt, minibatch_size, last_only=()):
        self.probes = list(probes)
        self.shapes = {p: sig.shape for p, sig in zip(self.probes, signals)}
        self.dtypes = {p: sig.dtype for p, sig in zip(self.probes, signals)}
        self.dt = dt
        self.minibatch_size = minibatch_size
        self.chunks = {p: [] for p in self.probes}
        self.periods = [1 if p.sample_every is None else p.sample_every / dt for p in self.probes]
        self.last_only = frozenset(last_only)
        self._cache = {}

    def append(self, first_step, outputs):
        """Add the outputs of a run (each ``(n_steps, batch) + shape``)."""
        for probe, out in zip(self.probes, outputs):
            if probe in self.last_only:
                out = out[-1:]
            else:
                mask = sample_mask(probe, self.dt, first_step, out.shape[0])
                if not mask.all():
                    out = out[mask]
            # kept as given (a view, in the simulation's dtype); converted to the
            # signal's dtype when the data are read
            self.chunks[probe].append(np.moveaxis(out, 0, 1))
            self._cache.pop(probe, None)

    def append_step(self, first_step, values):
        """Add the value of each probe's signal after one step (no minibatch axis)."""
        step = first_step + 1
        for probe, period, value in zip(self.probes, self.periods, values):
            if step % period < 1 or probe in self.last_only:
                self.chunks[probe].append(value.reshape((1, 1) + value.shape))
                self._cache.pop(probe, None)

    def clear(self):
        """Forget all recorded data."""
        for probe in self.probes:
            self.chunks[probe] = []
        self._cache.clear()

    def __contains__(self, probe):
        return probe in self.chunks

    def chunks_by_probe(self):
        """The recorded chunks of each probe (copies of the lists, for pickling)."""
        return {p: list(c) for p, c in self.chunks.items()}

    def set_chunks(self, chunks):
        """Replace the recorded chunks of the probes in ``chunks`` (as `chunks_by_probe`)."""
        for probe, parts in chunks.items():
            self.chunks[probe] = list(parts)
            self._cache.pop(probe, None)

    def count(self, probe):
        """Number of samples recorded for ``probe``."""
        return sum(chunk.shape[1] for chunk in self.chunks[probe])

    def replace(self, probe, samples):
        """Replace the recorded samples of ``probe`` (an array ``(batch, n) + shape``)."""
        self.chunks[probe] = [samples] if samples.shape[1] else []
        self._cache.pop(probe, None)

    def __getitem__(self, probe):
        if probe not in self._cache:
            chunks = self.chunks[probe]
            if chunks:
                data = np.concatenate(chunks, axis=1, dtype=self.dtypes[probe], casting="unsafe")
            else:
                data = np.zeros(
                    (self.minibatch_size or 1, 0) + self.shapes[probe],
                    dtype=self.dtypes[probe],
                )
            if self.minibatch_size is None:
                data = data[0]
            data.setflags(write=False)
            self._cache[probe] = data
        return self._cache[probe]


class SimulationData(Mapping):
    """`sim.data`: probe data and the built parameters of nengo objects.

    ``sim.data[probe]`` has shape ``(n_steps, ...)`` without a minibatch, and
    ``(minibatch_size, n_steps, ...)`` with one; ``sim.data[obj]`` for other
    objects gives nengo's built parameters (e.g. ``sim.data[ens].encoders``).

    Parameters
    ----------
    params : Mapping
        The model's built parameters (``model.params``).
    recorder : ProbeRecorder
        The probe data.
    sim : Simulator, optional
        The simulator, whose trained parameters ``sim.data[obj]`` shows. Its
        model, plan and run state are kept, not the simulator itself: the
        simulator keeps this object, and a reference cycle between the two
        would keep a dropped simulator (its traced TensorFlow functions too)
        until Python's next full garbage collection.
    """

    def __init__(self, params, recorder, sim=None):
        self.params = params
        self.recorder = recorder
        self._source = None if sim is None else TrainedSource(sim.model, sim.plan, sim.run_state)
        self.raw = RawData(params, recorder)

    def __getitem__(self, key):
        if key in self.recorder:
            return self.recorder[key]
        built = self.params[key]
        source = self._source
        if source is not None and source.run_state.trained and built is not None:
            from nengodl.io.nengo_params import current_params

            return current_params(source, key, built)
        return built

    def __iter__(self):
        return iter(self.params)

    def __len__(self):
        return len(self.params)

    def __repr__(self):
        return f"SimulationData({list(self.params)!r})"

    def get_params(self, *obj_attrs):
        """Current values of several parameters at once (NengoDL 3).

        Parameters
        ----------
        *obj_attrs : tuple of (nengo object, str)
            Each object and the name of one of its built parameters.

        Returns
        -------
        list
            ``sim.data[obj].attr`` for each pair (trained values after training).

        Examples
        --------
        >>> import nengo, nengodl
        >>> with nengo.Network(seed=0) as net:
        ...     ens = nengo.Ensemble(3, 1)
        >>> with nengodl.Simulator(net, progress_bar=False) as sim:
        ...     gain, bias = sim.data.get_params((ens, "gain"), (ens, "bias"))
        >>> bool((gain == sim.data[ens].gain).all()), bias.shape
        (True, (3,))
        """
        for pair in obj_attrs:
            if not (isinstance(pair, tuple) and len(pair) == 2 and isinstance(pair[1], str)):
                raise ValidationError(
                    f"get_params takes (object, attribute name) pairs (got {pair!r})",
                    attr="obj_attrs",
                )
        return [getattr(self[obj], attr) for obj, attr in obj_attrs]

    def reset(self):
        """Kept for nengo compatibility; data views are rebuilt on access."""


class RawData(Mapping):
    """`sim.data.raw`, as nengo's: each probe's samples as a list-like.

    ``raw[probe]`` is a `ProbeSamples`: one array per recorded sample, which can
    be read, sliced and deleted (``del sim.data.raw[probe][:]`` forgets the
    samples recorded so far; later steps keep recording). Other keys give the
    built parameters, as ``sim.data`` does before training.
    """

    def __init__(self, params, recorder):
        self.params = params
        self.recorder = recorder

    def __getitem__(self, key):
        if key in self.recorder:
            return ProbeSamples(self.recorder, key)
        return self.params[key]

    def __iter__(self):
        return iter(self.params)

    def __len__(self):
        return len(self.params)


class ProbeSamples(MutableSequence):
    """The samples of one probe, as the list nengo keeps in ``sim.data.raw``.

    Each item is one sample: the probed signal's shape, with a leading
    minibatch axis when the simulator has a minibatch. Changes (deleting,
    inserting samples) change the probe's data in ``sim.data``.
    """

    def __init__(self, recorder, probe):
        self.recorder = recorder
        self.probe = probe

    def _items(self):
        """``(n_samples,) + item shape``."""
        data = self.recorder[self.probe]
        return data if self.recorder.minibatch_size is None else np.moveaxis(data, 1, 0)

    def _store(self, items):
        rec = self.recorder
        shape = rec.shapes[self.probe]
        if rec.minibatch_size is not None:
            shape = (rec.minibatch_size,) + shape
        items = [
            np.broadcast_to(np.asarray(item, dtype=rec.dtypes[self.probe]), shape)
            for item in items
        ]
        data = np.stack(items) if items else np.zeros((0,) + shape, rec.dtypes[self.probe])
        rec.replace(
            self.probe, data[None] if rec.minibatch_size is None else np.moveaxis(data, 0, 1)
        )

    def __len__(self):
        return self.recorder.count(self.probe)

    def __getitem__(self, index):
        items = self._items()
        if isinstance(index, slice):
            return list(items[index])
        return items[index]

    def __setitem__(self, index, value):
        items = list(self._items())
        items[index] = value
        self._store(items)

    def __delitem__(self, index):
        if isinstance(index, slice) and index == slice(None):
            self._store([])
            return
        items = list(self._items())
        del items[index]
        self._store(items)

    def insert(self, index, value):
        """Insert a sample (the probed signal's shape) before ``index``."""
        items = list(self._items())
        items.insert(index, np.asarray(value))
        self._store(items)

    def __repr__(self):
        return f"ProbeSamples({self.probe!r}, {len(self)} samples)"
