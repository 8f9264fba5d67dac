"""One model gives one plan in every process, whatever the hash seed and the
memory addresses (nengo's optimiser left alone tries operators in the order of
a set, and stops early by the clock)."""

import os
import subprocess
import sys

import nengodl
from nengodl.benchmarks.scale import ensembles as ensembles_model
from nengodl.benchmarks.scale import spa_model

HERE = os.path.dirname(os.path.abspath(__file__))


SCRIPT = """
import sys
sys.path.insert(0, {here!r})
import nengodl
from nengodl.benchmarks.scale import ensembles as ensembles_model, spa_model
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
