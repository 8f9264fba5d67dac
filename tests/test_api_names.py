"""The "NengoDL 3.6 API, name by name" table of docs/migration.md, row by row.

Truth: the table, whose names were read from NengoDL 3.6's user API reference
(and the signatures behind it). Each row names something of NengoDL 3.6 and
says whether nengodl has it; the test looks each name up in nengodl and fails
when the table says "yes" and the name is not there, or says "no" and it is
(so the table cannot drift either way). No simulation runs: the instances the
lookups need are built once.

How a row's name is read (relative to ``nengo_dl``, i.e. to ``nengodl``):

- ``a.b.c``: an attribute chain from the ``nengodl`` package (``Simulator.fit``);
- ``sim.x``, ``conv.x``, ``node.x``: an attribute of a built `nengodl.Simulator`,
  `nengodl.Converter` or `nengodl.TensorNode`;
- ``a.b(p, q)``: parameters named ``p`` and ``q`` in ``inspect.signature(a.b)``
  (a "no" row: none of them);
- ``configure_settings(key=)``: a setting that ``configure_settings`` accepts and
  stores where NengoDL 3.6 documents it.
"""

import inspect
import pathlib
import re

import keras
import nengo
import numpy as np
import pytest
import tensorflow as tf

import nengodl

DOC = pathlib.Path(__file__).resolve().parents[1] / "docs" / "migration.md"
HEADING = "## NengoDL 3.6 API, name by name"
NAME = re.compile(r"^(?P<path>[A-Za-z_][\w.]*)(?:\((?P<args>[^)]*)\))?$")


def table_rows():
    """(name, in_nengodl) for each table row of the section, in order."""
    text = DOC.read_text(encoding="utf-8")
    start = text.index(HEADING) + len(HEADING)
    end = text.find("\n## ", start)
    section = text[start:] if end < 0 else text[start:end]
    rows = []
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        name = cells[0]
        assert name.startswith("`") and name.endswith("`"), f"name cell {name!r}"
        rows.append((name[1:-1], cells[1]))
    return rows


ROWS = table_rows()


@pytest.fixture(scope="module")
def instances():
    """A built Simulator, a Converter and a TensorNode for the instance rows."""
    with nengo.Network() as net:
        stim = nengo.Node([0.5])
        ens = nengo.Ensemble(5, 1)
        nengo.Connection(stim, ens)
        nengo.Probe(ens)
        node = nengodl.TensorNode(lambda t, x: x, shape_in=(1,), shape_out=(1,))
        nengo.Connection(stim, node)
    inp = keras.Input((3,))
    model = keras.Model(inp, keras.layers.Dense(2, activation="relu")(inp))
    conv = nengodl.Converter(model)
    sim = nengodl.Simulator(net, progress_bar=False)
    yield {"sim": sim, "conv": conv, "node": node}
    sim.close()


def lookup(path, instances):
    """The object ``path`` names, or raise AttributeError."""
    first, *rest = path.split(".")
    obj = instances[first] if first in instances else getattr(nengodl, first)
    for part in rest:
        obj = getattr(obj, part)
    return obj


def has(path, instances):
    try:
        lookup(path, instances)
    except AttributeError:
        return False
    return True


def has_params(path, names, instances):
    """For each name, whether ``inspect.signature`` of ``path`` has that parameter."""
    obj = lookup(path, instances)
    # a class's own constructor (nengo objects' metaclass hides it from signature(cls))
    params = inspect.signature(obj.__init__ if inspect.isclass(obj) else obj).parameters
    return {name: name in params for name in names}


def planner(operators):
    return [operators]


# a value for each setting, and where NengoDL 3.6 keeps it
SETTING_VALUES = {
    "trainable": False,
    "planner": planner,
    "sorter": planner,
    "simplifications": [],
    "inference_only": True,
    "lif_smoothing": 0.5,
    "dtype": tf.float64,
    "keep_history": False,
    "stateful": False,
    "use_loop": False,
    "learning_phase": True,
}


def check_setting(key):
    """``configure_settings(key=value)``, then the value where 3.6 keeps it."""
    value = SETTING_VALUES[key]
    with nengo.Network() as net:
        nengodl.configure_settings(**{key: value})
        ens = nengo.Ensemble(2, 1)
        probe = nengo.Probe(ens)
    if key == "trainable":
        # a parameter of Ensembles, Neurons and Connections, set per object too
        # (nengodl keeps the network-wide value on the network's config)
        # (so the class-wide parameter reads None; reading it raises if it is missing)
        for cls in (nengo.Ensemble, nengo.ensemble.Neurons, nengo.Connection):
            assert net.config[cls].trainable is None, cls
        net.config[ens].trainable = True
        assert net.config[ens].trainable is True
        assert net.config[nengo.Network].trainable is value
    elif key == "keep_history":
        # a parameter of Probes, set per probe too
        assert net.config[nengo.Probe].keep_history is value
        net.config[probe].keep_history = True
        assert net.config[probe].keep_history is True
    else:
        stored = nengodl.config.get_setting(net, key)
        if key == "dtype":
            stored = tf.as_dtype(stored)
        assert stored == value, f"{key}: stored {stored!r}, set {value!r}"


@pytest.mark.parametrize(("name", "answer"), ROWS, ids=[name for name, _ in ROWS])
def test_name_in_nengodl(name, answer, instances):
    """The row's name exists in nengodl exactly when the table says "yes"."""
    assert answer in ("yes", "no"), f"{name}: 'in nengodl' must be yes or no, not {answer!r}"
    expected = answer == "yes"
    match = NAME.match(name)
    assert match, f"cannot read the row name {name!r}"
    path, args = match["path"], match["args"]
    if path == "configure_settings" and args is not None:
        key = args.strip()
        assert key.endswith("="), f"{name}: a setting row reads configure_settings(key=)"
        assert expected, f"{name}: every 3.6 setting is accepted"
        check_setting(key[:-1])
        return
    if args is None:
        found = has(path, instances)
        assert found == expected, (
            f"{name}: table says {answer!r}, nengodl {'has' if found else 'lacks'} it; "
            "update docs/migration.md"
        )
        return
    names = [a.strip() for a in args.split(",")]
    assert all(names), f"{name}: empty argument name"
    wrong = {n: f for n, f in has_params(path, names, instances).items() if f != expected}
    assert not wrong, (
        f"{name}: table says {answer!r}, but nengodl "
        f"{'lacks' if expected else 'has'} {sorted(wrong)}; update docs/migration.md"
    )


def test_table_covers_the_user_api():
    """The table is there, whole: every part of 3.6's user reference has rows."""
    names = [name for name, _ in ROWS]
    assert len(names) == len(set(names)), "a name appears twice"
    assert len(names) > 100
    for prefix in (
        "Simulator(",
        "Simulator.fit",
        "sim.data",
        "simulator.SimulationData",
        "TensorNode(",
        "Layer(",
        "Converter(",
        "configure_settings(",
        "SoftLIFRate",
        "LeakyReLU",
        "SpikingLeakyReLU",
        "dists.TruncatedNormal",
        "dists.VarianceScaling",
        "dists.Glorot",
        "dists.He",
        "losses.nan_mse",
        "losses.Regularize",
        "callbacks.NengoSummaries",
        "callbacks.TensorBoard",
        "callbacks.IsolateState",
    ):
        assert any(n.startswith(prefix) for n in names), f"no row for {prefix}"
    prefix = "configure_settings("
    settings = {n[len(prefix) : -2] for n in names if n.startswith(prefix)}
    assert settings == set(SETTING_VALUES)


def test_lookup_tells_missing_from_present(instances):
    """The lookups can say no: a made-up name and argument are reported missing."""
    assert not has("Simulator.no_such_method", instances)
    assert not has("sim.no_such_attribute", instances)
    assert has_params("Simulator.fit", ["x", "no_such_argument"], instances) == {
        "x": True,
        "no_such_argument": False,
    }
    with pytest.raises(nengo.exceptions.ConfigError):
        with nengo.Network():
            nengodl.configure_settings(no_such_setting=np.float32(1))


def test_values_of_attribute_rows():
    """Rows naming attributes: the values 3.6 gives them (or the documented differences)."""
    # neuron types: nengo's ``negative`` (outputs can be < 0) and ``spiking`` flags
    flags = {
        nengodl.SoftLIFRate(sigma=0.5): (False, False),
        nengodl.LeakyReLU(): (True, False),  # differs: 3.6 says negative=False
        nengodl.SpikingLeakyReLU(): (True, True),  # differs: 3.6 says negative=False
    }
    for neuron_type, (negative, spiking) in flags.items():
        assert (neuron_type.negative, neuron_type.spiking) == (negative, spiking), neuron_type
    assert nengodl.SoftLIFRate(sigma=0.5).sigma == 0.5

    # Layer.__str__: the layer function's name
    def double(x):
        return 2 * x

    assert str(nengodl.Layer(double)) == "Layer(double)"
    assert str(nengodl.Layer(keras.layers.Dense(2, name="dense_a"))) == "Layer(dense_a)"
    assert str(nengodl.Layer(nengo.LIF())) == f"Layer({nengo.LIF()})"

    # Converter: each constructor argument is kept
    inp = keras.Input((None, 3))
    model = keras.Model(inp, keras.layers.Dense(2, activation="relu")(inp))
    synapse = nengo.Lowpass(0.005)
    args = {
        "allow_fallback": False,
        "inference_only": True,
        "max_to_avg_pool": True,
        "split_shared_weights": True,
        "scale_firing_rates": 3.0,
        "synapse": synapse,
        "temporal_model": True,
    }
    conv = nengodl.Converter(model, **args)
    for name, value in args.items():
        assert getattr(conv, name) == value, name
    assert conv.synapse is synapse
    assert conv.model is model
    assert isinstance(conv.net, nengo.Network)
    inp = keras.Input((3,))
    default = nengodl.Converter(keras.Model(inp, keras.layers.Dense(2)(inp)))
    assert (default.inference_only, default.max_to_avg_pool, default.split_shared_weights) == (
        False,
        False,
        False,
    )
    assert (default.scale_firing_rates, default.synapse, default.temporal_model) == (
        None,
        None,
        False,
    )

    # distributions: parameters set from the arguments
    dist = nengodl.dists.TruncatedNormal(mean=0.5, stddev=2, limit=3)
    assert (dist.mean, dist.stddev, dist.limit) == (0.5, 2, 3)
    assert nengodl.dists.TruncatedNormal(stddev=0.25).limit == 0.5
    dist = nengodl.dists.VarianceScaling(scale=2, mode="fan_out", distribution="normal")
    assert (dist.scale, dist.mode, dist.distribution) == (2, "fan_out", "normal")
    dist = nengodl.dists.VarianceScaling()
    assert (dist.scale, dist.mode, dist.distribution) == (1, "fan_avg", "uniform")


def test_license_is_the_projects():
    """``__license__`` names the license that pyproject.toml declares."""
    import tomllib

    pyproject = pathlib.Path(__file__).resolve().parents[1] / "pyproject.toml"
    declared = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["license"]
    assert nengodl.__license__ == declared["text"] == "MIT"
    assert "__license__" in nengodl.__all__
