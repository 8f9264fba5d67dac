"""The simplification pass (`nengodl.simplify`): where its rules apply the
output equals nengo.Simulator's in float64, and where a rule would change the
result (trainable or fed values, probed or accumulating signals) it does not
apply.

Truths: nengo.Simulator on the same network; the operators nengo builds.
"""

import nengo
import numpy as np
import pytest
from nengo.builder import Model
from nengo.builder.operator import Copy, DotInc, ElementwiseInc, Reset
from nengo.builder.probe import SimProbe
from nengo.builder.signal import Signal

import nengodl
from nengodl.ops.fused import ScaledInc
from nengodl.simplify import simplify


def chain_net(trainable=None):
    """Passthrough Nodes, transforms of one, a connection into neurons, and an
    ensemble driven through its neurons only (its decoded input stays zero)."""
    with nengo.Network(seed=0) as net:
        nengodl.configure_settings(trainable=trainable)
        stim = nengo.Node(nengo.processes.WhiteSignal(1, high=5, seed=1), size_out=2)
        a = nengo.Node(size_in=2)
        b = nengo.Node(size_in=2)
        nengo.Connection(stim, a, synapse=None)
        nengo.Connection(a, b, transform=np.array([0.5, -2.0]).reshape(2, 1) * np.eye(2)[0])
        nengo.Connection(a, b, synapse=None)
        ens = nengo.Ensemble(
            20,
            1,
            neuron_type=nengo.RectifiedLinear(),
            gain=np.ones(20),
            bias=np.linspace(-1, 1, 20),
        )
        nengo.Connection(b, ens.neurons, transform=np.ones((20, 2)) / 4, synapse=None)
        out = nengo.Node(size_in=20)
        nengo.Connection(ens.neurons, out, synapse=0.01)
        probes = [nengo.Probe(out), nengo.Probe(b)]
    return net, probes


@pytest.mark.parametrize("trainable", [None, False])
def test_simplified_model_equals_nengo_in_float64(trainable):
    net, probes = chain_net(trainable)
    with nengo.Simulator(net, progress_bar=False) as ref:
        ref.run_steps(50)
    with nengodl.Simulator(net, dtype=np.float64, progress_bar=False) as sim:
        sim.run_steps(50)
        assert len(sim.model.operators) < len(ref.model.operators)
    for p in probes:
        np.testing.assert_allclose(sim.data[p], ref.data[p], rtol=0, atol=1e-10)


def test_rules_remove_copies_identities_and_zero_inputs():
    net, _ = chain_net()
    model = Model(dt=0.001)
    model.build(net)
    n_ops = len(model.operators)
    ens = net.ensembles[0]
    encode = [
        op
        for op in model.operators
        if isinstance(op, DotInc) and op.Y is model.sig[ens.neurons]["in"]
    ]
    assert len(encode) == 1 and np.all(encode[0].X.initial_value == 0)  # nengo's build
    removed = simplify(model, keep={model.time, model.step})
    assert removed == n_ops - len(model.operators) > 0
    assert not any(op is encode[0] for op in model.operators)  # zero input
    # the synapse-free connection into the neurons: gains of one become a copy,
    # which is aliased away with its reset, so its product adds straight to
    # the neurons' input
    into = [op for op in model.operators if model.sig[ens.neurons]["in"] in op.incs]
    assert [type(op) for op in into] == [DotInc]
    # transforms of one (nengo's Connection default) do not remain products
    assert not any(
        isinstance(op, ElementwiseInc) and np.all(op.A.initial_value == 1)
        for op in model.operators
    )


def test_trainable_and_fed_values_stay_apart():
    with nengo.Network(seed=0) as net:
        fed = nengo.Node(np.zeros(1))  # zero, but data may replace it
        mid = nengo.Node(size_in=1)
        conn = nengo.Connection(fed, mid, transform=1.0, synapse=None)  # trainable
        p = nengo.Probe(mid)
    with nengodl.Simulator(net, progress_bar=False) as sim:
        products = [op for op in sim.model.operators if isinstance(op, ElementwiseInc)]
        assert len(products) == 1  # the trainable weight of one stays a product
        assert sim.model.sig[conn]["weights"] in sim.plan.trainable_sigs
        out = sim.predict_on_batch({fed: np.full((1, 3, 1), 2.5)})
    np.testing.assert_allclose(out[p][0, :, 0], 2.5)


def test_trainable_parameters_stay_in_parameter_files(tmp_path):
    with nengo.Network(seed=0) as net:
        a, b = nengo.Ensemble(10, 1), nengo.Ensemble(10, 1)
        nengo.Connection(a.neurons, b.neurons, transform=np.ones((10, 10)))
    keys = []
    for optimize in (True, False):
        with nengodl.Simulator(net, optimize=optimize, progress_bar=False) as sim:
            sim.save_params(tmp_path / f"p{optimize}")
        keys.append(sorted(np.load(tmp_path / f"p{optimize}.npz")))
    assert keys[0] == keys[1] and "param:ensemble0.encoders" in keys[0]


def test_probed_and_accumulating_signals_are_not_aliased():
    dst = Signal(np.zeros(3), name="dst")
    probed = Signal(np.zeros(3), name="probed")
    acc = Signal(np.zeros(3), name="acc")
    x = Signal(np.ones(3), name="x")
    w = Signal(np.arange(9.0).reshape(3, 3), name="w")

    ops = [
        Reset(dst),
        Reset(probed),
        DotInc(w, x, probed),
        Copy(probed, dst, inc=True),
        SimProbe(probed),
        DotInc(w, x, acc),  # no reset: acc accumulates over steps
        Copy(acc, dst, inc=True),
    ]
    model = Model(dt=0.001)
    model.operators[:] = ops
    assert simplify(model, keep=set()) == 0
    assert model.operators == ops


@pytest.mark.parametrize("value", [np.inf, 2.0])
def test_zero_inputs_stay_where_the_product_is_not_zero(value):
    y, zero = Signal(np.zeros(2), name="y"), Signal(np.zeros(2), name="zero")
    a = Signal(np.full(2, value), name="a")
    model = Model(dt=0.001)
    model.operators[:] = [Reset(y), ElementwiseInc(a, zero, y)]
    assert simplify(model, keep=set()) == (0 if np.isinf(value) else 1)


@pytest.mark.parametrize("transform", ["conv", "sparse"])
def test_scaled_products_equal_nengo_in_float64(transform):
    """A convolution (or sparse product) into neurons of gains other than one
    runs as one fused operator, stepped in numpy and in the loop."""
    with nengo.Network(seed=0) as net:
        stim = nengo.Node(nengo.processes.WhiteSignal(1, high=5, seed=1), size_out=16)
        a = nengo.Ensemble(16, 1, neuron_type=nengo.RectifiedLinear())
        nengo.Connection(stim, a.neurons, synapse=None)
        b = nengo.Ensemble(18, 1, neuron_type=nengo.RectifiedLinear())
        if transform == "conv":
            conv = nengo.Convolution(
                2, (4, 4, 1), kernel_size=(2, 2), init=nengo.dists.Uniform(-1, 1)
            )
        else:
            conv = nengo.Sparse((18, 16), indices=[[i, (3 * i) % 16] for i in range(18)])
        nengo.Connection(a.neurons, b.neurons, transform=conv, synapse=None)
        p = nengo.Probe(b.neurons, synapse=0.01)
    with nengo.Simulator(net, progress_bar=False) as ref:
        ref.run_steps(30)
    with nengodl.Simulator(net, dtype=np.float64, progress_bar=False) as sim:
        assert any(isinstance(op, ScaledInc) for op in sim.model.operators)
        sim.run_steps(15)
        for _ in range(15):
            sim.step()
    assert np.any(ref.data[p] > 0)
    np.testing.assert_allclose(sim.data[p], ref.data[p], rtol=0, atol=1e-10)
