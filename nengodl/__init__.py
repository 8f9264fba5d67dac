"""nengodl: Nengo models on TensorFlow 2.

Swap ``nengo.Simulator`` for `nengodl.Simulator` to run a Nengo model in
TensorFlow, with minibatches and run-time inputs; add TensorFlow and Keras code
to a model with `TensorNode` and `Layer`.

Importing nengodl before TensorFlow quiets TensorFlow's C++ log messages below the
error level (``TF_CPP_MIN_LOG_LEVEL=2``) unless that environment variable is already
set; see docs/getting-started.md.
"""

import os

# before anything imports TensorFlow, which reads it once; a user's own setting wins
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from nengodl import callbacks, dists, losses, obj
from nengodl.config import configure_settings
from nengodl.converter import Converter
from nengodl.neurons import (
    ClippedReLU,
    HardSigmoid,
    HardSwish,
    LeakyReLU,
    SoftLIFRate,
    SpikingClippedReLU,
    SpikingLeakyReLU,
    Swish,
)
from nengodl.simulator import Simulator
from nengodl.tensor_node import Layer, TensorNode, tensor_layer
from nengodl.version import __copyright__, __license__, __version__

__all__ = [
    "ClippedReLU",
    "Converter",
    "HardSigmoid",
    "HardSwish",
    "Layer",
    "LeakyReLU",
    "Simulator",
    "SoftLIFRate",
    "SpikingClippedReLU",
    "SpikingLeakyReLU",
    "Swish",
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
