"""TensorFlow implementations of nengo's builder operators.

Each nengo `~nengo.builder.Operator` type is mapped to an *op builder*: a small
class constructed once per operator while the graph is planned (where it
precomputes constants), and called once per traced simulation step with a
`~nengodl.signals.StepContext`, through which it reads and writes signals.

A builder's ``supports(op)`` class method says whether the operator can run
natively; operators without a native builder run through the host fallback
(`nengodl.runtime.host`).
"""

from nengodl.ops.registry import OpBuilder, find_builder, register

# importing the modules registers their builders
from nengodl.ops import (  # noqa: F401  isort:skip
    basic,
    functions,
    fused,
    learning_rules,
    neurons,
    processes,
    tensor_node,
    transforms,
)

__all__ = ["OpBuilder", "find_builder", "register"]
