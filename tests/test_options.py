"""Tuning options: each one toggled gives nengo's output; they are fixed per simulator."""

import importlib

import nengo
import numpy as np
import pytest
from nengo.exceptions import ValidationError

import nengodl
import nengodl.graph
from nengodl.options import Options


def net_and_reference():
    with nengo.Network(seed=2) as net:
        stim = nengo.Node(lambda t: np.sin(6 * t))
        a = nengo.Ensemble(40, 1)
        b = nengo.Ensemble(30, 1)
        nengo.Connection(stim, a)
        nengo.Connection(a, b, function=np.square)
        p = nengo.Probe(b, synapse=0.01)
        t = nengo.Probe(stim)
    with nengo.Simulator(net, progress_bar=False) as ref:
        ref.run_steps(60)
    return net, (p, t), ref


@pytest.mark.parametrize(
    "change",
    [
        {"xla_chunk": 16},
        {"probe_buffer_bytes": 1},
        {"xla_max_steps": 0},
        {"shard_bytes": 0},
        {"shard_bytes": 1, "op_bytes": 0},
        {"drop_transient": False},
        {"keep_shared": False},
        {"clock_outside": False},
        {"shard_bytes": 1, "op_bytes": 0, "shard_workers": 3},
        {"slice_sums": False},
        {"fold_width": None},
        {"fold_width": 4},
        {"lif_series": False},
        {"fast_closure": False},
        {"xla_after_steps": 10**6},  # every run without XLA
        {"shared_programs": 0},
    ],
)
def test_each_option_gives_nengos_output(change):
    net, probes, ref = net_and_reference()
    options = Options(**{"xla_after_steps": 0, **change})  # XLA from the first run
    for minibatch_size in [None, 3]:
        with nengodl.Simulator(
            net,
            dtype="float64",
            minibatch_size=minibatch_size,
            options=options,
            progress_bar=False,
        ) as sim:
            sim.run_steps(25)
            sim.run_steps(35)
        for p in probes:
            data = sim.data[p] if minibatch_size is None else sim.data[p][2]
            np.testing.assert_allclose(data, ref.data[p], atol=1e-10, rtol=0, err_msg=str(p))


def test_options_are_read_when_a_simulator_is_made(monkeypatch):
    # the deprecated module-level names still set the defaults of later simulators
    net, probes, ref = net_and_reference()
    monkeypatch.setattr(nengodl.graph, "XLA_MAX_STEPS", 0)
    with nengodl.Simulator(net, dtype="float64", progress_bar=False) as no_xla:
        monkeypatch.setattr(nengodl.graph, "XLA_MAX_STEPS", 600)
        with nengodl.Simulator(net, dtype="float64", progress_bar=False) as xla:
            assert not no_xla.jit and xla.jit
            no_xla.run_steps(60)  # still the options it was made with
            xla.run_steps(60)
            assert no_xla.options == Options(xla_max_steps=0)
    for p in probes:
        np.testing.assert_allclose(no_xla.data[p], ref.data[p], atol=1e-10, rtol=0)
        np.testing.assert_allclose(xla.data[p], ref.data[p], atol=1e-10, rtol=0)


@pytest.mark.parametrize(
    "module, name, option, value",
    [
        ("nengodl.graph", "XLA_MAX_STEPS", "xla_max_steps", 0),
        ("nengodl.graph", "SHARD_BYTES", "shard_bytes", 0),
        ("nengodl.signals", "SLICE_SUMS", "slice_sums", False),
        ("nengodl.ops.basic", "FOLD_WIDTH", "fold_width", None),
        ("nengodl.ops.neurons", "LIF_SERIES", "lif_series", False),
        ("nengodl.optimizer", "FAST_CLOSURE", "fast_closure", False),
    ],
)
def test_module_level_names_are_deprecated_aliases(monkeypatch, module, name, option, value):
    mod = importlib.import_module(module)
    default = getattr(Options(), option)
    with pytest.warns(DeprecationWarning, match=f"{module}.{name} is deprecated.*{option}="):
        assert getattr(mod, name) == default
    with pytest.warns(DeprecationWarning, match=f"{module}.{name}"):
        monkeypatch.setattr(mod, name, value)  # undone (with a warning) after the test
    assert getattr(Options.from_module(), option) == value
    assert getattr(Options(), option) == default  # the dataclass defaults stay


@pytest.mark.parametrize(
    "change, attr",
    [
        ({"xla_chunk": -1}, "xla_chunk"),
        ({"shard_bytes": 1.5}, "shard_bytes"),
        ({"drop_transient": 1}, "drop_transient"),
        ({"fold_width": "32"}, "fold_width"),
        ({"xla_max_steps": None}, "xla_max_steps"),
    ],
)
def test_bad_option_values_are_refused_naming_the_option(change, attr):
    with pytest.raises(ValidationError, match="Must be") as info:
        Options(**change)
    assert info.value.attr == attr
