"""The LIF update's series forms, against numpy's functions and nengo.Simulator."""

import math

import nengo
import numpy as np
import pytest
import tensorflow as tf

import nengodl
from nengodl.ops.neurons import expm1_series, lif_series_terms, log1p_series, series_terms
from nengodl.options import Options

DT, TAU_RC = 0.001, 0.02


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_series_match_numpy_on_their_ranges(dtype):
    eps = np.finfo(dtype).eps
    bound = DT / TAU_RC
    reach = -np.expm1(-bound)
    n_exp, n_log = lif_series_terms(DT, TAU_RC, dtype)
    x = -np.linspace(0, bound, 10001)
    got = expm1_series(tf.constant(x, dtype), n_exp).numpy()
    np.testing.assert_allclose(got, np.expm1(x), rtol=4 * eps, atol=0)
    r = -np.linspace(0, reach, 10001)
    got = log1p_series(tf.constant(r, dtype), n_log).numpy()
    np.testing.assert_allclose(got, np.log1p(r), rtol=4 * eps, atol=0)


def test_series_terms_gives_up_on_wide_ranges():
    assert series_terms("float64", lambda n: 2.0**n / math.factorial(n + 1)) is None


@pytest.mark.parametrize(
    "neuron_type",
    [
        nengo.LIF(),
        nengo.LIF(tau_ref=0.0015, min_voltage=-0.5),
        nengo.AdaptiveLIF(tau_n=0.05, inc_n=0.2),
        # voltages above 1 at the start: the exact log is used
        nengo.LIF(initial_state={"voltage": nengo.dists.Uniform(1, 1.05)}),
        # dt / tau_rc = 2: neither series is used
        nengo.LIF(tau_rc=0.0005),
    ],
)
@pytest.mark.parametrize("jit", [True, False])
@pytest.mark.parametrize("fast", [True, False])
def test_lif_state_matches_nengo(neuron_type, jit, fast):
    # fast: the series and the kept decayed voltage (the default); both are options
    options = Options(lif_series=fast, keep_shared=fast, xla_after_steps=0)
    with nengo.Network(seed=3) as net:
        stim = nengo.Node(lambda t: [np.sin(20 * t), np.cos(7 * t)])
        ens = nengo.Ensemble(
            200, 2, neuron_type=neuron_type, max_rates=nengo.dists.Uniform(100, 400)
        )
        nengo.Connection(stim, ens)
        probes = [
            nengo.Probe(ens.neurons, attr) for attr in ("output", "voltage", "refractory_time")
        ]
    with nengo.Simulator(net, progress_bar=False) as ref:
        ref.run(0.3)
    with nengodl.Simulator(
        net, progress_bar=False, dtype="float64", jit=jit, minibatch_size=2, options=options
    ) as sim:
        sim.run(0.3)
    spikes = ref.data[probes[0]] > 0
    assert spikes.sum() > 1000  # many spikes, and refractory periods ending mid-step
    for p in probes:
        for item in range(2):
            np.testing.assert_allclose(sim.data[p][item], ref.data[p], atol=1e-10, rtol=0)
