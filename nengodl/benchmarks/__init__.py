"""Benchmark networks and a CLI comparing nengodl with ``nengo.Simulator``.

Run ``python -m nengodl.benchmarks --help``.
"""

from nengodl.benchmarks.networks import (
    NETWORKS,
    basal_ganglia,
    cconv,
    chain,
    convnet,
    integrator,
    lmu,
    pes,
    random_network,
)

__all__ = [
    "NETWORKS",
    "basal_ganglia",
    "cconv",
    "chain",
    "convnet",
    "integrator",
    "lmu",
    "pes",
    "random_network",
]
