"""`Simulator.keras_model`: what Keras callbacks see as the model (the
simulator's weights and optimizer), and NengoDL 3's ``sim.keras_model``."""

import shutil
import warnings

import numpy as np

from nengodl.io import params
from nengodl.runtime.weak import WeakSimulator
from nengodl.training.keras_data import io_names, ordered_input_nodes
from nengodl.training.trainer import optimizer_variables


class SimulatorModel:
    """The simulation as a Keras-like model: ``sim.keras_model``, and what Keras
    callbacks see as ``model`` during `fit`/`evaluate`.

    It is not a `keras.Model` (the simulation is a compiled loop, not a graph of
    layers); it has what NengoDL 3 code and Keras callbacks use of one:
    ``summary()``, ``count_params()``, ``weights`` / ``trainable_weights`` /
    ``non_trainable_weights``, ``stop_training`` (EarlyStopping),
    ``get_weights``/``set_weights`` (``restore_best_weights``),
    ``save_weights``/``save``/``load_weights`` (ModelCheckpoint; with the
    optimizer's state, for BackupAndRestore), ``optimizer``, ``input_names``,
    ``output_names``,
    ``trainable_variables`` and ``history``.

    Parameters
    ----------
    sim : Simulator
        The simulator.
    """

    sim = WeakSimulator()  # the simulator owns this: no reference cycle back

    built = True  # read by BackupAndRestore
    name = "keras_model"

    def __init__(self, sim):
        self.sim = sim
        self.stop_training = False
        self.optimizer = None
        self.history = None
        self.train_function = None  # read by TensorBoard (no graph is written)
        self.layers = []
        self._initial_epoch = None  # set by BackupAndRestore when it restores

    @property
    def input_names(self):
        """Names of the input Nodes, in the order of a list of input arrays (see
        `nengodl.training.keras_data.io_names`)."""
        names = io_names(self.sim)
        return [names[n] for n in ordered_input_nodes(self.sim)]

    @property
    def output_names(self):
        """Names of the Probes, in the order of ``sim.model.probes`` (the keys of
        `evaluate`'s ``<name>_loss`` logs)."""
        names = io_names(self.sim)
        return [names[p] for p in self.sim.model.probes]

    @property
    def trainable_variables(self):
        """The variables `fit` trains (what the optimizer's state is built for)."""
        return [v for v, _ in self.sim.trainer.variables()]

    def _variables(self):
        return self.sim.loop.all_variables() + self.sim.plan.keras_variables()

    @property
    def weights(self):
        """Every parameter variable (the model's signals and Keras layers' weights)."""
        return self._variables()

    @property
    def trainable_weights(self):
        """The variables that training changes (`trainable_variables`)."""
        return self.trainable_variables

    @property
    def non_trainable_weights(self):
        """The variables that training leaves alone."""
        trainable = {id(v) for v in self.trainable_variables}
        return [v for v in self._variables() if id(v) not in trainable]

    def count_params(self):
        """Number of parameter values (elements of all `weights`)."""
        return int(sum(np.prod(v.shape, dtype=int) for v in self._variables()))

    def _rows(self):
        """``(name, shape, trainable elements)`` for each variable."""
        sim = self.sim
        masks = {id(v): m for v, m in sim.trainer.variables()}
        names = {id(var): base.name for base, var in sim.run_state.variables().items()}
        rows = []
        for var in self._variables():
            size = int(np.prod(var.shape, dtype=int))
            if id(var) not in masks:
                trainable = 0
            elif masks[id(var)] is None:
                trainable = size
            else:
                trainable = int(np.sum(masks[id(var)]))
            name = names.get(id(var), getattr(var, "path", None) or var.name)
            rows.append((name, tuple(var.shape), trainable))
        return rows

    def summary(self, line_length=None, print_fn=None, **kwargs):
        """Print a description: inputs, outputs and parameters with their counts.

        Parameters
        ----------
        line_length : int, optional
            Width of the table (default 88).
        print_fn : callable, optional
            Called with each line (default `print`), as in Keras.
        **kwargs
            Keras' other ``summary`` arguments, accepted and ignored.

        Examples
        --------
        >>> import nengo, nengodl
        >>> with nengo.Network() as net:
        ...     a = nengo.Node([1.0])
        ...     b = nengo.Node(size_in=2)
        ...     _ = nengo.Connection(a, b, transform=[[1.0], [2.0]])
        ...     p = nengo.Probe(b)
        >>> lines = []
        >>> with nengodl.Simulator(net, progress_bar=False) as sim:
        ...     sim.keras_model.summary(print_fn=lines.append)
        >>> lines[-3:]
        ['Total params: 2', 'Trainable params: 2', 'Non-trainable params: 0']
        """
        print_fn = print if print_fn is None else print_fn
        width = 88 if line_length is None else int(line_length)
        sim = self.sim
        batch = sim.minibatch_size or 1

        def row(*cols):
            name, rest = str(cols[0]), "  ".join(str(c) for c in cols[1:])
            room = max(width - len(rest) - 2, 8)
            name = name if len(name) <= room else name[: room - 3] + "..."
            return f"{name:<{room}}  {rest}"

        network = sim.model.toplevel
        label = network.label if network is not None and network.label else "network"
        print_fn(f'Model: "{self.name}" (nengodl simulation of {label}, dt={sim.dt:g})')
        print_fn("=" * width)
        print_fn(row("Input (Node)", "shape"))
        print_fn("-" * width)
        names = io_names(sim)
        for node in ordered_input_nodes(sim):
            print_fn(row(names[node], (batch, "n_steps", node.size_out)))
        print_fn("=" * width)
        print_fn(row("Output (Probe)", "shape"))
        print_fn("-" * width)
        for probe, sig in zip(sim.plan.probes, sim.plan.probe_sigs):
            name = f"{names[probe]} ({probe.target})"
            print_fn(row(name, (batch, "n_steps") + tuple(sig.shape)))
        print_fn("=" * width)
        print_fn(row("Parameter", "shape", "trainable"))
        print_fn("-" * width)
        rows = self._rows()
        for name, shape, trainable in rows:
            print_fn(row(name, shape, trainable))
        print_fn("=" * width)
        total = sum(int(np.prod(shape, dtype=int)) for _, shape, _ in rows)
        trainable = sum(t for _, _, t in rows)
        print_fn(f"Total params: {total}")
        print_fn(f"Trainable params: {trainable}")
        print_fn(f"Non-trainable params: {total - trainable}")

    def get_weights(self):
        """All parameter values, as numpy arrays."""
        return [v.numpy() for v in self._variables()]

    def set_weights(self, weights):
        """Assign values returned by `get_weights`."""
        for var, w in zip(self._variables(), weights):
            var.assign(w)

    def save_weights(self, filepath, overwrite=True, **kwargs):
        """Save parameters and the optimizer's state with `nengodl.io.params.save_params`.

        The file is ``<filepath without .weights.h5>.npz``; a copy is written
        to ``filepath`` itself when that name differs (BackupAndRestore checks
        that it exists).
        """
        base = str(filepath).removesuffix(".weights.h5")
        state = optimizer_variables(self.optimizer)
        extra = {f"optimizer_{k}": v.numpy() for k, v in enumerate(state)}
        if state:
            extra["optimizer_layout"] = np.array(
                params.variable_layout(self.sim, self.trainable_variables)
            )
        params.save_params(self.sim, base, extra=extra)
        if str(filepath) != f"{base}.npz" and not str(filepath).endswith(".npz"):
            shutil.copyfile(f"{base}.npz", filepath)

    save = save_weights

    def load_weights(self, filepath, **kwargs):
        """Load parameters (and the optimizer's state, when saved) from `save_weights`.

        The optimizer's state is stored per variable: it is restored only when
        the trainable variables hold the same signals as when it was saved
        (always for multi-worker strategies and ``optimize=False``; nengo's
        merging optimiser may lay them out differently), else a warning says so.
        """
        base = str(filepath).removesuffix(".weights.h5").removesuffix(".npz")
        self.sim.load_params(base)
        state = optimizer_variables(self.optimizer)
        with np.load(f"{base}.npz") as f:
            values = [f[f"optimizer_{k}"] for k in range(len(state)) if f"optimizer_{k}" in f]
            layout = str(f["optimizer_layout"]) if "optimizer_layout" in f else None
        if not values:
            return
        if [v.shape for v in values] != [tuple(v.shape) for v in state] or layout != (
            params.variable_layout(self.sim, self.trainable_variables)
        ):
            warnings.warn(
                f"the optimizer state in {base}.npz does not match this simulator's "
                "variables (build with optimize=False for an exact resume); it is "
                "not restored"
            )
            return
        for var, val in zip(state, values):
            var.assign(val)
