"""Time the From Nengo to NengoDL tutorial's training: 25 epochs of 4096 examples.

``python -m nengodl.benchmarks.seed_training`` times nengodl's ``sim.train`` (with the
tutorial's ``RMSPropOptimizer``); run with the Python of an environment that has
NengoDL 3 (see `nengodl/benchmarks/nengo_dl3.py`) as
``python nengodl/benchmarks/seed_training.py --nengo-dl`` it times NengoDL 3's
``sim.fit`` on the same problem. It prints the time of the training call (first
compilation included).
"""

import argparse
import time

import nengo
import numpy as np
import tensorflow as tf


def network():
    """The tutorial's network (x -> x^2 -> sin(x^2)) with synapses removed, as
    trained in its "Optimizing a NengoDL model" section."""
    with nengo.Network(seed=0) as net:
        inpt = nengo.Node(nengo.processes.WhiteSignal(1, 5, rms=0.3))
        square = nengo.Ensemble(20, 1)
        sin = nengo.Ensemble(20, 1)
        outpt = nengo.Node(size_in=1)
        nengo.Connection(inpt, square, synapse=None)
        nengo.Connection(square, sin, function=np.square, synapse=None)
        nengo.Connection(sin, outpt, function=np.sin, synapse=None)
        probe = nengo.Probe(outpt)
    return net, inpt, probe


def data(inpt, probe, n, seed):
    """``n`` examples of one step: x uniform in [-1, 1], target sin(x^2)."""
    x = np.random.RandomState(seed).uniform(-1, 1, size=(n, 1, 1))
    return {inpt: x, probe: np.sin(x**2)}


def main(argv=None):
    """Time the training (see ``--help``)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nengo-dl", action="store_true", help="time NengoDL 3's fit instead")
    p.add_argument("--epochs", type=int, default=25)
    args = p.parse_args(argv)
    net, inpt, probe = network()
    train = data(inpt, probe, 4096, 0)
    if args.nengo_dl:
        import nengo_dl as backend
    else:
        import nengodl as backend
    with net:  # the tutorial trains encoders and biases only
        backend.configure_settings(trainable=False)
        net.config[nengo.Ensemble].trainable = True
    with backend.Simulator(net, minibatch_size=32, seed=0, progress_bar=False) as sim:
        if args.nengo_dl:
            sim.compile(optimizer=tf.optimizers.RMSprop(0.01), loss={probe: tf.losses.mse})
            start = time.perf_counter()
            sim.fit({inpt: train[inpt]}, {probe: train[probe]}, epochs=args.epochs, verbose=0)
        else:
            start = time.perf_counter()
            sim.train(
                train,
                tf.compat.v1.train.RMSPropOptimizer(0.01),
                objective={probe: backend.obj.mse},
                n_epochs=args.epochs,
                progress_bar=False,
            )
        elapsed = time.perf_counter() - start
    print(
        f"{'nengo_dl' if args.nengo_dl else 'nengodl'}: {args.epochs} epochs of "
        f"{len(train[inpt])} examples in {elapsed:.2f} s"
    )


if __name__ == "__main__":
    main()
