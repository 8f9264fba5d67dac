"""The converter's exceptions and how its messages name a layer."""


class ConversionError(ValueError):
    """A Keras model, layer or converter argument that cannot be converted."""


class Unsupported(Exception):
    """A layer (or one of its arguments) that has no native nengo form.

    Raised by the layer rules; the converter then runs the layer in a
    `TensorNode` (``allow_fallback=True``) or raises a `ConversionError`.
    """


def describe(layer):
    """How messages name a Keras layer or operation: ``Layer 'name' (Class)``.

    Examples
    --------
    >>> import keras
    >>> describe(keras.layers.Dense(2, name="d"))
    "Layer 'd' (Dense)"
    """
    return f"Layer '{layer.name}' ({type(layer).__name__})"
