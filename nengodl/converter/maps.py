"""`KerasMap`: the converter's tables from Keras tensors and layers to nengo objects."""

from collections.abc import Mapping


class KerasMap(Mapping):
    """nengo objects by Keras tensor, by the layer that produced it, or by layer name.

    A layer called several times maps to the objects of its last call; use the
    tensors to reach the others. Iterating gives the Keras tensors.

    Also `Converter.KerasTensorDict` (NengoDL 3.6's name); the converter fills
    it with `add` (it is read-only otherwise).

    Parameters
    ----------
    what : str
        What the map holds, for error messages (``"inputs"``, ...).

    Examples
    --------
    >>> import keras
    >>> inp = keras.Input((2,), name="x")
    >>> table = KerasMap("inputs")
    >>> table.add(inp, inp._keras_history.operation, "node")
    >>> table[inp], table["x"], len(table)
    ('node', 'node', 1)
    """

    def __init__(self, what="entries"):
        self._what = what
        self._tensors = {}  # id(tensor) -> (tensor, value)
        self._layers = {}  # id(layer) -> (layer, value)
        self._names = {}

    def add(self, tensor, layer, value):
        """Record ``value`` as what ``tensor`` (an output of ``layer``) became."""
        self._tensors[id(tensor)] = (tensor, value)
        self._layers[id(layer)] = (layer, value)
        self._names[layer.name] = value

    def __getitem__(self, key):
        for table in (self._tensors, self._layers):
            if id(key) in table and table[id(key)][0] is key:
                return table[id(key)][1]
        if isinstance(key, str) and key in self._names:
            return self._names[key]
        raise KeyError(
            f"{key!r} is not one of the converted model's {self._what} "
            "(expected a Keras tensor, layer or layer name)"
        )

    def __iter__(self):
        return (t for t, _ in self._tensors.values())

    def __len__(self):
        return len(self._tensors)
