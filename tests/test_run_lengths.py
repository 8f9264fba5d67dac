"""Runs of mixed lengths and `step` loops against nengo.Simulator.

Single steps run in numpy with nengo's own step functions, longer runs in the
compiled loop; the simulator moves its state between the two, so every order of
run lengths must give nengo's output.
"""

import nengo
import numpy as np
import pytest
import tensorflow as tf

import nengodl
from nengodl.benchmarks.networks import integrator
from nengodl.options import Options


def mixed_net():
    """Python and process inputs, noise, spiking and rate neurons, learning, a
    2-D probe: every kind of state that has to move between the two runners."""
    with nengo.Network(seed=4) as net:
        stim = nengo.Node(lambda t: [np.sin(5 * t), np.cos(3 * t)])
        white = nengo.Node(nengo.processes.WhiteSignal(1.0, high=10, seed=2))
        a = nengo.Ensemble(30, 2, noise=nengo.processes.WhiteNoise(seed=3))
        b = nengo.Ensemble(20, 1, neuron_type=nengo.LIFRate())
        nengo.Connection(stim, a)
        nengo.Connection(white, a[0])
        conn = nengo.Connection(
            a, b, function=lambda x: x[0] * x[1], learning_rule_type=nengo.PES(learning_rate=1e-3)
        )
        nengo.Connection(b, conn.learning_rule)
        net.probed = [
            nengo.Probe(b, synapse=0.01),
            nengo.Probe(a.neurons),
            nengo.Probe(conn, "weights", sample_every=0.003),
            nengo.Probe(stim),
        ]
    return net


def run_lengths(sim, lengths):
    for n in lengths:
        if n == "step":
            sim.step()
        else:
            sim.run_steps(n)


@pytest.mark.parametrize(
    "lengths",
    [
        [1, 7, 100, 1000],
        [1000, 100, 7, 1],
        ["step"] * 30 + [7] + ["step"] * 5 + [100, 1, 1],
        [7, 1, 100, "step", 1000, "step"],
    ],
)
def test_mixed_run_lengths_match_nengo(lengths):
    net = mixed_net()
    total = sum(1 if n == "step" else n for n in lengths)
    with nengo.Simulator(net, progress_bar=False) as ref:
        ref.run_steps(total)
    with nengodl.Simulator(net, dtype="float64", progress_bar=False) as sim:
        run_lengths(sim, lengths)
        assert sim.n_steps == total
        np.testing.assert_allclose(sim.time, ref.time, rtol=0, atol=1e-12)
    for p in net.probed:
        assert sim.data[p].shape == ref.data[p].shape, p
        np.testing.assert_allclose(sim.data[p], ref.data[p], atol=1e-10, rtol=0, err_msg=str(p))


def test_float32_step_loop_matches_nengo():
    net = mixed_net()
    with nengo.Simulator(net, progress_bar=False) as ref:
        ref.run_steps(50)
    with nengodl.Simulator(net, progress_bar=False) as sim:
        run_lengths(sim, ["step"] * 20 + [10] + ["step"] * 20)
    assert sim.data[net.probed[0]].dtype == ref.data[net.probed[0]].dtype
    np.testing.assert_allclose(sim.data[net.probed[0]], ref.data[net.probed[0]], atol=1e-4)


def test_signals_and_reset_between_steps():
    net = mixed_net()
    with nengo.Simulator(net, progress_bar=False) as ref:
        ref.run_steps(12)
        neurons = net.probed[1].target
        ref_voltage = ref.signals[ref.model.sig[neurons]["voltage"]].copy()
    with nengodl.Simulator(net, dtype="float64", progress_bar=False) as sim:
        for _ in range(12):
            sim.step()
        voltage = sim.signals[sim.model.sig[neurons]["voltage"]]
        np.testing.assert_allclose(voltage, ref_voltage, atol=1e-10)
        sim.reset()
        for _ in range(12):
            sim.step()
        np.testing.assert_allclose(sim.data[net.probed[0]], ref.data[net.probed[0]], atol=1e-10)


def test_failed_step_changes_nothing():
    failed = []

    def func(t):
        if abs(t - 0.004) < 1e-9 and not failed:  # fails once, at step 4
            failed.append(t)
            raise RuntimeError("node failed")
        return np.sin(t)

    def net_of(f):
        with nengo.Network(seed=0) as net:
            stim = nengo.Node(f)
            ens = nengo.Ensemble(10, 1)
            nengo.Connection(stim, ens)
            net.p = nengo.Probe(ens, synapse=0.01)
        return net

    plain = net_of(np.sin)
    with nengo.Simulator(plain, progress_bar=False) as ref:
        ref.run_steps(5)
    net = net_of(func)
    with nengodl.Simulator(net, dtype="float64", progress_bar=False) as sim:
        for _ in range(3):
            sim.step()
        with pytest.raises(RuntimeError, match="node failed"):
            sim.step()
        assert sim.n_steps == 3 and sim.data[net.p].shape == (3, 1)
        sim.step()  # step 4 again, the Node called again
        sim.step()
    np.testing.assert_allclose(sim.data[net.p], ref.data[plain.p], atol=1e-10)


def test_step_after_training_uses_trained_parameters():
    with nengo.Network(seed=0) as net:
        inp = nengo.Node([0.5, 1.0])
        out = nengo.Node(size_in=1)
        conn = nengo.Connection(inp, out, transform=[[0.0, 0.0]], synapse=None)
        p = nengo.Probe(out)
    x = np.tile([0.5, 1.0], (8, 1, 1))
    with nengodl.Simulator(net, dtype="float64", progress_bar=False) as sim:
        sim.step()
        assert sim.data[p][-1, 0] == 0
        sim.compile(optimizer=tf.keras.optimizers.SGD(0.2), loss="mse")
        sim.fit({inp: x}, {p: np.ones((8, 1, 1))}, epochs=30, verbose=0)
        sim.step()
        weights = sim.data[conn].weights
        np.testing.assert_allclose(sim.data[p][-1], weights @ [0.5, 1.0], atol=1e-10)
        assert abs(sim.data[p][-1, 0] - 1) < 0.05  # training reached the target
        sim.run_steps(2)
        np.testing.assert_allclose(sim.data[p][-1], weights @ [0.5, 1.0], atol=1e-10)


def test_models_the_numpy_stepper_cannot_run_still_step():
    with nengo.Network(seed=0) as net:
        inp = nengo.Node([0.25])
        node = nengodl.TensorNode(lambda t, x: x * 2, shape_in=(1,), pass_time=True)
        nengo.Connection(inp, node, synapse=None)
        p = nengo.Probe(node)
    with nengodl.Simulator(net, progress_bar=False) as sim:
        for _ in range(3):
            sim.step()
    np.testing.assert_allclose(sim.data[p], 0.5)


def test_step_with_data_feeds_the_node():
    with nengo.Network(seed=0) as net:
        inp = nengo.Node([0.0])
        p = nengo.Probe(inp)
    with nengodl.Simulator(net, progress_bar=False) as sim:
        sim.step()
        sim.step(data={inp: np.full((1, 1, 1), 3.0)})
        sim.step()
    np.testing.assert_allclose(sim.data[p][:, 0], [0.0, 3.0, 0.0])


def test_closed_simulator_does_not_step():
    with nengo.Network() as net:
        nengo.Node([0.0])
    sim = nengodl.Simulator(net, progress_bar=False)
    sim.step()
    sim.close()
    with pytest.raises(nengo.exceptions.SimulatorClosed):
        sim.step()
    assert sim.n_steps == 1


@pytest.mark.parametrize("jit", [True, False])
def test_unroll_factors_give_identical_output(jit):
    net = mixed_net()
    outputs = []
    for unroll in [1, 10, 25]:
        with nengodl.Simulator(
            net,
            dtype="float64",
            progress_bar=False,
            jit=jit,
            unroll_simulation=unroll,
            options=Options(xla_after_steps=0),
        ) as sim:
            run_lengths(sim, [57, 3])  # leftovers of each unroll factor
        outputs.append([sim.data[p] for p in net.probed])
    for other in outputs[1:]:
        for a, b in zip(outputs[0], other):
            np.testing.assert_array_equal(a, b)


def test_short_runs_skip_xla_until_the_simulator_has_run_long_enough():
    """Runs shorter than ``xla_after_steps`` use the loop without XLA (nothing is
    compiled) until that many steps have run; output is nengo's across the switch."""
    net = integrator(2, 10, nengo.LIF())
    with nengo.Simulator(net, progress_bar=False) as ref:
        ref.run_steps(700)
    options = Options(xla_after_steps=300)
    with nengodl.Simulator(net, dtype="float64", progress_bar=False, options=options) as sim:
        compiled = []
        for n in [100, 150, 60]:  # 310 steps, each run shorter than 300
            sim.run_steps(n)
            compiled.append(sim.runner.xla.n_compiled > 0)
        sim.run_steps(390)  # after 300 steps: through XLA
        compiled.append(sim.runner.xla.n_compiled > 0)
        np.testing.assert_allclose(sim.data[net.probe], ref.data[net.probe], atol=1e-10, rtol=0)
    assert compiled == [False, False, False, True]
    with nengodl.Simulator(net, dtype="float64", progress_bar=False, options=options) as sim:
        sim.run_steps(300)  # as long as the threshold: XLA from the start
        assert sim.runner.xla.n_compiled == 1


def test_step_passes_stateful_and_progress_bar_on():
    # NengoDL 3.6: step(**kwargs) takes run_steps's arguments
    net = integrator(2, 10, nengo.LIF())
    with nengo.Simulator(net, progress_bar=False) as ref:
        ref.run_steps(3)
    with nengodl.Simulator(net, dtype="float64", progress_bar=False) as sim:
        sim.step()
        sim.step(stateful=False)  # recorded, but the simulator stays at step 1
        assert sim.n_steps == 1
        sim.step(progress_bar=True)
        sim.step()
        assert sim.n_steps == 3
        probe = net.probe
        data = sim.data[probe]
        # the unstateful step repeated step 2, which the next step took again
        np.testing.assert_allclose(data[[0, 2, 3]], ref.data[probe], atol=1e-10, rtol=0)
        np.testing.assert_allclose(data[1], ref.data[probe][1], atol=1e-10, rtol=0)
    assert sim.unroll == sim.unroll_simulation == 1
