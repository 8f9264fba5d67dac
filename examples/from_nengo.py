"""The seed tutorial, "From Nengo to NengoDL", as a script.

Runs a network computing sin(x^2) on ``nengo.Simulator`` and on
``nengodl.Simulator``, then shows minibatched runs, run-time input data,
deep-learning training of encoders and biases, and a TensorNode.
Plots are saved as PNG files next to this script (or in ``$NENGODL_PLOTS``).

Run with ``python examples/from_nengo.py``.
"""

import os
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import nengo  # noqa: E402
import numpy as np  # noqa: E402

import tensorflow as tf  # noqa: E402

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

# --- 4. training ----------------------------------------------------------------
for conn in net.all_connections:
    conn.synapse = None
with net:
    outpt_p_nofilt = nengo.Probe(outpt)
outpt_p.synapse = 0.04

with nengodl.Simulator(net, seed=seed) as sim:
    sim.run(1.0)
    plot(sim)
savefig("from_nengo_4_no_synapses.png")

with net:
    # disable optimisation on all parameters by default
    nengodl.configure_settings(trainable=False)
    # re-enable training on Ensembles (encoders and biases)
    net.config[nengo.Ensemble].trainable = True

batch_size = 4096
minibatch_size = 32
n_steps = 1
vals = np.random.uniform(-1, 1, size=(batch_size, n_steps, 1))
data = {inpt: vals, outpt_p_nofilt: np.sin(vals**2)}

test_vals = np.random.uniform(-1, 1, size=(1024, 1, 1))
test_steps = 100
test_vals = np.tile(test_vals, (1, test_steps, 1))
test_data = {inpt: test_vals, outpt_p: np.sin(test_vals**2)}


def test_mse(outputs, targets):
    return tf.reduce_mean(tf.square(outputs[:, -10:] - targets[:, -10:]))


with nengodl.Simulator(net, minibatch_size=minibatch_size, seed=seed) as sim:
    before = sim.loss(test_data, objective={outpt_p: test_mse})
    print("Error before training:", before)
    start = time.time()
    sim.train(
        data,
        tf.compat.v1.train.RMSPropOptimizer(0.01),
        objective={outpt_p_nofilt: nengodl.obj.mse},
        n_epochs=25,
    )
    print(f"Training time: {time.time() - start:.1f} s")
    after = sim.loss(test_data, objective={outpt_p: test_mse})
    print("Error after training:", after)
    print(f"Improvement: {100 * (1 - after / before):.1f}%")
    sim.run(1.0)
    plot(sim, idx=0)
savefig("from_nengo_4_trained.png")

# --- 5. TensorNodes ---------------------------------------------------------------
with net:
    # a regular nengo Node computing exp(x)
    exp_np = nengo.Node(lambda t, x: np.exp(x), size_in=1)
    nengo.Connection(sin, exp_np)
    np_probe = nengo.Probe(exp_np, synapse=0.01)
    # the same with a TensorNode
    exp_tf = nengodl.TensorNode(lambda t, x: tf.exp(x), size_in=1)
    nengo.Connection(sin, exp_tf)
    tf_probe = nengo.Probe(exp_tf, synapse=0.01)

with nengodl.Simulator(net, seed=seed) as sim:
    sim.run(1.0)
print(
    "max |Node - TensorNode| output:",
    np.max(np.abs(sim.data[np_probe] - sim.data[tf_probe])),
)
plt.figure()
plt.plot(sim.trange(), np.exp(np.sin(sim.data[inpt_p] ** 2)), label="e^sin(x^2)")
plt.plot(sim.trange(), sim.data[np_probe], label="Node output")
plt.plot(sim.trange(), sim.data[tf_probe], label="TensorNode output", linestyle="--")
plt.ylim([0.8, 1.4])
plt.legend()
savefig("from_nengo_5_tensornode.png")
