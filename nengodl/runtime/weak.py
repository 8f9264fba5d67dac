"""References that do not keep a simulator alive.

A dropped `nengodl.Simulator` is freed at once, as a `nengo.Simulator` is, only
if nothing it owns refers back to it: Python frees reference cycles only in its
full garbage collections, which with TensorFlow loaded are rare (they wait for
the count of long-lived objects to grow by a quarter), and each simulator in a
cycle would hold its traced graphs and variables until one runs.
`method_function` traces an object's method without such a cycle, and
`WeakSimulator` is the attribute through which the simulator's parts (trainer,
Keras API, ``keras_model``, distributed runner) reach it.
"""

import inspect
import weakref

import tensorflow as tf
from nengo.exceptions import SimulatorClosed


def method_function(method, **kwargs):
    """``tf.function(method, **kwargs)`` for a bound ``method``, holding its
    object weakly.

    An object that keeps ``tf.function(self.method)`` is in a reference cycle
    with it, which only Python's full garbage collections free; with TensorFlow
    loaded those are rare (they wait for the count of long-lived objects to grow
    by a quarter), so each dropped simulator would hold its traced graphs, about
    1 MiB of native memory, until one runs. The function traces ``method``'s
    object while it lives; traced concrete functions do not need it.

    Parameters
    ----------
    method : method
        A bound method.
    **kwargs
        Arguments of `tf.function`.

    Returns
    -------
    tf.types.experimental.PolymorphicFunction
        The traced function.

    Examples
    --------
    >>> import gc, weakref
    >>> class Doubler:
    ...     def __init__(self):
    ...         self.fn = method_function(self.double, autograph=False)
    ...     def double(self, x):
    ...         return 2 * x
    >>> d = Doubler()
    >>> float(d.fn(tf.constant(1.5)))
    3.0
    >>> ref = weakref.ref(d)
    >>> gc.disable(); del d; freed = ref() is None; gc.enable()
    >>> freed  # without a garbage collection
    True
    """
    ref = weakref.WeakMethod(method)

    def call(*args, **kw):
        return ref()(*args, **kw)

    call.__name__ = method.__name__
    call.__qualname__ = method.__qualname__
    call.__doc__ = method.__doc__
    call.__signature__ = inspect.signature(method)
    return tf.function(call, **kwargs)


class WeakSimulator:
    """An attribute holding a simulator weakly (set it as usual: ``self.sim = sim``).

    Reading it once the simulator is gone (closed and no longer referenced)
    raises `nengo.exceptions.SimulatorClosed`.

    Examples
    --------
    >>> class Part:
    ...     sim = WeakSimulator()
    ...     def __init__(self, sim):
    ...         self.sim = sim
    >>> class Owner:
    ...     pass
    >>> owner = Owner()
    >>> part = Part(owner)
    >>> part.sim is owner
    True
    >>> del owner
    >>> part.sim
    Traceback (most recent call last):
    ...
    nengo.exceptions.SimulatorClosed: Part: its Simulator is gone (closed and no longer referenced)
    """

    def __set_name__(self, owner, name):
        self.attr = f"_{name}_ref"

    def __get__(self, obj, objtype=None):
        if obj is None:
            return self
        sim = getattr(obj, self.attr)()
        if sim is None:
            raise SimulatorClosed(
                f"{type(obj).__name__}: its Simulator is gone (closed and no longer referenced)"
            )
        return sim

    def __set__(self, obj, sim):
        setattr(obj, self.attr, weakref.ref(sim))
