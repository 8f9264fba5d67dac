"""A closed, dropped simulator is freed at once, as a nengo.Simulator is: nothing
it owns refers back to it (`nengodl.runtime.weak`)."""

import contextlib
import gc
import weakref

import keras
import nengo
import numpy as np
import pytest
from nengo.exceptions import SimulatorClosed

import nengodl


def network():
    with nengo.Network(seed=0) as net:
        net.stim = nengo.Node(lambda t: np.sin(5 * t))
        net.ens = nengo.Ensemble(30, 1)
        nengo.Connection(net.stim, net.ens)
        net.p = nengo.Probe(net.ens, synapse=0.01)
    return net


@contextlib.contextmanager
def collector_off():
    """Python's cycle collector off (after one collection): what is freed inside
    is freed by reference counting alone."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@pytest.mark.parametrize("jit", [True, False])
def test_a_closed_simulator_is_freed_and_its_data_stay_readable(jit):
    net = network()
    with nengodl.Simulator(net, jit=jit, progress_bar=False) as sim:
        sim.run_steps(20)
        sim.run_state.trained = True  # as after training: data reads the variables
        data = sim.data
    ref = weakref.ref(sim)
    with collector_off():
        del sim
        assert ref() is None
    assert data[net.p].shape == (20, 1)
    assert data[net.ens].bias.shape == (30,)


@pytest.mark.parametrize("how", ["fit", "train"])
def test_a_simulator_that_trained_is_freed_too(how):
    net = network()
    x, y = np.zeros((4, 5, 1)), np.zeros((4, 5, 1))
    with nengodl.Simulator(net, minibatch_size=2, progress_bar=False) as sim:
        if how == "fit":
            sim.compile(keras.optimizers.SGD(0.01), "mse")
            history = sim.fit({net.stim: x}, {net.p: y}, verbose=0)
            sim.evaluate({net.stim: x}, {net.p: y}, verbose=0)
        else:
            sim.train({net.stim: x, net.p: y}, keras.optimizers.SGD(0.01), n_epochs=1)
        model = sim.keras_model
        trained = sim.data[net.ens].bias.copy()
    ref = weakref.ref(sim)
    with collector_off():
        del sim
        assert ref() is None
    if how == "fit":
        assert len(history.history["loss"]) == 1  # the logs outlive the simulator
    # what the simulator handed out says clearly that it is gone
    with pytest.raises(SimulatorClosed, match="its Simulator is gone"):
        model.count_params()
    assert trained.shape == (30,)


def live_graphs():
    """How many traced TensorFlow graphs are alive after a full collection."""
    gc.collect()
    return sum(type(o).__name__ == "FuncGraph" for o in gc.get_objects())


@pytest.mark.parametrize("per_batch", [False, True])
def test_a_trained_simulator_leaves_no_traced_graph_behind(per_batch):
    """Nothing global keeps the graphs a simulator traced to train once it is gone
    (the optimizer's update, traced, registered a gradient function holding its
    graph in TensorFlow's gradient registry for the process's life)."""

    def train_one():
        net = network()
        x, y = np.zeros((4, 5, 1)), np.zeros((4, 5, 1))
        with nengodl.Simulator(net, minibatch_size=2, progress_bar=False) as sim:
            sim.compile(keras.optimizers.SGD(0.01, momentum=0.9), "mse")
            # a callback makes fit go minibatch by minibatch, not by compiled epochs
            sim.fit(
                {net.stim: x},
                {net.p: y},
                verbose=0,
                callbacks=[keras.callbacks.Callback()] if per_batch else None,
            )

    train_one()  # fills what is shared between simulators (their XLA run programs)
    before = live_graphs()
    train_one()
    assert live_graphs() <= before
