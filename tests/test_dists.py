"""nengodl.dists against scipy.stats, closed-form variances and nengo.Simulator."""

import pickle

import nengo
import numpy as np
import pytest
from nengo.exceptions import ValidationError
from scipy import stats

import nengodl
from nengodl import dists

# the KS p-value a correct sampler stays above (seeds fixed: the outcome is deterministic)
P_MIN = 0.01


def ks_pvalue(samples, dist):
    return stats.kstest(np.ravel(samples), dist.cdf).pvalue


def expected_variance(scale, mode, n, d):
    """``scale / fan`` for a weight matrix with ``n`` outputs and ``d`` inputs."""
    fan = {"fan_in": d, "fan_out": n, "fan_avg": (n + d) / 2}[mode]
    return scale / fan


def reference_dist(distribution, var):
    """What NengoDL 3 documents: Uniform(+-sqrt(3 var)), or N(0, var) cut at 2 stddev."""
    if distribution == "uniform":
        limit = np.sqrt(3 * var)
        return stats.uniform(loc=-limit, scale=2 * limit)
    return stats.truncnorm(-2, 2, loc=0, scale=np.sqrt(var))


@pytest.mark.parametrize(
    "mean, stddev, limit", [(0, 1, None), (0.5, 0.2, None), (-1, 2, 0.5), (3, 0.1, 0.3)]
)
def test_truncated_normal_matches_scipy_truncnorm(mean, stddev, limit):
    dist = dists.TruncatedNormal(mean=mean, stddev=stddev, limit=limit)
    lim = 2 * stddev if limit is None else limit
    assert dist.limit == pytest.approx(lim)
    x = dist.sample(400, 100, rng=np.random.RandomState(0))
    assert x.shape == (400, 100)
    assert np.all(np.abs(x - mean) <= lim)
    ref = stats.truncnorm(-lim / stddev, lim / stddev, loc=mean, scale=stddev)
    assert ks_pvalue(x, ref) > P_MIN
    # 40000 samples: the mean is within ~4 standard errors, the variance within 3%
    assert abs(np.mean(x) - ref.mean()) < 4 * ref.std() / np.sqrt(x.size)
    assert np.var(x) == pytest.approx(ref.var(), rel=0.03)


def test_truncated_normal_ks_check_tells_truncation_apart():
    """The KS check above has the power to see a wrong limit or no truncation."""
    x = dists.TruncatedNormal(stddev=1, limit=1.5).sample(40000, rng=np.random.RandomState(0))
    assert ks_pvalue(x, stats.truncnorm(-1.5, 1.5)) > P_MIN
    assert ks_pvalue(x, stats.truncnorm(-2, 2)) < 1e-6
    assert ks_pvalue(x, stats.norm()) < 1e-6


@pytest.mark.parametrize("distribution", ["uniform", "normal"])
@pytest.mark.parametrize("mode", ["fan_in", "fan_out", "fan_avg"])
@pytest.mark.parametrize("scale", [1, 2.5])
def test_variance_scaling_matches_documented_distribution(scale, mode, distribution):
    n, d = 300, 120
    dist = dists.VarianceScaling(scale=scale, mode=mode, distribution=distribution)
    var = expected_variance(scale, mode, n, d)
    assert dist.variance(n, d) == pytest.approx(var)
    w = dist.sample(n, d, rng=np.random.RandomState(1))
    assert w.shape == (n, d)
    ref = reference_dist(distribution, var)
    assert ks_pvalue(w, ref) > P_MIN
    assert np.all(np.abs(w) <= ref.support()[1])
    assert np.var(w) == pytest.approx(ref.var(), rel=0.03)
    if distribution == "normal":
        # no correction of the standard deviation for the truncation (as NengoDL 3)
        assert ref.var() == pytest.approx(0.7737 * var, rel=1e-3)


@pytest.mark.parametrize("mode, fan", [("fan_in", 1), ("fan_out", 5000), ("fan_avg", 2500.5)])
def test_variance_scaling_vector_sample_has_fan_in_one(mode, fan):
    dist = dists.VarianceScaling(scale=3, mode=mode)
    x = dist.sample(5000, rng=np.random.RandomState(2))
    assert x.shape == (5000,)
    assert ks_pvalue(x, reference_dist("uniform", 3 / fan)) > P_MIN


@pytest.mark.parametrize("distribution", ["uniform", "normal"])
@pytest.mark.parametrize("scale", [1, 2])
def test_glorot_variance_is_scale_over_mean_fan(scale, distribution):
    n, d = 200, 400
    w = dists.Glorot(scale=scale, distribution=distribution).sample(
        n, d, rng=np.random.RandomState(3)
    )
    assert ks_pvalue(w, reference_dist(distribution, scale * 2 / (n + d))) > P_MIN


@pytest.mark.parametrize("distribution", ["uniform", "normal"])
@pytest.mark.parametrize("scale", [1, np.sqrt(2)])
def test_he_variance_is_scale_squared_over_fan_in(scale, distribution):
    n, d = 300, 150
    dist = dists.He(scale=scale, distribution=distribution)
    assert dist.scale == scale
    w = dist.sample(n, d, rng=np.random.RandomState(4))
    assert ks_pvalue(w, reference_dist(distribution, scale**2 / d)) > P_MIN


def test_defaults_are_nengodl3s():
    tn = dists.TruncatedNormal()
    assert (tn.mean, tn.stddev, tn.limit) == (0, 1, 2)
    vs = dists.VarianceScaling()
    assert (vs.scale, vs.mode, vs.distribution) == (1, "fan_avg", "uniform")
    assert (dists.Glorot().mode, dists.Glorot().distribution) == ("fan_avg", "uniform")
    assert (dists.He().mode, dists.He().distribution) == ("fan_in", "normal")
    assert nengodl.dists is dists


@pytest.mark.parametrize(
    "dist",
    [
        dists.TruncatedNormal(),
        dists.VarianceScaling(),
        dists.Glorot(distribution="normal"),
        dists.He(),
    ],
    ids=repr,
)
def test_same_seed_same_samples_and_pickles(dist):
    a = dist.sample(50, 7, rng=np.random.RandomState(5))
    b = dist.sample(50, 7, rng=np.random.RandomState(5))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, dist.sample(50, 7, rng=np.random.RandomState(6)))
    assert dist.sample(4).shape == (4,)  # the default rng
    assert dist.sample(0, 3).shape == (0, 3)
    copy = pickle.loads(pickle.dumps(dist))
    assert copy == dist and repr(copy) == repr(dist)


@pytest.mark.parametrize(
    "make, attr",
    [
        (lambda: dists.TruncatedNormal(stddev=0), "stddev"),
        (lambda: dists.TruncatedNormal(stddev=-1), "stddev"),
        (lambda: dists.TruncatedNormal(limit=0), "limit"),
        (lambda: dists.TruncatedNormal(mean="a"), "mean"),
        (lambda: dists.VarianceScaling(scale=0), "scale"),
        (lambda: dists.VarianceScaling(mode="fan"), "mode"),
        (lambda: dists.VarianceScaling(distribution="truncated_normal"), "distribution"),
        (lambda: dists.Glorot(scale=-1), "scale"),
        (lambda: dists.He(distribution="gauss"), "distribution"),
    ],
)
def test_bad_arguments_name_the_parameter(make, attr):
    with pytest.raises(ValidationError, match=rf"\.{attr}: ") as info:
        make()
    assert info.value.attr == attr


def test_parameters_are_read_only():
    dist = dists.Glorot()
    with pytest.raises(Exception, match="read-only"):
        dist.scale = 2


def dists_network():
    with nengo.Network(seed=7) as net:
        net.inp = nengo.Node(lambda t: [np.sin(8 * t), np.cos(5 * t)])
        net.ens = nengo.Ensemble(
            40,
            2,
            encoders=dists.VarianceScaling(distribution="normal"),
            neuron_type=nengo.RectifiedLinear(),
        )
        net.out = nengo.Node(size_in=3)
        nengo.Connection(net.inp, net.ens, transform=dists.TruncatedNormal(stddev=0.5))
        net.conn = nengo.Connection(
            net.ens.neurons, net.out, transform=dists.Glorot(), synapse=0.01
        )
        net.dense = nengo.Connection(
            net.inp, net.out, transform=nengo.Dense((3, 2), init=dists.He()), synapse=None
        )
        net.p = nengo.Probe(net.out)
    return net


def test_in_a_network_same_weights_and_output_as_nengo():
    net = dists_network()
    with nengo.Simulator(net, progress_bar=False) as ref:
        ref.run_steps(100)
    with nengodl.Simulator(net, progress_bar=False, dtype="float64") as sim:
        sim.run_steps(100)
    for conn in (net.conn, net.dense):
        np.testing.assert_array_equal(sim.data[conn].weights, ref.data[conn].weights)
    np.testing.assert_array_equal(sim.data[net.ens].encoders, ref.data[net.ens].encoders)
    # the weights are samples of the distributions, of the transform's shape (out, in)
    assert sim.data[net.conn].weights.shape == (3, 40)
    assert np.all(np.abs(sim.data[net.conn].weights) <= np.sqrt(3 / ((3 + 40) / 2)))
    assert np.any(sim.data[net.conn].weights != 0)
    assert np.std(ref.data[net.p]) > 0.05
    np.testing.assert_allclose(sim.data[net.p], ref.data[net.p], rtol=1e-9, atol=1e-9)
