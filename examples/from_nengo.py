"""The seed tutorial, "From Nengo to NengoDL", as a script.

Runs a network computing sin(x^2) on ``nengo.Simulator`` and on
``nengodl.Simulator``, then shows minibatched runs and run-time input data.
Plots are saved as PNG files next to this script (or in ``$NENGODL_PLOTS``).

Run with ``python examples/from_nengo.py``.
"""

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import nengo  # noqa: E402
import numpy as np  # noqa: E402

import nengodl  # noqa: E402

OUT = os.environ.get("NENGODL_PLOTS", os.path.dirname(os.path.abspath(__file__)))
seed = 0
np.random.seed(seed)


def savefig(name):
    path = os.path.join(OUT, name)
    plt.savefig(path)
    plt.close("all")
    print("saved", path)


# --- 1. the network ---------------------------------------------------------
with nengo.Network(seed=seed) as net:
    # input node outputting a random signal for x
    inpt = nengo.Node(nengo.processes.WhiteSignal(1, 5, rms=0.3))
    # first ensemble, will compute x^2
    square = nengo.Ensemble(20, 1)
    # second ensemble, will compute sin(x^2)
    sin = nengo.Ensemble(20, 1)
    # output node
    outpt = nengo.Node(size_in=1)
    nengo.Connection(inpt, square)
    nengo.Connection(square, sin, function=np.square)
    nengo.Connection(sin, outpt, function=np.sin)
    inpt_p = nengo.Probe(inpt)
    outpt_p = nengo.Probe(outpt, synapse=0.01)


def plot(sim, ax=None, idx=slice(None)):
    if ax is None:
        plt.figure()
        ax = plt.gca()
    ax.plot(sim.trange(), sim.data[inpt_p][idx], label="x")
    ax.plot(sim.trange(), np.sin(sim.data[inpt_p][idx] ** 2), label="sin(x^2)")
    ax.plot(sim.trange(), sim.data[outpt_p][idx], label="output")
    ax.legend()


with nengo.Simulator(net, seed=seed) as sim:
    sim.run(1.0)
nengo_out = sim.data[outpt_p]
plot(sim)
savefig("from_nengo_1_nengo.png")

# same network, same output, in nengodl
with nengodl.Simulator(net, seed=seed) as sim:
    sim.run(1.0)
print("max |nengo - nengodl| output:", np.max(np.abs(nengo_out - sim.data[outpt_p])))
plot(sim)
savefig("from_nengo_1_nengodl.png")

# --- 2. minibatches -----------------------------------------------------------
reps = 3
with nengodl.Simulator(net, minibatch_size=reps) as sim:
    sim.run(1.0)
    _, axes = plt.subplots(1, reps, figsize=(20, 4.8))
    for i in range(reps):
        plot(sim, ax=axes[i], idx=i)
savefig("from_nengo_2_minibatch.png")

# --- 3. run-time input data ---------------------------------------------------
with nengodl.Simulator(net) as sim:
    sim.run(1.0, data={inpt: np.reshape(np.linspace(-1, 1, 1000), (1, 1000, 1))})
    plot(sim)
savefig("from_nengo_3_data.png")

with nengodl.Simulator(net, minibatch_size=reps) as sim:
    sim.run(
        1.0,
        data={
            inpt: np.linspace(0.5, 1, reps)[:, None, None]
            * np.linspace(-1, 1, 1000)[None, :, None]
        },
    )
    _, axes = plt.subplots(1, reps, figsize=(20, 4.8))
    for i in range(reps):
        plot(sim, ax=axes[i], idx=i)
        axes[i].set_ylim((-1, 1))
savefig("from_nengo_3_data_minibatch.png")
