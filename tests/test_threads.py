"""Simulators used from several threads at once give what they give alone.

A parameter sweep on a thread pool or a web service with a simulator per
request builds, runs and trains simulators side by side; nengo's simulators
built at the same moment must not notice nengodl's.
"""

import threading
from concurrent.futures import ThreadPoolExecutor

import keras
import nengo
import numpy as np
import tensorflow as tf

import nengodl


def integrator(seed):
    with nengo.Network(seed=seed) as net:
        stim = nengo.Node(lambda t: np.sin(8 * t + seed))
        ens = nengo.networks.EnsembleArray(20, 3)
        nengo.Connection(stim, ens.input, transform=np.ones((3, 1)), synapse=0.05)
        nengo.Connection(ens.output, ens.input, synapse=0.1)
        net.p = nengo.Probe(ens.output, synapse=0.01)
    return net


def noisy_keras_net(seed):
    """A TensorNode drawing from tf.random (seeded by the simulator) and a Keras
    layer (built in the simulator's dtype)."""
    with nengo.Network(seed=seed) as net:
        stim = nengo.Node(np.cos)
        noise = nengodl.TensorNode(
            lambda t, x: x + tf.random.uniform(tf.shape(x), dtype=x.dtype),
            shape_in=(1,),
            pass_time=True,
        )
        nengo.Connection(stim, noise, synapse=None)
        dense = nengodl.Layer(
            keras.layers.Dense(4, kernel_initializer=keras.initializers.RandomNormal(seed=seed))
        )(noise)
        net.p = nengo.Probe(dense)
    return net


def run(job):
    """Build and run one simulator; its probe data."""
    kind, seed, dtype, minibatch_size = job
    net = integrator(seed) if kind == "integrator" else noisy_keras_net(seed)
    with nengodl.Simulator(
        net, dtype=dtype, minibatch_size=minibatch_size, seed=seed, progress_bar=False
    ) as sim:
        sim.run_steps(150)
        return sim.data[net.p]


def in_threads(fn, jobs, workers=4):
    """``fn`` of each job, the jobs started together on ``workers`` threads."""
    start = threading.Barrier(min(workers, len(jobs)))

    def together(job):
        if jobs.index(job) < workers:
            start.wait(timeout=120)
        return fn(job)

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(together, jobs))


def test_simulators_in_threads_give_their_serial_results():
    jobs = [
        ("integrator", 0, "float64", None),
        ("noisy", 1, "float32", 2),
        ("integrator", 2, "float32", 3),
        ("noisy", 3, "float64", None),
        ("noisy", 1, "float64", 2),
        ("integrator", 5, "float64", 2),
    ]
    serial = [run(job) for job in jobs]
    threaded = in_threads(run, jobs)
    for job, a, b in zip(jobs, serial, threaded):
        np.testing.assert_array_equal(b, a, err_msg=str(job))


def test_nengo_simulators_built_beside_nengodl_ones_are_unchanged():
    def build_and_run(job):
        backend, seed = job
        net = integrator(seed)
        if backend == "nengo":
            with nengo.Simulator(net, progress_bar=False) as sim:
                sim.run_steps(150)
        else:
            with nengodl.Simulator(net, dtype="float64", progress_bar=False) as sim:
                sim.run_steps(150)
        return sim.data[net.p]

    jobs = [("nengo", 0), ("nengodl", 0), ("nengo", 1), ("nengodl", 1)] * 2
    serial = [build_and_run(job) for job in jobs]
    threaded = in_threads(build_and_run, jobs)
    for job, a, b in zip(jobs, serial, threaded):
        np.testing.assert_array_equal(b, a, err_msg=str(job))
    # and each nengodl simulator gives nengo's output
    np.testing.assert_allclose(threaded[1], threaded[0], atol=1e-10, rtol=0)
    np.testing.assert_allclose(threaded[3], threaded[2], atol=1e-10, rtol=0)


def train(job):
    """Train one simulator for a few epochs; its loss history and trained weights."""
    seed, lr = job
    with nengo.Network(seed=seed) as net:
        stim = nengo.Node(np.zeros(2))
        ens = nengo.Ensemble(30, 2, neuron_type=nengo.RectifiedLinear())
        nengo.Connection(stim, ens, synapse=None)
        out = nengo.Node(size_in=1)
        conn = nengo.Connection(ens, out, function=lambda x: 0.0, synapse=None)
        p = nengo.Probe(out)
    rng = np.random.RandomState(seed)
    x = rng.uniform(-1, 1, size=(32, 1, 2))
    y = x[..., :1] * x[..., 1:]
    with nengodl.Simulator(net, minibatch_size=8, seed=seed, progress_bar=False) as sim:
        sim.compile(optimizer=keras.optimizers.Adam(lr), loss="mse")
        history = sim.fit({stim: x}, {p: y}, epochs=4, shuffle=False, verbose=0)
        return history.history["loss"], sim.data.get_params((conn, "weights"))[0]


def test_training_in_threads_gives_the_serial_result():
    jobs = [(0, 1e-4), (1, 2e-4), (2, 1e-4), (0, 5e-5)]
    serial = [train(job) for job in jobs]
    threaded = in_threads(train, jobs)
    for job, (loss_a, w_a), (loss_b, w_b) in zip(jobs, serial, threaded):
        assert loss_a[-1] < 0.5 * loss_a[0]  # it trains (product learned from zero)
        np.testing.assert_array_equal(loss_b, loss_a, err_msg=str(job))
        np.testing.assert_array_equal(w_b, w_a, err_msg=str(job))
