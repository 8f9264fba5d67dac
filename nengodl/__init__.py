"""nengodl: Nengo models on TensorFlow 2.

Swap ``nengo.Simulator`` for `nengodl.Simulator` to run a Nengo model in
TensorFlow, with minibatches and run-time inputs.
"""

from nengodl.simulator import Simulator
from nengodl.version import __version__

__all__ = ["Simulator", "__version__"]
