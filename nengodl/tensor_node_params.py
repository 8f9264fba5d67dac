"""The nengo Parameters of `nengodl.TensorNode`.

``TensorNode.tensor_func``, ``shape_in``, ``shape_out`` and ``pass_time`` are
declared on the class with these (as in NengoDL 3.6), so that each assignment
is validated, nengo copies and pickles them, and a network's config can set
the defaults of the configurable ones (``shape_in``, ``shape_out``, ``pass_time``)
once it ``configures(TensorNode)``.

Values are checked against the node they are set on: a node needs an input
(``shape_in``) or the time (``pass_time=True``), and a ``shape_out`` of None is
inferred by calling ``tensor_func``. When the value is set as a config default
(on nengo's ``ClassParams``, not a node) only the value itself is checked.
"""

import operator

import nengo
import numpy as np
from nengo.exceptions import ValidationError
from nengo.params import BoolParam, DefaultType, Parameter, ShapeParam


def _on_node(instance):
    """Whether ``instance`` is a node (not a config's ClassParams being given a default)."""
    return isinstance(instance, nengo.Node)


def _prefix(instance):
    """``"TensorNode 'label': "`` for a labelled node, else nothing."""
    label = instance.label if _on_node(instance) else None
    return f"{type(instance).__name__} '{label}': " if label else ""


def _require_an_argument(instance, attr, shape_in, pass_time):
    if shape_in is None and not pass_time:
        raise ValidationError(
            f"{_prefix(instance)}needs a shape_in (an input) or pass_time=True "
            "(otherwise tensor_func gets no arguments)",
            attr=attr,
            obj=instance,
        )


class TensorFuncParam(Parameter):
    """``TensorNode.tensor_func``: a callable (a function or a Keras layer).

    Not configurable and not optional. Setting it on a node whose ``shape_out``
    is None infers ``shape_out`` by calling the function; if that fails, the
    node keeps its previous function.

    Parameters
    ----------
    name : str
        The attribute's name.
    readonly : bool
        Whether the value can be set only once.

    Examples
    --------
    >>> import nengodl
    >>> nengodl.TensorNode.tensor_func.configurable
    False
    """

    def __init__(self, name, readonly=False):
        super().__init__(name, optional=False, readonly=readonly)

    def coerce(self, instance, func):
        """Check that ``func`` can be called; returns it unchanged."""
        func = super().coerce(instance, func)
        if not callable(func):
            raise ValidationError(
                f"{_prefix(instance)}must be callable, a function or a Keras layer "
                f"(got {type(func).__name__})",
                attr=self.name,
                obj=instance,
            )
        return func

    def __set__(self, instance, value):
        missing = object()
        previous = self.data.get(instance, missing)
        super().__set__(instance, value)
        if _on_node(instance) and instance.shape_out is None:
            try:
                instance.shape_out = None  # inferred from the function just set
            except Exception:
                if previous is missing:
                    del self.data[instance]
                else:
                    self.data[instance] = previous
                raise


class TensorShapeParam(ShapeParam):
    """A TensorNode's shape: a tuple of positive ints, or None.

    An int ``n`` stands for ``(n,)``; numpy integers (and ``tf.TensorShape``
    dimensions) become Python ints.

    Parameters
    ----------
    name : str
        The attribute's name.
    default : tuple of int or None
        The default value.
    readonly : bool
        Whether the value can be set only once.

    Examples
    --------
    >>> import nengodl
    >>> nengodl.TensorNode.shape_in.default is None, nengodl.TensorNode.shape_in.low
    (True, 1)
    """

    def __init__(self, name, default=None, readonly=False):
        super().__init__(name, default=default, low=1, optional=True, readonly=readonly)

    def coerce(self, instance, value):
        """Return ``value`` as a tuple of ints, checking that each is at least 1."""
        if value is not None and not isinstance(value, DefaultType):
            value = self._as_shape(instance, value)
        return super().coerce(instance, value)

    def _as_shape(self, instance, value):
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            value = (value,)
        try:
            shape = tuple(operator.index(d) for d in value)
        except TypeError:
            raise ValidationError(
                f"{_prefix(instance)}must be a tuple of ints (got {value!r})",
                attr=self.name,
                obj=instance,
            ) from None
        if any(d < self.low for d in shape):
            raise ValidationError(
                f"{_prefix(instance)}must have positive dimensions (got {shape})",
                attr=self.name,
                obj=instance,
            )
        return shape


class ShapeInParam(TensorShapeParam):
    """``TensorNode.shape_in``: None (no input) only on a node with ``pass_time=True``.

    Examples
    --------
    >>> import nengo, nengodl, tensorflow as tf
    >>> with nengo.Network():
    ...     node = nengodl.TensorNode(lambda t, x: 2 * x, shape_in=3)
    >>> node.shape_in, node.size_in
    ((3,), 3)
    """

    def coerce(self, instance, value):
        """Check the shape, and that a node without input still gets the time."""
        value = super().coerce(instance, value)
        if _on_node(instance):
            _require_an_argument(instance, self.name, value, instance.pass_time)
        return value


class ShapeOutParam(TensorShapeParam):
    """``TensorNode.shape_out``: None means "infer it from ``tensor_func``".

    Parameters
    ----------
    name : str
        The attribute's name.
    infer : callable
        ``infer(node)`` returns the shape of ``node.tensor_func``'s output; called
        when None is set on a node that has its ``tensor_func``.
    default : tuple of int or None
        The default value.
    readonly : bool
        Whether the value can be set only once.

    Examples
    --------
    >>> import nengo, nengodl, tensorflow as tf
    >>> with nengo.Network():
    ...     node = nengodl.TensorNode(lambda t, x: tf.concat([x, x], 1), shape_in=(2,))
    ...     inferred = node.shape_out
    ...     node.shape_out = (1, 4)
    >>> inferred, node.shape_out, node.size_out
    ((4,), (1, 4), 4)
    """

    def __init__(self, name, infer, default=None, readonly=False):
        super().__init__(name, default=default, readonly=readonly)
        self.infer = infer

    def coerce(self, instance, value):
        """Check the shape; for None on a node with a function, infer it."""
        value = super().coerce(instance, value)
        has_func = _on_node(instance) and instance in type(instance).tensor_func
        if value is None and has_func:
            value = super().coerce(instance, tuple(self.infer(instance)))
        return value


class PassTimeParam(BoolParam):
    """``TensorNode.pass_time``: False only on a node with a ``shape_in``.

    Parameters
    ----------
    name : str
        The attribute's name.
    default : bool
        The default value (True in NengoDL 3.6).
    readonly : bool
        Whether the value can be set only once.

    Examples
    --------
    >>> import nengodl
    >>> nengodl.TensorNode.pass_time.default
    True
    """

    def __init__(self, name, default=True, readonly=False):
        super().__init__(name, default=default, optional=False, readonly=readonly)

    def coerce(self, instance, value):
        """Check that ``value`` is a bool and that the node still gets an argument."""
        if isinstance(value, np.bool_):
            value = bool(value)
        if not (value is None or isinstance(value, (bool, DefaultType))):
            raise ValidationError(
                f"{_prefix(instance)}must be True or False (got {value!r})",
                attr=self.name,
                obj=instance,
            )
        value = super().coerce(instance, value)
        if _on_node(instance):
            _require_an_argument(instance, self.name, instance.shape_in, value)
        return value
