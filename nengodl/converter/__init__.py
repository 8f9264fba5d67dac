"""Converting Keras models into nengo networks.

`Converter` walks a Keras model's graph and builds each layer from plain nengo
objects where it can, running the Keras code of the others in a `TensorNode`.
The modules hold:

- ``converter``: `Converter` itself (the graph walk, the fallback to
  TensorNodes and the helpers the layer rules build with);
- ``registry``: `LayerConverter`, the base class of the converters of each
  Keras layer class, and their registry (`Converter.converters`, added to by
  `Converter.register`);
- ``layers``: the rule turning each natively supported Keras layer into nengo
  objects (each registered as a `LayerConverter`);
- ``sparse``: the sparse matrices of the spatial layers (pooling, padding,
  concatenation, convolutions that `nengo.Convolution` does not cover) and
  their channels_first re-indexing;
- ``activations``: Keras activations, their neuron types, ``swap_activations``
  and ``scale_firing_rates``' amplitudes;
- ``fallback``: the registry's fallback entry, running a layer's Keras code in a
  TensorNode, and the check that a layer of a temporal model acts on each time step separately;
- ``verify``: `Converter.verify`, the converted network against the model;
- ``maps``: the ``inputs``/``outputs``/``layers`` tables;
- ``errors``: `ConversionError`.
"""

from nengodl.converter.converter import ConversionError, Converter
from nengodl.converter.registry import LayerConverter

__all__ = ["ConversionError", "Converter", "LayerConverter"]
