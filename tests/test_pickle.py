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
