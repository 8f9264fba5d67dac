"""Activations that mix a layer's elements (softmax) convert to non-spiking Nodes
whose function runs natively in nengodl and as numpy on nengo.Simulator.

Truths: Keras on the same model, nengo.Simulator (through `check`).
"""

import keras
import pytest
import tensorflow as tf
from test_converter import check, model_of

import nengodl
from nengodl.ops.functions import Softmax

L = keras.layers


@pytest.mark.parametrize(
    "layers, shape",
    [
        ([L.Dense(4, activation="softmax")], (3,)),
        ([L.Dense(4), L.Activation(tf.nn.softmax)], (3,)),
        ([L.Dense(4), L.Softmax()], (3,)),
        ([L.Conv1D(3, 2, activation="softmax")], (5, 2)),
    ],
    ids=["dense", "tf-softmax", "softmax-layer", "conv1d-channels"],
)
def test_softmax_converts_natively(layers, shape):
    check(model_of(shape, *layers))


def test_softmax_node_runs_in_the_compiled_loop():
    model = model_of((3,), L.Dense(4, activation="softmax"))
    conv = nengodl.Converter(model, allow_fallback=False)
    with nengodl.Simulator(conv.net, progress_bar=False) as sim:
        assert sim.jit and not sim.plan.has_host_loop_ops
    nodes = [n for n in conv.net.all_nodes if isinstance(n.output, Softmax)]
    assert len(nodes) == 1 and nodes[0].output == Softmax((4,))
