"""Depthwise and separable convolutions (MobileNet's, EfficientNet's) convert to
grouped `nengo.Convolution` transforms that train and run on nengo.Simulator.

Truths: Keras on the same model (`check` also runs the net on nengo.Simulator).
"""

import keras
import numpy as np
import pytest
from test_converter import check, model_of

import nengodl

L = keras.layers


@pytest.mark.parametrize(
    "layer, shape",
    [
        (L.DepthwiseConv2D(3), (6, 6, 3)),
        (L.DepthwiseConv2D(3, depth_multiplier=2, strides=2, padding="same"), (7, 7, 3)),
        (L.DepthwiseConv2D((2, 3), activation="relu6", use_bias=False), (5, 6, 2)),
        (L.DepthwiseConv1D(3, depth_multiplier=3), (8, 2)),
        (L.SeparableConv2D(4, 3, depth_multiplier=2, activation="relu"), (6, 6, 3)),
        (L.SeparableConv2D(5, 3, strides=2, padding="same"), (7, 7, 2)),
        (L.SeparableConv1D(3, 2), (6, 4)),
    ],
    ids=["dw", "dw-mult-stride-same", "dw-relu6", "dw1d", "sep", "sep-stride", "sep1d"],
)
def test_depthwise_and_separable_convolutions_convert_natively(layer, shape):
    check(model_of(shape, layer))


def test_grouped_convolutions_train_as_keras():
    # one SGD step on the depthwise kernel and bias equals Keras's
    keras.utils.set_random_seed(0)
    model = model_of((5, 5, 2), L.DepthwiseConv2D(3, depth_multiplier=2), L.Flatten())
    x = np.random.RandomState(0).uniform(-1, 1, size=(4, 5, 5, 2)).astype(np.float32)
    y = np.random.RandomState(1).uniform(-1, 1, size=(4, 36)).astype(np.float32)
    conv = nengodl.Converter(model, allow_fallback=False)
    with nengodl.Simulator(conv.net, minibatch_size=4, progress_bar=False) as sim:
        sim.compile(keras.optimizers.SGD(0.1), loss="mse")
        sim.fit({conv.inputs[model.input]: x.reshape(4, 1, -1)}, y[:, None], verbose=0)
        out = sim.predict_on_batch({conv.inputs[model.input]: x.reshape(4, 1, -1)})
    model.compile(keras.optimizers.SGD(0.1), loss="mse")
    model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    np.testing.assert_allclose(
        out[conv.outputs[model.output]][:, 0], model.predict(x, verbose=0), atol=1e-5
    )


@pytest.mark.parametrize("groups", [2, 4])
def test_grouped_conv2d_converts_natively(groups):
    check(model_of((6, 6, 4), L.Conv2D(8, 3, groups=groups)))
