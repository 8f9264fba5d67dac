"""Converting Keras models into nengo networks.

`Converter` walks a Keras model's graph and builds each layer from plain nengo
objects where it can, running the Keras code of the others in a `TensorNode`.
The modules hold:

- ``converter``: `Converter` itself (the graph walk and the helpers the layer
  rules build with) and `ConversionError`;
- ``layers``: the rule turning each natively supported Keras layer into nengo
  objects;
- ``sparse``: the sparse matrices of the spatial layers (pooling, padding,
  concatenation, convolutions that `nengo.Convolution` does not cover).
"""

from nengodl.converter.converter import ConversionError, Converter

__all__ = ["ConversionError", "Converter"]
