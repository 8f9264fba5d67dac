"""XLA programs shared between simulators whose loops trace to the same graph."""

import keras
import nengo
import numpy as np
import pytest
import tensorflow as tf

import nengodl
from nengodl.options import Options
from nengodl.runtime.programs import EPOCHS, PROGRAMS, ProgramCache, fingerprint


def chain(seed, n_neurons=30):
    with nengo.Network(seed=seed) as net:
        stim = nengo.Node(lambda t: np.sin(5 * t))
        a = nengo.Ensemble(n_neurons, 1)
        b = nengo.Ensemble(20, 1)
        nengo.Connection(stim, a)
        nengo.Connection(a, b, function=np.square)
        p = nengo.Probe(b, synapse=0.01)
    return net, p


def run_both(net, p, options=None, minibatch_size=None):
    """nengodl's and nengo's probe data for 120 steps (in runs of 7 and 113)."""
    with nengo.Simulator(net, progress_bar=False) as ref:
        ref.run_steps(120)
    with nengodl.Simulator(
        net,
        dtype="float64",
        minibatch_size=minibatch_size,
        options=Options(xla_after_steps=0) if options is None else options,
        progress_bar=False,
    ) as sim:
        sim.run_steps(7)
        sim.run_steps(113)
        got = sim.data[p] if minibatch_size is None else sim.data[p][-1]
    return got, ref.data[p]


@pytest.mark.parametrize("minibatch_size", [None, 4])
def test_models_built_again_with_other_parameters_share_one_program(minibatch_size):
    before = len(PROGRAMS)
    for seed in [1, 2, 3]:  # other encoders, gains, decoders: the same program
        got, want = run_both(*chain(seed), minibatch_size=minibatch_size)
        np.testing.assert_allclose(got, want, atol=1e-10, rtol=0)
        # one new program for the first simulator (the cache may have been
        # full, dropping one: it never grows by more than one per structure)
        assert len(PROGRAMS) <= before + 1
    # a model of another shape traces to another program
    other = chain(1, n_neurons=31 if minibatch_size is None else 32)[0]
    with nengodl.Simulator(other, minibatch_size=minibatch_size, progress_bar=False) as sim:
        sim.run_steps(3)
    assert len(PROGRAMS) == min(before + 2, Options().shared_programs)


def test_no_sharing_with_shared_programs_0():
    before = len(PROGRAMS)
    net, p = chain(4, n_neurons=17)  # a shape no other test uses
    got, want = run_both(net, p, options=Options(xla_after_steps=0, shared_programs=0))
    np.testing.assert_allclose(got, want, atol=1e-10, rtol=0)
    assert len(PROGRAMS) == before


def specs():
    return [tf.TensorSpec([3], tf.float32)]


def test_two_traces_of_one_program_have_one_fingerprint():
    def f(x):
        return tf.while_loop(lambda i, y: i < 3, lambda i, y: (i + 1, y * 2.0 + 1.0), (0, x))[1]

    first = tf.function(f).get_concrete_function(*specs())
    second = tf.function(f).get_concrete_function(*specs())
    assert first.name != second.name  # each trace is named anew
    assert fingerprint(first) is not None
    assert fingerprint(first) == fingerprint(second)
    other = tf.function(lambda x: f(x) + 1.0).get_concrete_function(*specs())
    assert fingerprint(other) != fingerprint(first)


def test_functions_with_captures_or_state_are_not_shared():
    v = tf.Variable(tf.ones(3))
    captured = tf.function(lambda x: x * v).get_concrete_function(*specs())
    constant = tf.constant([1.0, 2.0, 3.0])
    captured_constant = tf.function(lambda x: x * constant).get_concrete_function(*specs())
    random = tf.function(lambda x: x * tf.random.uniform([3])).get_concrete_function(*specs())
    cache = ProgramCache()
    for concrete in [captured, captured_constant, random]:
        assert fingerprint(concrete) is None
        assert cache.share(concrete, 4) is concrete
    assert len(cache) == 0


def test_the_cache_keeps_the_most_recently_used():
    fns = [
        tf.function(lambda x, k=k: x * float(k)).get_concrete_function(*specs()) for k in range(3)
    ]
    again = [
        tf.function(lambda x, k=k: x * float(k)).get_concrete_function(*specs()) for k in range(3)
    ]
    cache = ProgramCache()
    cache.share(fns[0], 2)
    cache.share(fns[1], 2)
    assert cache.share(again[0], 2) is fns[0]  # used: fns[1] is now the oldest
    cache.share(fns[2], 2)
    assert len(cache) == 2
    assert cache.share(again[1], 2) is again[1]  # dropped, so kept anew (fns[0] goes)
    assert cache.share(again[2], 2) is fns[2]
    assert cache.share(again[0], 2) is again[0]
    assert cache.share(again[1], 0) is again[1]


def test_variables_as_arguments_are_shared_and_each_call_updates_its_own():
    def f(vs, x):
        vs[0].assign_add(x * vs[1])
        return vs[0].read_value()

    a = [tf.Variable(1.0), tf.Variable(2.0)]
    b = [tf.Variable(10.0), tf.Variable(3.0)]
    first = tf.function(f).get_concrete_function(a, tf.constant(1.0))
    second = tf.function(f).get_concrete_function(b, tf.constant(1.0))
    assert fingerprint(first) is None  # updates variables: only shared when asked
    assert fingerprint(first, variables=True) == fingerprint(second, variables=True)
    cache = ProgramCache()
    assert cache.share(first, 4, variables=True) is first
    shared = cache.share(second, 4, variables=True)
    assert shared is first
    np.testing.assert_allclose(shared(b, tf.constant(1.0)), 13.0)
    assert (a[0].numpy(), b[0].numpy()) == (1.0, 13.0)
    # a variable read from outside (captured) is never shared
    c = tf.Variable(5.0)
    captures = tf.function(lambda vs, x: vs[0].assign_add(x * c)).get_concrete_function(
        a, tf.constant(1.0)
    )
    assert fingerprint(captures, variables=True) is None


def training_net(seed):
    with nengo.Network(seed=seed) as net:
        stim = nengo.Node(np.zeros(2))
        a = nengo.Ensemble(40, 2, neuron_type=nengo.LIF())
        b = nengo.Node(size_in=2)
        nengo.Connection(stim, a, synapse=None)
        conn = nengo.Connection(a, b, synapse=0.01)
        p = nengo.Probe(b)
    return net, stim, p, conn


class Training:
    """A simulator of `training_net` compiled and fit: ``fit()`` trains it on."""

    def __init__(self, seed, shared_epochs):
        net, self.stim, self.p, self.conn = training_net(seed)
        self.x = np.random.RandomState(seed).uniform(-1, 1, size=(8, 5, 2))
        self.sim = nengodl.Simulator(
            net,
            minibatch_size=4,
            dtype="float64",
            options=Options(shared_epochs=shared_epochs),
            progress_bar=False,
        )
        self.opt = keras.optimizers.Adam(0.01 * seed)  # Adam: state per variable
        self.sim.compile(self.opt, loss={self.p: "mse"})
        self.fit(3)

    def fit(self, epochs):
        self.sim.fit(
            {self.stim: self.x}, {self.p: -self.x}, epochs=epochs, shuffle=False, verbose=0
        )

    def result(self):
        """The trained decoders and the optimizer's step count."""
        return self.sim.data[self.conn].weights.copy(), int(self.opt.iterations.numpy())


def train_three(shared_epochs):
    """Three simulators of one model trained in turn, then the first again."""
    runs = [Training(seed, shared_epochs) for seed in (1, 2, 3)]
    runs[0].fit(1)  # through the program the others used, on its own state
    results = [run.result() for run in runs]
    for run in runs:
        run.sim.close()
    return results


def test_simulators_of_one_model_share_one_training_epoch_program():
    """Simulators of one model (other parameters, learning rates) train through
    one traced epoch (and XLA program), each on its own variables and optimizer
    state: what each gets is what it gets with nothing shared."""
    before = len(EPOCHS)
    shared = train_three(4)
    grown = len(EPOCHS) - before
    assert grown <= 1  # one epoch program for the three (the cache may drop one)
    alone = train_three(0)
    assert len(EPOCHS) == before + grown
    for (got, steps), (want, want_steps) in zip(shared, alone):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
        assert steps == want_steps
    assert [steps for _, steps in shared] == [8, 6, 6]  # 2 minibatches an epoch
    # other learning rates and parameters trained to other values
    assert not np.allclose(shared[0][0], shared[1][0])
