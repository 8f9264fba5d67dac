"""Support for running nengo's own test suite against nengodl.

nengo's tests assume nengo's default float64 precision, so `simloader` makes
float64 the default dtype of `nengodl.Simulator` for the run (through the
``NENGODL_DTYPE`` environment variable). ``NENGODL_TEST_DTYPE=float32`` runs the
suite in float32 instead.
"""

import os

from nengodl.simulator import Simulator


def simloader(request):
    """The ``nengo_simloader`` entry for pytest_nengo: returns `nengodl.Simulator`."""
    os.environ["NENGODL_DTYPE"] = os.environ.get("NENGODL_TEST_DTYPE", "float64")
    return Simulator
