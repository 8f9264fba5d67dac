"""nengodl: Nengo models on TensorFlow 2.

Swap ``nengo.Simulator`` for `nengodl.Simulator` to run a Nengo model in
TensorFlow, with minibatches and run-time inputs; add TensorFlow and Keras code
to a model with `TensorNode` and `Layer`.
"""

from nengodl import callbacks, dists, losses, obj
from nengodl.config import configure_settings
from nengodl.converter import Converter
from nengodl.neurons import LeakyReLU, SoftLIFRate, SpikingLeakyReLU
from nengodl.simulator import Simulator
from nengodl.tensor_node import Layer, TensorNode, tensor_layer
from nengodl.version import __copyright__, __license__, __version__

__all__ = [
    "Converter",
    "Layer",
    "LeakyReLU",
    "Simulator",
    "SoftLIFRate",
    "SpikingLeakyReLU",
    "TensorNode",
    "__copyright__",
    "__license__",
    "__version__",
    "callbacks",
    "configure_settings",
    "dists",
    "losses",
    "obj",
    "tensor_layer",
]
