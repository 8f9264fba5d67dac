"""One model gives one plan in every process, whatever the hash seed and the
memory addresses (nengo's optimiser left alone tries operators in the order of
a set, and stops early by the clock)."""

import os
import subprocess
import sys

import nengo
import nengo_spa as spa
import numpy as np

import nengodl

HERE = os.path.dirname(os.path.abspath(__file__))


def spa_model(dimensions, seed=0):
    """States, binding, a memory with feedback, a WTA associative memory and
    action selection."""
    with spa.Network(seed=seed) as model:
        a, b, c = spa.State(dimensions), spa.State(dimensions), spa.State(dimensions)
        a.vocab.populate("A; B; C")
        a * b >> c
        memory = spa.State(a.vocab, feedback=1.0)
        c >> memory
        clean = spa.WTAAssocMem(0.3, a.vocab, mapping=["A", "B", "C"])
        memory >> clean
        spa.sym.A >> a
        with spa.ActionSelection():
            spa.ifmax(spa.dot(a, spa.sym.A), spa.sym.B >> b)
            spa.ifmax(spa.dot(a, spa.sym.B), spa.sym.C >> b)
        model.p = nengo.Probe(clean.output, synapse=0.01)
    return model


def ensembles_model(n, seed=0):
    """``n`` ensembles, each fed by two random others (as the scale benchmark's)."""
    rng = np.random.RandomState(seed)
    with nengo.Network(seed=seed) as net:
        stim = nengo.Node(np.sin)
        ens = [nengo.Ensemble(20, 1) for _ in range(n)]
        for i, e in enumerate(ens):
            for j in rng.choice(n, 2, replace=False):
                nengo.Connection(ens[j], e, transform=rng.uniform(-1, 1), synapse=0.01)
            if i % 10 == 0:
                nengo.Connection(stim, e)
        net.p = nengo.Probe(ens[0], synapse=0.01)
    return net


SCRIPT = """
import sys
sys.path.insert(0, {here!r})
import nengodl
from test_plan_determinism import ensembles_model, spa_model
for net in (spa_model(16), ensembles_model(40)):
    with nengodl.Simulator(net, progress_bar=False) as sim:
        print(len(sim.plan.steps), sim.plan.fingerprint())
"""


def fingerprints(hash_seed):
    env = dict(os.environ, PYTHONHASHSEED=hash_seed, TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(here=HERE)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    ).stdout
    return out.split()


def test_one_plan_per_model_in_every_process():
    # in this process too, with two models alive at other addresses
    with nengodl.Simulator(spa_model(16), progress_bar=False) as sim:
        here = [str(len(sim.plan.steps)), sim.plan.fingerprint()]
    with nengodl.Simulator(ensembles_model(40), progress_bar=False) as sim:
        here += [str(len(sim.plan.steps)), sim.plan.fingerprint()]
    runs = [fingerprints(seed) for seed in ("0", "1", "random")]
    assert all(run == here for run in runs), (here, runs)


def test_fingerprint_tells_plans_apart():
    def fingerprint(net, **kwargs):
        with nengodl.Simulator(net, progress_bar=False, **kwargs) as sim:
            return sim.plan.fingerprint()

    net = ensembles_model(10)
    same = fingerprint(net)
    assert fingerprint(ensembles_model(10)) == same
    assert fingerprint(ensembles_model(10, seed=1)) != same  # other connections
    assert fingerprint(net, optimize=False) != same
