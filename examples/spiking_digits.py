"""A spiking digits classifier built with ``nengodl.Layer``.

Keras ``Conv2D`` and ``Dense`` layers alternate with LIF neurons. The network
is trained with ``sim.fit`` (LIF neurons run as rate neurons while training)
and then evaluated spiking, over time, on held-out digits from
``sklearn.datasets.load_digits`` (shipped with scikit-learn; nothing is
downloaded). Prints the spiking test accuracy and saves a plot of the output
over time for a few test digits.

Run with ``python examples/spiking_digits.py`` (``NENGODL_EPOCHS`` to change
the number of training epochs).
"""

import os

import matplotlib

matplotlib.use("Agg")
import keras  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import nengo  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

import nengodl  # noqa: E402

OUT = os.environ.get("NENGODL_PLOTS", os.path.dirname(os.path.abspath(__file__)))
EPOCHS = int(os.environ.get("NENGODL_EPOCHS", "15"))
keras.utils.set_random_seed(0)

digits = load_digits()
images = digits.images.astype(np.float32) / 16.0  # (1797, 8, 8), values in [0, 1]
labels = digits.target
rng = np.random.RandomState(0)
order = rng.permutation(len(images))
images, labels = images[order], labels[order]
n_train = 1280
x_train = images[:n_train].reshape(n_train, 1, 64)
y_train = keras.utils.to_categorical(labels[:n_train], 10).reshape(n_train, 1, 10)
n_test = 512
x_test = images[n_train : n_train + n_test].reshape(n_test, 1, 64)
y_test = labels[n_train : n_train + n_test]

with nengo.Network(seed=0) as net:
    # LIF neurons with rate 100 Hz at input 1; amplitude scales spikes to ~1
    net.config[nengo.Ensemble].max_rates = nengo.dists.Choice([100])
    net.config[nengo.Ensemble].intercepts = nengo.dists.Choice([0])
    net.config[nengo.Connection].synapse = None
    neuron_type = nengo.LIF(amplitude=0.01)

    inp = nengo.Node(np.zeros(64))
    x = nengodl.Layer(keras.layers.Conv2D(16, 3))(inp, shape_in=(8, 8, 1))
    x = nengodl.Layer(neuron_type)(x)
    x = nengodl.Layer(keras.layers.Conv2D(32, 3, strides=2))(x, shape_in=(6, 6, 16))
    x = nengodl.Layer(neuron_type)(x)
    out = nengodl.Layer(keras.layers.Dense(10))(x)
    out_p = nengo.Probe(out, label="out")
    out_p_filt = nengo.Probe(out, synapse=0.01, label="out_filtered")

with nengodl.Simulator(net, minibatch_size=64, seed=0) as sim:
    sim.compile(
        optimizer=keras.optimizers.Adam(0.002),
        loss={out_p: keras.losses.CategoricalCrossentropy(from_logits=True)},
    )
    sim.fit({inp: x_train}, {out_p: y_train}, epochs=EPOCHS)

    # evaluate spiking: show each test digit for 30 steps
    n_steps = 30
    pred = sim.predict({inp: np.tile(x_test, (1, n_steps, 1))})
    spiking_out = pred[out_p_filt]
    accuracy = np.mean(np.argmax(spiking_out[:, -1], axis=-1) == y_test)
    print(f"Spiking test accuracy: {100 * accuracy:.1f}%")

fig, axes = plt.subplots(2, 4, figsize=(14, 6))
for i in range(4):
    axes[0, i].imshow(x_test[i, 0].reshape(8, 8), cmap="gray")
    axes[0, i].set_title(f"label {y_test[i]}")
    axes[0, i].axis("off")
    axes[1, i].plot(np.arange(1, n_steps + 1) * sim.dt, spiking_out[i])
    axes[1, i].set_xlabel("time (s)")
    axes[1, i].legend([str(d) for d in range(10)], fontsize=6, ncol=2)
plt.tight_layout()
path = os.path.join(OUT, "spiking_digits.png")
plt.savefig(path)
print("saved", path)
