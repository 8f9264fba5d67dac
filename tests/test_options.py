"""Tuning options: each one toggled gives nengo's output; they are fixed per simulator."""

import importlib
import types

import nengo
import numpy as np
import pytest
from nengo.exceptions import ValidationError

import nengodl
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
        {"nengo_merge_ops": 0},  # the planner merges alone
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


def test_each_simulator_keeps_the_options_it_was_made_with():
    net, probes, ref = net_and_reference()
    with nengodl.Simulator(
        net, dtype="float64", progress_bar=False, options=Options(xla_max_steps=0)
    ) as no_xla:
        with nengodl.Simulator(net, dtype="float64", progress_bar=False) as xla:
            assert not no_xla.jit and xla.jit
            no_xla.run_steps(60)
            xla.run_steps(60)
            assert no_xla.options == Options(xla_max_steps=0)
            assert xla.options == Options()
    for p in probes:
        np.testing.assert_allclose(no_xla.data[p], ref.data[p], atol=1e-10, rtol=0)
        np.testing.assert_allclose(xla.data[p], ref.data[p], atol=1e-10, rtol=0)


@pytest.mark.parametrize(
    "module, name",
    [
        ("nengodl.signals", "SLICE_SUMS"),
        ("nengodl.ops.basic", "FOLD_WIDTH"),
        ("nengodl.ops.neurons", "LIF_SERIES"),
        ("nengodl.optimizer", "FAST_CLOSURE"),
    ],
)
def test_options_is_the_one_way_to_tune(module, name):
    # no module-level tuning names, and no module whose class is rewritten to
    # give them: setting one would change every later simulator in the process
    mod = importlib.import_module(module)
    assert type(mod) is types.ModuleType
    assert not hasattr(mod, name)
    with pytest.raises(ImportError):
        importlib.import_module("nengodl.graph")


def test_options_of_another_type_are_refused():
    with nengo.Network() as net:
        nengo.Ensemble(5, 1)
    with pytest.raises(ValidationError, match="Must be a nengodl.options.Options") as info:
        nengodl.Simulator(net, options={"xla_max_steps": 0}, progress_bar=False)
    assert info.value.attr == "options"


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
