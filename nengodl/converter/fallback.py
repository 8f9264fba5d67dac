"""Layers without a native form: their own Keras code, run in a `TensorNode`.

`CallOperation` is the TensorNode function; `acts_per_step` checks, for
temporal models, that running an operation one time step at a time (as the
nengo network does) gives what Keras computes on the whole sequence.
"""

import keras
import numpy as np

from nengodl.converter.layers import size


def call_operation(operation, node, values):
    """Call ``operation`` as Keras graph ``node`` does, on ``values`` for its input tensors."""
    args, kwargs = node.arguments.fill_in({id(t): v for t, v in zip(node.input_tensors, values)})
    return operation(*args, **kwargs)


class CallOperation(keras.layers.Layer):
    """Runs one Keras graph node (layer or op call) on a flat input vector.

    Used as the ``tensor_func`` of fallback TensorNodes: splits the flat input
    into the node's input tensors, calls the operation with the node's
    recorded arguments and returns the output, cast to the input's dtype.

    Parameters
    ----------
    operation : keras.Operation
        The layer or op.
    node : keras graph node
        The call of ``operation`` to repeat (its other arguments are reused).
    in_shapes : list of tuple of int
        Shape of each input (no batch or time axis).
    time_axis : bool
        Give each input a time axis of length 1 (for temporal models, whose
        layers expect ``(batch, time) + shape``).
    """

    def __init__(self, operation, node, in_shapes, time_axis=False, **kwargs):
        super().__init__(name=f"call_{operation.name}", **kwargs)
        self.operation = operation
        self._node = node
        self._in_shapes = [tuple(s) for s in in_shapes]
        self._lead = (-1, 1) if time_axis else (-1,)

    def call(self, x):
        values, start = [], 0
        for shape in self._in_shapes:
            part = x[:, start : start + size(shape)]
            values.append(keras.ops.reshape(part, self._lead + shape))
            start += size(shape)
        out = call_operation(self.operation, self._node, values)
        return keras.ops.cast(out, x.dtype)


def acts_per_step(operation, node, step_shapes, n_steps=3, seed=0):
    """Whether ``operation`` treats each time step of its inputs separately.

    Runs the call ``node`` on random inputs of ``n_steps`` steps, and on each
    step alone, and compares.

    Parameters
    ----------
    operation : keras.Operation
        The layer or op.
    node : keras graph node
        The call to check.
    step_shapes : list of tuple of int
        Shape of one step of each input.
    n_steps : int
        Length of the test sequence.
    seed : int
        Seed of the random inputs.

    Returns
    -------
    ok : bool
        False if the outputs differ, or the operation cannot run on one step.

    Examples
    --------
    >>> import keras
    >>> inp = keras.Input((None, 2))
    >>> dense = keras.layers.Dense(3)
    >>> _ = dense(inp)
    >>> acts_per_step(dense, dense._inbound_nodes[0], [(2,)])
    True
    >>> pool = keras.layers.GlobalAveragePooling1D()
    >>> _ = pool(inp)
    >>> acts_per_step(pool, pool._inbound_nodes[0], [(2,)])
    False
    """
    rng = np.random.RandomState(seed)
    xs = [rng.uniform(-1, 1, (2, n_steps) + tuple(s)).astype(np.float32) for s in step_shapes]
    try:
        whole = keras.ops.convert_to_numpy(call_operation(operation, node, xs))
        steps = [
            keras.ops.convert_to_numpy(
                call_operation(operation, node, [x[:, t : t + 1] for x in xs])
            )
            for t in range(n_steps)
        ]
    except Exception:  # any failure means: not one step at a time
        return False
    if whole.ndim < 2 or whole.shape[1] != n_steps or any(s.shape[1:2] != (1,) for s in steps):
        return False
    steps = np.concatenate(steps, axis=1)
    return steps.shape == whole.shape and np.allclose(whole, steps, rtol=1e-4, atol=1e-5)
