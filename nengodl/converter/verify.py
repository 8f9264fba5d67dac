"""`verify`: the converted network against the Keras model it came from.

Without training, both run on the same inputs and their outputs are compared.
With ``training=True`` both first count their trainable parameters, and both
are trained alike (`EPOCHS` steps of SGD with learning rate `LEARNING_RATE`
towards targets of ones, the mean squared error summed over the outputs)
before the comparison; the Keras model's weights are restored afterwards.
"""

import keras
import nengo
import numpy as np
import tensorflow as tf

from nengodl.config import (
    configure_settings,
    get_setting,
    is_trainable,
    network_chains,
    trainable_signals,
)
from nengodl.tensor_node import TensorNode

EPOCHS = 3
LEARNING_RATE = 0.1
DEFAULT_STEPS = 10  # time steps of the default inputs of temporal models with no fixed length


def default_inputs(conv):
    """Two random items per model input (uniform in [-1, 1], fixed seed)."""
    rng = np.random.RandomState(0)
    inputs = []
    for t in conv.inputs:
        shape = tuple(t.shape[1:])
        if conv.temporal_model and shape[0] is None:
            shape = (DEFAULT_STEPS,) + shape[1:]
        inputs.append(rng.uniform(-1, 1, size=(2,) + shape))
    return inputs


def check_inputs(conv, inputs):
    """The inputs as a list of float32 arrays, one per model input."""
    if inputs is None:
        inputs = default_inputs(conv)
    if not isinstance(inputs, (list, tuple)):
        inputs = [inputs]
    inputs = [np.asarray(x, dtype=np.float32) for x in inputs]
    if len(inputs) != len(conv.inputs):
        raise ValueError(
            f"verify: {len(inputs)} input arrays for a model with {len(conv.inputs)} inputs"
        )
    lead = 2 if conv.temporal_model else 1
    if len({x.shape[:lead] for x in inputs}) != 1:
        what = "batch and time axes" if conv.temporal_model else "batch axis"
        raise ValueError(
            f"verify: the inputs must share their {what} (got shapes {[x.shape for x in inputs]})"
        )
    return inputs


def keras_trainable_count(model):
    """Number of trainable parameters of a Keras model."""
    unique = {id(w): w for w in model.trainable_weights}
    return sum(int(np.prod(w.shape)) for w in unique.values())


def nengo_trainable_count(sim, net):
    """Number of parameters that training ``net`` in ``sim`` changes.

    The trainable signals of the built model (connection weights, neuron
    biases, encoders, after the ``trainable`` settings) and the trainable
    variables of the Keras layers in trainable TensorNodes.
    """
    count = sum(int(np.prod(s.shape)) for s in trainable_signals(sim.model, net))
    chains = network_chains(net)
    variables = {}
    for node in net.all_nodes:
        if isinstance(node, TensorNode) and is_trainable(chains, node):
            for v in getattr(node.tensor_func, "trainable_variables", []):
                variables[id(v)] = v
    return count + sum(int(np.prod(v.shape)) for v in variables.values())


def train_keras(model, inputs, targets):
    """`EPOCHS` full-batch SGD steps on ``model`` (as ``fit`` with one minibatch would)."""
    optimizer = keras.optimizers.SGD(LEARNING_RATE)
    variables = list({id(w): w for w in model.trainable_weights}.values())
    x = inputs if len(inputs) > 1 else inputs[0]
    for _ in range(EPOCHS):
        with tf.GradientTape() as tape:
            outputs = model(x, training=True)
            outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
            loss = sum(
                keras.ops.mean(keras.losses.mean_squared_error(y, out))
                for y, out in zip(targets, outputs)
            )
        grads = tape.gradient(loss, variables)
        grads = [tf.zeros_like(v) if g is None else g for g, v in zip(grads, variables)]
        optimizer.apply(grads, variables)


def restore(model, saved):
    """Assign the values ``saved`` (from ``w.numpy()``) back to the model's weights."""
    for w, value in zip(model.weights, saved):
        if np.array_equal(w.numpy(), value):
            continue
        try:
            w.assign(value)
        except ValueError:  # Keras stores a value of another shape than it declares
            w.value.assign(value)


def verify(conv, training=False, inputs=None, atol=1e-5, rtol=1e-4):
    """`Converter.verify` (see there)."""
    from nengodl.simulator import Simulator

    spiking = any(e.neuron_type.spiking for e in conv.net.all_ensembles)
    if conv.synapse is not None or (spiking and not training):
        raise ValueError(
            "verify needs rate neurons (or training=True) and synapse=None: the "
            f"converted network has {'synapses' if conv.synapse else 'spiking neurons'}"
        )
    inputs = check_inputs(conv, inputs)
    batch = len(inputs[0])
    n_steps = inputs[0].shape[1] if conv.temporal_model else 1
    lead = (batch, n_steps) if conv.temporal_model else (batch,)
    model = conv.model
    targets = [np.ones(lead + tuple(t.shape[len(lead) :]), np.float32) for t in model.outputs]
    saved = [np.array(w.numpy()) for w in model.weights]
    previous = get_setting(conv.net, "learning_phase")
    # (an inference-only network refuses a learning phase; its parameter count
    # shows what cannot train)
    inference_only = bool(get_setting(conv.net, "inference_only", False))
    with conv.net:
        configure_settings(learning_phase=bool(training) and not inference_only)
    try:
        if training:
            train_keras(model, inputs, targets)
        # (model.predict, traced once, can give wrong shapes for other time lengths)
        expected = model(inputs if len(inputs) > 1 else inputs[0], training=False)
        expected = expected if isinstance(expected, (list, tuple)) else [expected]
        expected = [keras.ops.convert_to_numpy(y) for y in expected]
        restore(model, saved)
        data = {conv.inputs[t]: x.reshape(batch, n_steps, -1) for t, x in zip(conv.inputs, inputs)}
        with Simulator(conv.net, minibatch_size=batch, progress_bar=False) as sim:
            if training:
                check_trainable(conv, sim)
                probes = [conv.outputs[t] for t in model.outputs]
                sim.compile(optimizer=keras.optimizers.SGD(LEARNING_RATE), loss="mse")
                sim.fit(
                    data,
                    {p: y.reshape(batch, n_steps, -1) for p, y in zip(probes, targets)},
                    epochs=EPOCHS,
                    verbose=0,
                )
            got = sim.predict_on_batch(data)
    finally:
        restore(model, saved)
        with conv.net:
            configure_settings(learning_phase=previous)
    for t, y in zip(model.outputs, expected):
        probe = conv.outputs[t]
        out = got[probe] if conv.temporal_model else got[probe][:, -1:]
        y = np.asarray(y).reshape(out.shape)
        if not np.allclose(out, y, atol=atol, rtol=rtol):
            raise ValueError(
                f"Output '{probe.label}' differs from the Keras model "
                f"(max abs difference {np.max(np.abs(out - y)):.3g})"
            )
    return True


def check_trainable(conv, sim):
    """Same number of trainable parameters in the network and the model, and trainable."""
    n_keras = keras_trainable_count(conv.model)
    n_nengo = nengo_trainable_count(sim, conv.net)
    if n_keras != n_nengo:
        raise ValueError(
            f"Number of trainable parameters in the nengo network ({n_nengo}) does not "
            f"match the number of trainable parameters in the Keras model ({n_keras})"
        )
    if get_setting(conv.net, "inference_only", False):
        raise nengo.exceptions.ValidationError(
            "verify(training=True) trains the network, but it was converted with "
            "inference_only=True",
            attr="inference_only",
        )
