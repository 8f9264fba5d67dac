"""`Simulator.keras_model` (NengoDL 3's ``sim.keras_model``): description,
parameter counts and a save/load round trip of the parameters."""

import keras
import nengo
import numpy as np
import pytest
from nengo.exceptions import SimulatorClosed

import nengodl


def small_net(trainable_input=True):
    """Node(2) -Dense(2x2)-> Ensemble(10, 2) -decoded(3)-> Node(3), probed."""
    with nengo.Network(seed=0, label="small") as net:
        nengodl.configure_settings(trainable=None)
        a = nengo.Node(np.ones(2), label="stim")
        ens = nengo.Ensemble(10, 2)
        conn_in = nengo.Connection(a, ens, transform=np.ones((2, 2)))
        b = nengo.Node(size_in=3, label="out")
        conn_out = nengo.Connection(ens, b, transform=np.ones((3, 2)))
        p = nengo.Probe(b, label="p_out")
        if not trainable_input:
            net.config[conn_in].trainable = False
    return net, a, ens, conn_in, conn_out, p


# trainable parameters in closed form: input weights 2*2, encoders 10*2, biases 10,
# decoders 3 outputs x 10 neurons
N_INPUT, N_ENCODERS, N_BIAS, N_DECODERS = 4, 20, 10, 30


def test_summary_describes_inputs_outputs_and_counts(capsys):
    net, *_ = small_net()
    with nengodl.Simulator(net, minibatch_size=4, progress_bar=False) as sim:
        model = sim.keras_model
        model.summary()
        assert sim.keras_model is model  # one model, the one callbacks see
        assert model.count_params() == N_INPUT + N_ENCODERS + N_BIAS + N_DECODERS
        assert len(model.weights) == 4 and len(model.trainable_weights) == 4
    text = capsys.readouterr().out
    assert 'Model: "keras_model" (nengodl simulation of small' in text
    assert "stim" in text and "(4, 'n_steps', 2)" in text
    assert "p_out (" in text and "(4, 'n_steps', 3)" in text
    assert "Total params: 64" in text
    assert "Trainable params: 64" in text
    assert "Non-trainable params: 0" in text


def test_summary_counts_follow_the_trainable_setting():
    net, *_ = small_net(trainable_input=False)
    lines = []
    with nengodl.Simulator(net, progress_bar=False) as sim:
        sim.keras_model.summary(print_fn=lines.append, line_length=60)
    assert all(len(line) <= 60 for line in lines[1:])
    assert f"Trainable params: {N_ENCODERS + N_BIAS + N_DECODERS}" in lines


def test_save_weights_load_weights_round_trip(tmp_path):
    net, a, _ens, _conn_in, conn_out, p = small_net()
    x = {a: np.random.RandomState(1).uniform(-1, 1, (2, 5, 2))}
    y = {p: np.zeros((2, 5, 3))}
    with nengodl.Simulator(net, progress_bar=False) as sim:
        untrained = sim.predict(x, verbose=0)[p]
        sim.compile(optimizer=keras.optimizers.SGD(0.05), loss={p: "mse"})
        sim.fit(x, y, epochs=3, verbose=0)
        trained = sim.predict(x, verbose=0)[p]
        weights = [np.array(w) for w in sim.keras_model.get_weights()]
        sim.keras_model.save_weights(tmp_path / "w")
    assert not np.allclose(trained, untrained)

    with nengodl.Simulator(net, progress_bar=False) as sim2:
        sim2.keras_model.load_weights(tmp_path / "w")
        restored = sim2.predict(x, verbose=0)[p]
        loaded = sim2.keras_model.get_weights()
        decoders = sim2.data[conn_out].weights
    for w, v in zip(weights, loaded):
        np.testing.assert_array_equal(v, w)
    np.testing.assert_allclose(restored, trained, atol=1e-6)
    np.testing.assert_allclose(decoders, sim.data[conn_out].weights, atol=0)


def test_keras_model_of_a_closed_simulator():
    net, *_ = small_net()
    with nengodl.Simulator(net, progress_bar=False) as sim:
        pass
    with pytest.raises(SimulatorClosed, match="keras_model"):
        sim.keras_model  # noqa: B018
