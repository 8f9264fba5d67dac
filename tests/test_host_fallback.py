"""Operators run through the host fallback match nengo, per minibatch item."""

import nengo
import numpy as np
import pytest
from nengo.builder import Operator

import nengodl


def run_both(net, steps=200, minibatch_size=2, dtype="float64"):
    with nengo.Simulator(net, progress_bar=False) as ref:
        ref.run_steps(steps)
    with nengodl.Simulator(
        net, progress_bar=False, minibatch_size=minibatch_size, dtype=dtype
    ) as sim:
        sim.run_steps(steps)
    return ref, sim


@pytest.mark.parametrize(
    "rule",
    [nengo.PES(), nengo.BCM(), nengo.Oja(), nengo.Voja(), nengo.RLS()],
    ids=lambda r: type(r).__name__,
)
def test_learning_rules_match_nengo_per_item(rule):
    with nengo.Network(seed=0) as net:
        stim = nengo.Node(lambda t: np.sin(8 * t))
        pre = nengo.Ensemble(30, 1)
        post = nengo.Ensemble(30, 1)
        nengo.Connection(stim, pre)
        if isinstance(rule, nengo.Voja):
            conn = nengo.Connection(pre, post, learning_rule_type=nengo.PES())
            nengo.Connection(stim, post, learning_rule_type=rule)
        elif isinstance(rule, (nengo.BCM, nengo.Oja)):
            conn = nengo.Connection(
                pre.neurons,
                post.neurons,
                transform=np.full((30, 30), 1e-3),
                learning_rule_type=rule,
            )
        else:
            conn = nengo.Connection(pre, post, learning_rule_type=rule)
        if isinstance(conn.learning_rule_type, (nengo.PES, nengo.RLS)):
            err = nengo.Node(size_in=1)
            nengo.Connection(post, err)
            nengo.Connection(stim, err, transform=-1)
            nengo.Connection(err, conn.learning_rule)
        p = nengo.Probe(post, synapse=0.01)
        pw = nengo.Probe(conn, "weights", sample_every=0.01)
    ref, sim = run_both(net)
    for probe in (p, pw):
        for item in range(2):  # both items see the same input: both match nengo
            np.testing.assert_allclose(sim.data[probe][item], ref.data[probe], atol=1e-10)


@pytest.mark.parametrize(
    "neuron_type",
    [
        nengo.AdaptiveLIF(),
        nengo.AdaptiveLIFRate(),
        nengo.Izhikevich(),
        nengo.PoissonSpiking(nengo.LIFRate()),
        nengo.StochasticSpiking(nengo.Tanh()),
    ],
    ids=lambda n: type(n).__name__,
)
def test_host_neuron_types_match_nengo(neuron_type):
    with nengo.Network(seed=1) as net:
        stim = nengo.Node(lambda t: np.sin(6 * t))
        ens = nengo.Ensemble(20, 1, neuron_type=neuron_type)
        nengo.Connection(stim, ens)
        p = nengo.Probe(ens.neurons)
    ref, sim = run_both(net, steps=100)
    np.testing.assert_allclose(sim.data[p][0], ref.data[p], atol=1e-10)
    if neuron_type.__class__.__name__ in ("PoissonSpiking", "StochasticSpiking"):
        # each minibatch item has its own random state
        assert not np.array_equal(sim.data[p][0], sim.data[p][1])
    else:
        np.testing.assert_allclose(sim.data[p][1], ref.data[p], atol=1e-10)


@pytest.mark.parametrize("inference_only", [False, True])
def test_poisson_spiking_mean_rate_is_the_base_rate(inference_only):
    """NengoDL 3 once gave PoissonSpiking a wrong mean rate without
    inference_only: here it is nengo's spikes, whose mean is the LIFRate rate."""
    with nengo.Network(seed=4) as net:
        nengodl.configure_settings(inference_only=inference_only)
        ens = nengo.Ensemble(20, 1, neuron_type=nengo.PoissonSpiking(nengo.LIFRate()))
        p = nengo.Probe(ens.neurons)
    ref, sim = run_both(net, steps=2000, minibatch_size=1)
    np.testing.assert_allclose(sim.data[p][0], ref.data[p], atol=1e-10)
    rates = nengo.LIFRate().rates(0.0, sim.data[ens].gain, sim.data[ens].bias)
    # Poisson counts over 2 s: within 4 standard deviations of the rate
    counts = sim.data[p][0].sum(axis=0) * 0.001
    np.testing.assert_array_less(np.abs(counts - 2 * rates), 4 * np.sqrt(2 * rates) + 1)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(n_filters=4, input_shape=(5, 5, 2), kernel_size=(3, 3)),
        dict(
            n_filters=3,
            input_shape=(2, 6, 5),
            kernel_size=(3, 2),
            channels_last=False,
            strides=(2, 1),
            padding="same",
        ),
        dict(n_filters=2, input_shape=(7, 3), kernel_size=(3,), strides=(2,)),
        dict(n_filters=4, input_shape=(6, 6, 4), kernel_size=(3, 3), groups=2),
        dict(n_filters=2, input_shape=(4, 4, 3), kernel_size=(3, 3), transpose=True),
    ],
    ids=["2d", "2d-first-strided-same", "1d", "groups", "transpose"],
)
def test_convolution_transforms_match_nengo(kwargs):
    kwargs = dict(kwargs)
    transpose = kwargs.pop("transpose", False)
    Conv = nengo.ConvolutionTranspose if transpose else nengo.Convolution
    conv = Conv(init=nengo.dists.Uniform(-1, 1), **kwargs)
    with nengo.Network(seed=2) as net:
        stim = nengo.Node(np.linspace(-1, 1, conv.size_in))
        out = nengo.Node(size_in=conv.size_out)
        nengo.Connection(stim, out, transform=conv, synapse=None)
        p = nengo.Probe(out)
    ref, sim = run_both(net, steps=3)
    np.testing.assert_allclose(sim.data[p][1], ref.data[p], atol=1e-10)


def test_operator_without_step_names_itself():
    class Unsteppable(Operator):
        def __init__(self, sig):
            super().__init__(tag="my-broken-op")
            self.sets, self.incs, self.reads, self.updates = [sig], [], [], []

    with nengo.Network() as net:
        node = nengo.Node([1.0])
    model = nengo.builder.Model(dt=0.001)
    model.build(net)
    model.add_op(Unsteppable(nengo.builder.Signal(np.zeros(1), name="x")))
    # nengo.Simulator raises the operator's NotImplementedError too
    with pytest.raises(NotImplementedError, match="Unsteppable.*my-broken-op"):
        nengodl.Simulator(None, model=model, progress_bar=False)
    del node


def test_custom_neuron_type_runs_on_host_with_one_warning():
    class Doubler(nengo.neurons.NeuronType):
        def step(self, dt, J, output):
            output[...] = 2 * J

    with nengo.Network(seed=3) as net:
        stim = nengo.Node(0.5)
        ens = nengo.Ensemble(5, 1, neuron_type=Doubler(), gain=np.ones(5), bias=np.zeros(5))
        nengo.Connection(stim, ens, synapse=None)
        p = nengo.Probe(ens.neurons)
    with pytest.warns(UserWarning, match="Doubler has no TensorFlow implementation"):
        sim = nengodl.Simulator(net, progress_bar=False, minibatch_size=2)
    with sim:
        sim.run_steps(2)
    enc = sim.data[ens].encoders[:, 0]
    np.testing.assert_allclose(sim.data[p][:, -1], np.tile(2 * 0.5 * enc, (2, 1)))
