"""Sums and products of branches with broadcasting, and affine layers
(Rescaling, Normalization), convert natively.

Truths: Keras on the same model, nengo.Simulator (through `check`).
"""

import keras
import numpy as np
import pytest
from test_converter import check

import nengodl
from nengodl.ops.functions import Product

L = keras.layers


def two_branch(shape_a, shape_b, merge):
    inp = keras.Input((4, 4, 3))
    a = L.Conv2D(shape_a[-1], 1)(inp)
    if shape_a[:-1] != (4, 4):
        a = L.GlobalAveragePooling2D(keepdims=True)(a)
    b = L.Conv2D(shape_b[-1], 1, activation="sigmoid")(inp)
    if shape_b[:-1] != (4, 4):
        b = L.GlobalAveragePooling2D(keepdims=True)(b)
    return keras.Model(inp, merge([a, b]))


@pytest.mark.parametrize("merge", [L.Add, L.Subtract, L.Average, L.Multiply])
@pytest.mark.parametrize(
    "shapes", [((4, 4, 3), (4, 4, 3)), ((4, 4, 3), (1, 1, 3))], ids=["same", "broadcast"]
)
def test_merges_with_broadcasting(merge, shapes):
    check(two_branch(*shapes, merge()))


def test_squeeze_and_excite_block():
    # EfficientNet's and MobileNetV3's: global pool, two 1x1 convs, sigmoid gate,
    # multiplied back into the feature map
    inp = keras.Input((5, 5, 4))
    se = L.GlobalAveragePooling2D(keepdims=True)(inp)
    se = L.Conv2D(2, 1, activation="silu")(se)
    se = L.Conv2D(4, 1, activation="hard_sigmoid")(se)
    check(keras.Model(inp, L.Multiply()([inp, se])))


def test_product_node_is_exact_and_native():
    model = two_branch((4, 4, 3), (1, 1, 3), L.Multiply())
    conv = nengodl.Converter(model, allow_fallback=False)
    nodes = [n for n in conv.net.all_nodes if isinstance(n.output, Product)]
    assert len(nodes) == 1 and nodes[0].output.shapes == [(4, 4, 3), (1, 1, 3)]
    with nengodl.Simulator(conv.net, progress_bar=False) as sim:
        assert sim.jit and not sim.plan.has_host_loop_ops


@pytest.mark.parametrize(
    "layer",
    [
        L.Rescaling(1 / 255.0),
        L.Rescaling(2.0, offset=-1.0),
        L.Rescaling(np.array([1.0, 2.0, 3.0]), offset=np.array([0.5, 0.0, -0.5])),
        L.Normalization(mean=[0.1, 0.2, 0.3], variance=[1.0, 4.0, 0.25]),
        L.Normalization(mean=[0.1, 0.2, 0.3], variance=[1.0, 4.0, 0.25], invert=True),
    ],
    ids=["scale", "scale-offset", "per-channel", "normalization", "invert"],
)
def test_affine_layers(layer):
    inp = keras.Input((4, 4, 3))
    check(keras.Model(inp, layer(inp)))


def test_keras_ops_arithmetic_in_a_functional_model():
    # MobileNetV3 writes hard_sigmoid as ReLU(6.0)(x + 3.0) * (1.0 / 6.0)
    inp = keras.Input((4,))
    x = L.Dense(4)(inp)
    y = L.ReLU(6.0)(x + 3.0) * (1.0 / 6.0)
    z = 2.0 - y / 2.0 + x * np.array([1.0, -1.0, 2.0, 0.5]) - x
    check(keras.Model(inp, z * y))


def test_division_by_a_tensor_falls_back():
    inp = keras.Input((3,))
    model = keras.Model(inp, 1.0 / (inp + 2.0))
    with pytest.raises(nengodl.converter.ConversionError, match="divided by a tensor"):
        nengodl.Converter(model, allow_fallback=False)
