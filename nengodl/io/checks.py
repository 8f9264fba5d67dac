"""Checking what users give: the Simulator's arguments and run-time input data
(``sim.run(..., data={node: array})``)."""

from collections.abc import Mapping

import nengo
import numpy as np
import tensorflow as tf
from nengo.exceptions import ValidationError


def check_network(network):
    """Refuse a network argument that is neither a `nengo.Network` nor None."""
    if network is not None and not isinstance(network, nengo.Network):
        raise ValidationError(
            f"Must be a nengo.Network (got {type(network).__name__} {network!r}); "
            "put the objects to simulate in a network",
            attr="network",
        )


def check_dt(dt):
    """Refuse a time step that is not a positive finite number."""
    try:
        ok = float(dt) > 0 and np.isfinite(float(dt))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValidationError(f"Must be a positive number (got {dt!r})", attr="dt")


def check_minibatch_size(minibatch_size):
    """``minibatch_size`` as an int (or None), refusing anything else."""
    if minibatch_size is None:
        return None
    if (
        isinstance(minibatch_size, bool)
        or not isinstance(minibatch_size, (int, np.integer))
        or minibatch_size < 1
    ):
        raise ValidationError(
            f"Must be a positive integer or None (got {minibatch_size!r})",
            attr="minibatch_size",
        )
    return int(minibatch_size)


def check_dtype(dtype):
    """``dtype`` as ``tf.float16``, ``tf.float32`` or ``tf.float64``, refusing anything
    else."""
    try:
        out = tf.as_dtype(dtype)
    except TypeError:
        out = None
    if out not in (tf.float16, tf.float32, tf.float64):
        raise ValidationError(
            f"Must be 'float16', 'float32' or 'float64' (got {dtype!r})", attr="dtype"
        )
    return out


def check_device(device):
    """Refuse a device string that names no device TensorFlow can see."""
    if device is None:
        return
    try:
        spec = tf.DeviceSpec.from_string(device)
    except (TypeError, ValueError) as e:
        raise ValidationError(f"Not a device string ({e})", attr="device") from None
    names = [d.name for d in tf.config.list_logical_devices()]
    for name in names:
        have = tf.DeviceSpec.from_string(name)
        if spec.device_type and spec.device_type.upper() != (have.device_type or "").upper():
            continue
        if spec.device_index is not None and spec.device_index != have.device_index:
            continue
        return
    raise ValidationError(
        f"No device {device!r} here; the devices TensorFlow sees are {names}", attr="device"
    )


def check_run_steps(n_steps):
    """Validate a number of steps, returning it as an int."""
    if isinstance(n_steps, (bool, np.bool_)) or not isinstance(n_steps, (int, np.integer)):
        if isinstance(n_steps, (float, np.floating)) and float(n_steps).is_integer():
            n_steps = int(n_steps)
        else:
            raise ValidationError(
                f"Must be a non-negative integer (got {n_steps!r})", attr="n_steps"
            )
    if n_steps < 0:
        raise ValidationError(f"Must be non-negative (got {n_steps})", attr="n_steps")
    return int(n_steps)


def check_run_time(time_in_seconds):
    """Validate a run time in seconds, returning it as a float."""
    try:
        t = float(time_in_seconds)
    except (TypeError, ValueError):
        raise ValidationError(
            f"Must be a number (got {time_in_seconds!r})", attr="time_in_seconds"
        ) from None
    if not np.isfinite(t):
        raise ValidationError(f"Must be finite (got {t:g})", attr="time_in_seconds")
    if t < 0:
        raise ValidationError(f"Must be positive (got {t:g})", attr="time_in_seconds")
    return t


def check_count(value, attr, minimum=0):
    """Validate a whole number (of epochs, steps...) ``>= minimum``, returning it as an int."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValidationError(f"Must be an integer (got {value!r})", attr=attr)
    if value < minimum:
        raise ValidationError(f"Must be at least {minimum} (got {value})", attr=attr)
    return int(value)


def check_seed(seed):
    """Validate a seed (None or an integer in ``[0, 2**32)``), returning it."""
    if seed is None:
        return None
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise ValidationError(f"Must be an integer or None (got {seed!r})", attr="seed")
    if not 0 <= seed < 2**32:
        raise ValidationError(f"Must be in [0, 2**32) (got {seed})", attr="seed")
    return int(seed)


def check_finite_data(arr, obj, allow_nan=False):
    """Refuse NaN and infinite values in the data for ``obj`` (nengo refuses a Node
    whose function returns them; they would stay in the simulation's state).

    With ``allow_nan`` (targets: NaN marks "no target here" for `nengodl.obj.mse`
    and `nengodl.losses.nan_mse`), only infinite values are refused.
    """
    if arr.dtype.kind != "f":
        return
    bad_mask = np.isinf(arr) if allow_nan else ~np.isfinite(arr)
    if bad_mask.any():
        bad = tuple(int(i) for i in np.argwhere(bad_mask)[0])
        what = "targets must not be infinite (NaN marks a missing target)"
        raise ValidationError(
            f"Data for {obj} contains non-finite values (the first at index {bad}: "
            f"{arr[bad]}); {what if allow_nan else 'inputs must be finite'} "
            "(configure_settings(check_finite=False) skips this check)",
            attr="data",
            obj=obj if isinstance(obj, nengo.Node) else None,
        )


def numeric_array(value, obj):
    """``value`` (data for ``obj``) as a numeric array.

    An array of dtype object whose elements are all numbers (as a list of
    arrays can become) is converted to floats, as NengoDL 3 accepted it;
    anything else that is not numeric raises a `ValidationError` naming ``obj``.

    Examples
    --------
    >>> numeric_array(np.array([[1, 2.5]], dtype=object), "a Node").dtype
    dtype('float64')
    """
    try:
        arr = np.asarray(value)
        if arr.dtype == object:
            arr = np.asarray(arr.tolist(), dtype=np.float64)
    except Exception:
        kind = type(value).__name__
        dtype = getattr(np.asarray(value, dtype=object), "dtype", kind)
        raise ValidationError(
            f"data for {obj} must be numeric (got {kind} of dtype {dtype})",
            attr="data",
            obj=obj if not isinstance(obj, str) else None,
        ) from None
    if arr.dtype.kind not in "biuf":
        raise ValidationError(
            f"data for {obj} must be numeric (got dtype {arr.dtype})",
            attr="data",
            obj=obj if not isinstance(obj, str) else None,
        )
    return arr


def check_input_node(node, input_nodes):
    """Raise a `ValidationError` naming ``node`` unless data can be given for it.

    Parameters
    ----------
    node : object
        A key of the data.
    input_nodes : dict
        Map from each Node whose output can be given as data to its feed key.
    """
    if not isinstance(node, nengo.Node):
        raise ValidationError(
            f"Keys must be input Nodes; {node!r} is a {type(node).__name__}", attr="data"
        )
    if node in input_nodes:
        return
    if getattr(node, "tensor_func", None) is not None:
        raise ValidationError(
            f"{node} is a TensorNode: its output is its tensor_func's; give data "
            "to a nengo.Node (or give the TensorNode an input)",
            attr="data",
            obj=node,
        )
    if node.size_in > 0:
        raise ValidationError(
            f"{node} takes input (size_in={node.size_in}); only Nodes with "
            "size_in=0 can be given data",
            attr="data",
            obj=node,
        )
    raise ValidationError(f"{node} is not an input Node of the simulated network", attr="data")


def check_input_data(data, input_nodes, n_steps, minibatch_size, finite=True):
    """Validate ``data`` and arrange it for feeding.

    Parameters
    ----------
    data : dict or None
        Map from input `nengo.Node` to array ``(minibatch_size, n_steps, size_out)``.
    input_nodes : dict
        Map from each Node whose output can be given as data to its feed key.
    n_steps : int
        Number of steps of the run.
    minibatch_size : int
        Number of minibatch items (1 when the simulator has none).
    finite : bool
        Refuse NaN and infinite values (see `check_finite_data`).

    Returns
    -------
    dict
        Map from feed key to array of shape ``(n_steps, minibatch_size, size_out)``.
    """
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ValidationError(
            f"Must be a dict mapping input Nodes to arrays (got {type(data).__name__})",
            attr="data",
        )
    feeds = {}
    for node, value in data.items():
        check_input_node(node, input_nodes)
        arr = numeric_array(value, node)
        expected = (minibatch_size, n_steps, node.size_out)
        if arr.shape != expected:
            raise ValidationError(
                f"Data for {node} has shape {arr.shape}; expected "
                f"(minibatch_size, n_steps, size_out) = {expected}",
                attr="data",
                obj=node,
            )
        if finite:
            check_finite_data(arr, node)
        feeds[input_nodes[node]] = np.swapaxes(arr, 0, 1)
    return feeds
