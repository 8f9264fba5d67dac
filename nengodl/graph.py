"""Deprecated: the tuning names that once lived here.

``nengodl.graph.XLA_MAX_STEPS``, ``SHARD_BYTES`` and the other upper-case
names are aliases of `nengodl.options.Options` fields: reading or setting one
warns, and a value set here is the default of simulators made afterwards.
Give ``Simulator(..., options=Options(...))`` instead. The simulation loop
itself is in `nengodl.plan` and `nengodl.runtime`.
"""

from nengodl.options import deprecated_names

deprecated_names(__name__)
