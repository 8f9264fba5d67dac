"""One worker of the multi-worker tests in ``test_distribute.py``.

Trains the seed tutorial's network (x -> x^2 -> sin(x^2), encoders and biases
trainable, no synapses) on a fixed data set and writes the results to an
``.npz`` file. With ``TF_CONFIG`` set, training runs under a
`tf.distribute.MultiWorkerMirroredStrategy`; without it, in one process on one
device (the reference).

Usage::

    python distributed_worker.py MODE OUT [BACKUP_DIR]

MODE is ``train`` (`Simulator.train` with the tutorial's RMSProp) or ``fit``
(`Simulator.fit` with Keras SGD with momentum and, given BACKUP_DIR,
`keras.callbacks.BackupAndRestore`). After each epoch of ``fit`` the worker
prints ``epoch <n> done`` (flushed), which the tests watch.
"""

import json
import os
import sys

import tensorflow as tf

# the strategy must exist before TensorFlow initialises its devices
STRATEGY = tf.distribute.MultiWorkerMirroredStrategy() if "TF_CONFIG" in os.environ else None

import keras  # noqa: E402
import nengo  # noqa: E402
import numpy as np  # noqa: E402

import nengodl  # noqa: E402

BATCH = 256  # the tutorial uses 4096 examples; fewer keep the test short
MINIBATCH = 32
EPOCHS = 6


def tutorial_net():
    """The seed tutorial's network as trained in its section 4."""
    with nengo.Network(seed=0) as net:
        net.inpt = nengo.Node(nengo.processes.WhiteSignal(1, 5, rms=0.3))
        square = nengo.Ensemble(20, 1)
        sin = nengo.Ensemble(20, 1)
        net.outpt = nengo.Node(size_in=1)
        nengo.Connection(net.inpt, square, synapse=None)
        nengo.Connection(square, sin, function=np.square, synapse=None)
        nengo.Connection(sin, net.outpt, function=np.sin, synapse=None)
        net.probe = nengo.Probe(net.outpt)
        nengodl.configure_settings(trainable=False)
        net.config[nengo.Ensemble].trainable = True
    return net


class Report(keras.callbacks.Callback):
    """Print each finished epoch, for the test watching this process."""

    def on_epoch_end(self, epoch, logs=None):
        print(f"epoch {epoch + 1} done", flush=True)


def main(mode, out, backup=None):
    net = tutorial_net()
    rng = np.random.RandomState(0)
    vals = rng.uniform(-1, 1, size=(BATCH, 1, 1))
    data = {net.inpt: vals, net.probe: np.sin(vals**2)}
    scope = STRATEGY.scope() if STRATEGY is not None else tf.name_scope("single")
    with scope:
        # multi-worker simulators do not merge operators: the reference does not
        # either, so that both do the same arithmetic
        sim = nengodl.Simulator(
            net, minibatch_size=MINIBATCH, seed=0, progress_bar=False, optimize=False
        )
        # SGD with momentum: optimizer state that a resumed run must restore
        keras_opt = keras.optimizers.SGD(0.1, momentum=0.9)
    with sim:
        if mode == "train":
            losses = [
                sim.train(
                    data,
                    tf.compat.v1.train.RMSPropOptimizer(0.01),
                    n_epochs=1,
                    shuffle=True,
                    seed=epoch,
                )
                for epoch in range(EPOCHS)
            ]
        else:
            sim.compile(keras_opt, loss="mse")
            callbacks = [Report()]
            if backup is not None:
                callbacks.insert(0, keras.callbacks.BackupAndRestore(backup))
            history = sim.fit(
                data[net.inpt],
                data[net.probe],
                epochs=EPOCHS,
                callbacks=callbacks,
                seed=0,
                verbose=0,
            )
            losses = history.history["loss"]
            print("epochs run", json.dumps(history.epoch), flush=True)
        sim.compile(loss="mse")
        final = sim.evaluate(data[net.inpt], data[net.probe], verbose=0)["loss"]
        encoders = [sim.data[e].scaled_encoders for e in net.all_ensembles]
        biases = [sim.data[e].bias for e in net.all_ensembles]
    np.savez(
        out,
        losses=np.array(losses),
        final=final,
        encoders=np.array(encoders),
        biases=np.array(biases),
    )


if __name__ == "__main__":
    main(*sys.argv[1:])
