"""Time per epoch of ``fit``, nengodl against Keras on the equivalent model.

``python -m nengodl.benchmarks.fit_epochs`` trains a two-layer XOR network
(inputs -> ReLU layer -> linear output, one simulation step per example) as a
nengo network in ``nengodl.Simulator`` and as a Keras ``Sequential`` model, with
and without ``validation_data``. After a warm-up ``fit`` (tracing and
compilation), each timed ``fit`` runs ``--epochs`` epochs; the two are timed in
turn, ``--repeats`` times, and the medians are printed with their ratio.
"""

import argparse
import statistics
import time

import keras
import nengo
import numpy as np


def xor_data(n_copies, seed=0):
    """The four XOR patterns, ``n_copies`` times each, with a little noise."""
    rng = np.random.RandomState(seed)
    x = np.tile([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]], (n_copies, 1))
    y = np.tile([[0.0], [1.0], [1.0], [0.0]], (n_copies, 1))
    return x + 0.05 * rng.randn(*x.shape), y


def weights(hidden, seed=0):
    rng = np.random.RandomState(seed)
    return rng.randn(hidden, 2) / np.sqrt(2), rng.randn(1, hidden) / np.sqrt(hidden)


def nengo_fitter(hidden, batch):
    """``fit(x, y, epochs, validation)`` on a nengodl simulator of the network."""
    import nengodl

    w1, w2 = weights(hidden)
    with nengo.Network(seed=0) as net:
        inp = nengo.Node(np.zeros(2))
        ens = nengo.Ensemble(
            hidden,
            1,
            neuron_type=nengo.RectifiedLinear(),
            gain=np.ones(hidden),
            bias=np.zeros(hidden),
        )
        out = nengo.Node(size_in=1)
        nengo.Connection(inp, ens.neurons, transform=w1, synapse=None)
        nengo.Connection(ens.neurons, out, transform=w2, synapse=None)
        probe = nengo.Probe(out)
    sim = nengodl.Simulator(net, minibatch_size=batch, progress_bar=False)
    sim.compile(keras.optimizers.Adam(1e-3), loss={probe: "mse"})

    def fit(x, y, epochs, validation):
        val = (x[:, None], y[:, None]) if validation else None
        sim.fit(x[:, None], y[:, None], epochs=epochs, validation_data=val, verbose=0)

    return fit, sim.close


def keras_fitter(hidden, batch):
    """The same ``fit`` on the equivalent Keras model."""
    w1, w2 = weights(hidden)
    model = keras.Sequential(
        [
            keras.Input((2,)),
            keras.layers.Dense(hidden, activation="relu"),
            keras.layers.Dense(1, use_bias=False),
        ]
    )
    model.layers[0].set_weights([w1.T, np.zeros(hidden)])
    model.layers[1].set_weights([w2.T])
    model.compile(keras.optimizers.Adam(1e-3), loss="mse")

    def fit(x, y, epochs, validation):
        val = (x, y) if validation else None
        model.fit(x, y, batch_size=batch, epochs=epochs, validation_data=val, verbose=0)

    return fit, lambda: None


def main(argv=None):
    """Print the per-epoch times (see ``--help``)."""
    p = argparse.ArgumentParser(
        prog="python -m nengodl.benchmarks.fit_epochs", description=__doc__.splitlines()[0]
    )
    p.add_argument("--epochs", type=int, default=20, help="epochs per timed fit")
    p.add_argument("--repeats", type=int, default=5, help="timed fits of each, alternating")
    p.add_argument("--hidden", type=int, default=32, help="ReLU units")
    p.add_argument("--items", type=int, default=256, help="training examples")
    p.add_argument("--batch", type=int, default=32, help="minibatch size")
    args = p.parse_args(argv)
    x, y = xor_data(args.items // 4)
    fitters = {
        "nengodl": nengo_fitter(args.hidden, args.batch),
        "keras": keras_fitter(args.hidden, args.batch),
    }
    print(
        f"fit per epoch: {len(x)} examples, minibatch {args.batch}, {args.hidden} ReLU "
        f"units, {args.epochs} epochs x {args.repeats} runs each (median)"
    )
    print(f"{'validation':<12}{'nengodl (ms)':>14}{'keras (ms)':>12}{'ratio':>8}")
    for validation in (False, True):
        times = {name: [] for name in fitters}
        for fit, _ in fitters.values():
            fit(x, y, 1, validation)  # tracing and compilation
        for _ in range(args.repeats):
            for name, (fit, _) in fitters.items():
                start = time.perf_counter()
                fit(x, y, args.epochs, validation)
                times[name].append((time.perf_counter() - start) / args.epochs)
        ours, theirs = (statistics.median(times[k]) for k in ("nengodl", "keras"))
        print(
            f"{'yes' if validation else 'no':<12}{1e3 * ours:>14.2f}{1e3 * theirs:>12.2f}"
            f"{ours / theirs:>8.3g}"
        )
    for _, close in fitters.values():
        close()


if __name__ == "__main__":
    main()
