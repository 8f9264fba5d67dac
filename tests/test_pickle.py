"""Pickling a simulator keeps its state, probe data and settings."""

import pickle

import numpy as np

import nengodl


def test_pickled_simulator_continues_identically(seed_net):
    with nengodl.Simulator(seed_net, minibatch_size=2, seed=3, progress_bar=False) as sim:
        sim.run_steps(50)
        blob = pickle.dumps({"sim": sim, "p": seed_net.outpt_p, "i": seed_net.inpt_p})
        sim.run_steps(50)
        expected_out = sim.data[seed_net.outpt_p].copy()
        expected_in = sim.data[seed_net.inpt_p].copy()
    loaded = pickle.loads(blob)
    with loaded["sim"] as sim2:
        assert sim2.minibatch_size == 2 and sim2.seed == 3 and sim2.n_steps == 50
        sim2.run_steps(50)
        np.testing.assert_allclose(sim2.data[loaded["p"]], expected_out, atol=1e-6)
        np.testing.assert_allclose(sim2.data[loaded["i"]], expected_in, atol=1e-6)


def test_pickle_keeps_jit_unroll_and_trained_parameters():
    import keras
    import nengo

    with nengo.Network(seed=0) as net:
        inp = nengo.Node([0.5, 1.0])
        out = nengo.Node(size_in=1)
        conn = nengo.Connection(inp, out, transform=[[0.0, 0.0]], synapse=None)
        p = nengo.Probe(out)
    x = np.tile([0.5, 1.0], (4, 1, 1))
    with nengodl.Simulator(
        net, jit=False, unroll_simulation=3, dtype="float64", progress_bar=False
    ) as sim:
        sim.train({inp: x, p: np.ones((4, 1, 1))}, keras.optimizers.SGD(0.2), n_epochs=20)
        trained = sim.data[conn].weights
        assert np.abs(trained).max() > 0.1
        sim2, conn2, p2 = pickle.loads(pickle.dumps((sim, conn, p)))
    with sim2:
        assert sim2.jit is False and sim2.unroll_simulation == 3
        np.testing.assert_allclose(sim2.data[conn2].weights, trained, atol=1e-12)
        sim2.run_steps(4)
        np.testing.assert_allclose(
            sim2.data[p2], np.tile(trained @ [0.5, 1.0], (4, 1)), atol=1e-10
        )
