"""Layers without a native form: their own Keras code, run in a `TensorNode`.

`ConvertFallback` is the registry's fallback entry (``Converter.converters[None]``);
`CallOperation` is its TensorNode function; `acts_per_step` checks, for
temporal models, that running an operation one time step at a time (as the
nengo network does) gives what Keras computes on the whole sequence.
"""

import warnings

import keras
import numpy as np

from nengodl.converter.errors import ConversionError, describe
from nengodl.converter.registry import LayerConverter, Port, register, size
from nengodl.tensor_node import TensorNode


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


@register(None)
class ConvertFallback(LayerConverter):
    """Runs a layer's (or op's) own Keras code in a `TensorNode`, with a warning.

    The converter uses it for layers without a registered converter, or whose
    converter refuses them, when ``allow_fallback=True``.

    Parameters
    ----------
    layer : keras.Operation
        The layer or op.
    converter : Converter
        The converter running the conversion.
    reason : str, optional
        Why the layer has no native conversion (for the warning and errors).
    refused_by : type, optional
        The layer's registered `LayerConverter`, if its ``allow_fallback`` is
        False (the fallback is then an error).
    """

    has_weights = False  # the TensorNodes of several calls share the Keras weights
    per_step = None

    def __init__(self, layer, converter, reason=None, refused_by=None):
        super().__init__(layer, converter)
        self.reason = reason or f"no native conversion for {type(layer).__name__}"
        self.refused_by = refused_by

    def check_allowed(self):
        """Raise a `ConversionError` (giving the reason) unless the fallback is allowed."""
        if not self.converter.allow_fallback:
            hint = "set allow_fallback=True to run it in a TensorNode"
        elif self.refused_by is not None:
            hint = f"{self.refused_by.__name__} does not allow a TensorNode fallback"
        else:
            return
        raise ConversionError(f"{describe(self.layer)}: {self.reason} ({hint})")

    def output_ports(self, node_id):
        """The TensorNode's `Port` for the one output of call ``node_id``.

        Raises
        ------
        ConversionError
            If the call has several outputs, the fallback is not allowed (see
            `check_allowed`), or (in a ``temporal_model``) the layer does not
            act on each time step separately.
        """
        call = self.call(node_id)
        layer, cv, reason = self.layer, self.converter, self.reason
        if len(call.out_shapes) != 1:
            raise ConversionError(
                f"{describe(layer)}: {reason}, and layers with several outputs "
                "cannot run as TensorNodes"
            )
        self.check_allowed()
        shapes = [p.shape for p in call.in_ports]
        if cv.temporal_model:
            fixed = {t.shape[1] for t in call.node.input_tensors} - {None}
            n_steps = max(fixed) if fixed else 3
            if len(fixed) > 1 or not acts_per_step(layer, call.node, shapes, n_steps):
                raise ConversionError(
                    f"{describe(layer)}: {reason}, and it does not act on each time "
                    "step separately, as the layers of a temporal_model must (the "
                    "nengo network computes one time step per simulation step)"
                )
        warnings.warn(f"{describe(layer)}: {reason}; running it in a TensorNode")
        func = CallOperation(layer, call.node, shapes, time_axis=cv.temporal_model)
        out_shape = call.out_shapes[0]
        tn = TensorNode(
            func,
            shape_in=(sum(size(s) for s in shapes),),
            shape_out=out_shape,
            pass_time=False,
            label=layer.name,
        )
        start = 0
        for p in call.in_ports:
            n = size(p.shape)
            cv.connect(p, tn if n == tn.size_in else tn[start : start + n])
            start += n
        return [Port(tn, out_shape, None)]

    def convert(self, node_id):
        """The TensorNode computing call ``node_id``."""
        return self.output_ports(node_id)[0].obj
