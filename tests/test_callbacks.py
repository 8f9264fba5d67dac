"""nengodl.callbacks: NengoSummaries, TensorBoard and IsolateState.

Event files are read back with TensorBoard's own reader and compared with the
values ``sim.data`` reports after each epoch (recorded by a separate callback)
and with the ``History`` that `fit` returns.
"""

import keras
import nengo
import numpy as np
import pytest
import tensorflow as tf
from nengo.exceptions import ValidationError
from tensorboard.backend.event_processing import event_accumulator

import nengodl
from nengodl.callbacks import IsolateState, NengoSummaries, TensorBoard
from nengodl.training.keras_model import SimulatorModel

N_EPOCHS = 3


def read_events(path):
    """``{tag: [(step, array), ...]}`` of the tensor summaries under ``path``."""
    acc = event_accumulator.EventAccumulator(
        str(path), size_guidance={event_accumulator.TENSORS: 0}
    )
    acc.Reload()
    return {
        tag: [(e.step, tf.make_ndarray(e.tensor_proto)) for e in acc.Tensors(tag)]
        for tag in acc.Tags()["tensors"]
    }


def check_histogram(buckets, values):
    """A TensorBoard histogram ``(k, 3)`` (left edge, right edge, count) holds ``values``."""
    values = np.asarray(values, dtype=np.float64).ravel()
    left, right, counts = buckets.T
    assert counts.sum() == values.size
    assert left[0] == values.min()
    assert right[-1] == values.max()
    # closed-open buckets of equal width between min and max (the last one closed)
    expected, _ = np.histogram(
        values, bins=np.linspace(values.min(), values.max(), len(counts) + 1)
    )
    np.testing.assert_array_equal(counts, expected)
    # the sum is within half a bucket width of each value's bucket centre
    centres = (left + right) / 2
    assert abs(np.sum(centres * counts) - values.sum()) <= np.sum(counts * (right - left) / 2)


def make_net(seed=0):
    with nengo.Network(seed=seed) as net:
        inp = nengo.Node(np.zeros(2), label="inp")
        # gains and rates of order 1: every parameter trains at a similar rate
        ens = nengo.Ensemble(
            20,
            2,
            neuron_type=nengo.RectifiedLinear(),
            gain=nengo.dists.Uniform(0.5, 2),
            bias=nengo.dists.Uniform(-0.5, 0.5),
            label="my ens",
        )
        conn_in = nengo.Connection(inp, ens, transform=[[1.0, 0.5], [-0.5, 1.0]], synapse=None)
        out = nengo.Node(size_in=2)
        conn_out = nengo.Connection(ens, out, synapse=None)
        p = nengo.Probe(out, label="out")
    return net, inp, ens, conn_in, conn_out, p


def data(inp, p, n=4, n_steps=3, seed=0):
    rng = np.random.RandomState(seed)
    x = rng.uniform(-1, 1, size=(n, n_steps, 2))
    return {inp: x}, {p: -x[:, :, ::-1]}  # a target the initial decoders do not give


class Record(keras.callbacks.Callback):
    """Copies of the given readers' values at the end of each epoch."""

    def __init__(self, readers):
        super().__init__()
        self.readers = readers
        self.values = []

    def on_epoch_end(self, epoch, logs=None):
        self.values.append({k: np.array(read()) for k, read in self.readers.items()})


def test_nengo_summaries_histograms_are_sim_data_each_epoch(tmp_path):
    net, inp, ens, conn_in, conn_out, p = make_net()
    with nengodl.Simulator(net, progress_bar=False) as sim:
        initial = {
            "encoders": sim.data[ens].encoders.copy(),
            "bias": sim.data[ens].bias.copy(),
            "in": sim.data[conn_in].weights.copy(),
            "out": sim.data[conn_out].weights.copy(),
        }
        record = Record(
            {
                "encoders": lambda: sim.data[ens].encoders,
                "bias": lambda: sim.data[ens].bias,
                "in": lambda: sim.data[conn_in].weights,
                "out": lambda: sim.data[conn_out].weights,
            }
        )
        summaries = NengoSummaries(tmp_path, sim, [ens, ens.neurons, conn_in, conn_out])
        sim.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
        x, y = data(inp, p)
        sim.fit(x, y, epochs=N_EPOCHS, verbose=0, callbacks=[summaries, record])

    tags = {
        "encoders": "Ensemble_my_ens_encoders",
        "bias": "Ensemble.neurons_my_ens_bias",
        "in": "Connection_None_weights",
        "out": "Connection_None_weights_1",
    }
    assert summaries.tags == list(tags.values())
    events = read_events(tmp_path)
    assert sorted(events) == sorted(tags.values())
    for key, tag in tags.items():
        assert [step for step, _ in events[tag]] == list(range(N_EPOCHS))
        for (_, buckets), values in zip(events[tag], record.values):
            check_histogram(buckets, values[key])
        # the values logged are the trained ones: they changed from epoch to epoch
        assert np.abs(record.values[0][key] - initial[key]).max() > 1e-3
        assert np.abs(record.values[-1][key] - record.values[0][key]).max() > 1e-3


def test_nengo_summaries_new_event_file_per_fit(tmp_path):
    net, inp, ens, _, _, p = make_net()
    with nengodl.Simulator(net, progress_bar=False) as sim:
        summaries = NengoSummaries(tmp_path, sim, ens.neurons)  # one object, not a list
        sim.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
        x, y = data(inp, p)
        for _ in range(2):
            sim.fit(x, y, epochs=2, verbose=0, callbacks=[summaries])
        final = sim.data[ens].bias.copy()
    files = sorted(tmp_path.glob("events.out.tfevents*"))
    assert len(files) == 2
    last = read_events(files[-1])["Ensemble.neurons_my_ens_bias"]
    assert [step for step, _ in last] == [0, 1]
    check_histogram(last[-1][1], final)


def test_nengo_summaries_tags_as_nengo_dl_3():
    with nengo.Network() as net:
        a = nengo.Node([0])
        b = nengo.Ensemble(10, 1)
        c = nengo.Connection(a, b, transform=1)
        d = nengo.Ensemble(10, 1, label="a/b:c")
    with nengodl.Simulator(net, progress_bar=False) as sim:
        summaries = NengoSummaries("unused", sim, [b, b.neurons, c, d, b])
    # NengoDL 3.6's names for unlabelled objects; other characters become "_"
    assert summaries.tags == [
        "Ensemble_None_encoders",
        "Ensemble.neurons_None_bias",
        "Connection_None_weights",
        "Ensemble_a_b_c_encoders",
        "Ensemble_None_encoders_1",
    ]


def test_nengo_summaries_sparse_connection_logs_stored_values(tmp_path):
    with nengo.Network() as net:
        a = nengo.Node([1.0, 2.0])
        b = nengo.Node(size_in=3)
        sparse = nengo.Sparse((3, 2), indices=[[0, 0], [2, 1], [1, 1]], init=[1.5, -2.0, 0.25])
        c = nengo.Connection(a, b, transform=sparse, synapse=None)
        nengo.Connection(a, b, transform=np.ones((3, 2)), synapse=None)  # something to train
        nengo.Probe(b)
    with nengodl.Simulator(net, progress_bar=False) as sim:
        summaries = NengoSummaries(tmp_path, sim, [c])
        sim.compile(optimizer=keras.optimizers.SGD(0.0), loss="mse")
        sim.fit(
            np.ones((1, 1, 2)), np.zeros((1, 1, 3)), epochs=1, verbose=0, callbacks=[summaries]
        )
    ((_, buckets),) = read_events(tmp_path)["Connection_None_weights"]
    check_histogram(buckets, [1.5, -2.0, 0.25])


def test_nengo_summaries_refuses_bad_objects():
    with nengo.Network() as net:
        a = nengo.Node([0], label="node a")
        b = nengo.Ensemble(10, 1, label="ens b")
        no_weights = nengo.Connection(a, b)
        direct = nengo.Ensemble(1, 1, neuron_type=nengo.Direct(), label="direct d")
        p = nengo.Probe(b, label="probe p")
    with nengo.Network():
        other = nengo.Ensemble(10, 1, label="other e")
        other_probe = nengo.Probe(other)
    with nengodl.Simulator(net, progress_bar=False) as sim:
        cases = [
            (a, "Unknown summary object.*node a.*Ensemble, Neurons, Connection or Probe"),
            (no_weights, "does not have any weights to log"),
            (direct, "direct d.*Direct neurons.*no encoders"),
            (direct.neurons, "direct d.*Direct neurons.*no biases"),
            (other, "other e.*not in this simulator's network"),
            (other.neurons, "other e.*not in this simulator's network"),
        ]
        for obj, match in cases:
            with pytest.raises(ValidationError, match=match) as info:
                NengoSummaries("unused", sim, [b, obj])
            assert info.value.attr == "objects"
        with pytest.raises(ValidationError) as info:
            NengoSummaries("unused", sim, [no_weights])
        assert str(no_weights) in str(info.value)  # the message names the object
        with pytest.raises(ValidationError, match="probe p.*`x`.*`n_steps`") as info:
            NengoSummaries("unused", sim, [b, p])  # a probe's values need a run
        assert info.value.attr == "n_steps"
        with pytest.raises(ValidationError, match="not in this simulator's network"):
            NengoSummaries("unused", sim, [other_probe], n_steps=5)
        # the run's data are checked when the callback is made, not mid-fit
        with pytest.raises(ValidationError, match=r"node a.*\(batch_size, n_steps, 1\)"):
            NengoSummaries("unused", sim, [p], x={a: np.zeros((1, 5, 2))})
        with pytest.raises(ValidationError, match="n_steps"):
            NengoSummaries("unused", sim, [p], n_steps=0)


def test_nengo_summaries_log_probed_activities_as_nengo_runs_them(tmp_path):
    """A Probe of neurons logs their spikes in a run of the trained network:
    after the last epoch, the spikes nengo.Simulator gives with the trained
    parameters (frozen into the network)."""
    with nengo.Network(seed=1) as net:
        inp = nengo.Node(np.zeros(1))
        ens = nengo.Ensemble(20, 1, neuron_type=nengo.LIF())
        nengo.Connection(inp, ens, synapse=None)
        p = nengo.Probe(ens)
        spikes = nengo.Probe(ens.neurons, label="spikes")
    x = np.linspace(-1, 1, 4)[:, None, None] * np.ones((1, 30, 1))
    with nengodl.Simulator(net, minibatch_size=4, dtype="float64", progress_bar=False) as sim:
        summaries = NengoSummaries(tmp_path, sim, [ens.neurons, spikes], x={inp: x})
        # a large step, so that the spikes change from epoch to epoch
        sim.compile(optimizer=keras.optimizers.SGD(20.0), loss={p: "mse"})
        sim.fit({inp: x}, {p: -x}, epochs=2, verbose=0, callbacks=[summaries])
        assert sim.n_steps == 0  # the runs that logged probes left no trace
        sim.freeze_params(net)
    assert summaries.tags == ["Ensemble.neurons_None_bias", "Probe_spikes_output"]
    events = read_events(tmp_path)["Probe_spikes_output"]
    assert [step for step, _ in events] == [0, 1]
    want = []
    for item in x[:, 0, 0]:
        inp.output = [item]
        with nengo.Simulator(net, progress_bar=False) as ref:
            ref.run_steps(30)
        want.append(ref.data[spikes])
    assert np.ptp(want) > 0  # spikes and silence
    check_histogram(events[-1][1], want)
    assert not np.array_equal(events[0][1], events[-1][1])  # trained from epoch to epoch


def test_tensorboard_epoch_scalars_are_history(tmp_path):
    net, inp, ens, conn_in, conn_out, p = make_net()
    with net:
        nengodl.configure_settings(trainable=None)
    net.config[conn_in].trainable = False
    with nengodl.Simulator(net, progress_bar=False) as sim:
        tb = TensorBoard(log_dir=tmp_path, histogram_freq=2)
        sim.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
        x, y = data(inp, p)
        vx, vy = data(inp, p, n=2, seed=1)
        record = Record(
            {
                "encoders": lambda: sim.data[ens].encoders,
                "bias": lambda: sim.data[ens].bias,
                "out": lambda: sim.data[conn_out].weights,
            }
        )
        history = sim.fit(
            x, y, epochs=N_EPOCHS, verbose=0, validation_data=(vx, vy), callbacks=[tb, record]
        )
    train = read_events(tmp_path / "train")
    for name in ("loss", "out_loss"):
        steps, values = zip(*train[f"epoch_{name}"])
        assert steps == tuple(range(N_EPOCHS))
        np.testing.assert_allclose(values, history.history[name], rtol=1e-6)
    np.testing.assert_allclose([v for _, v in train["epoch_learning_rate"]], 0.05, rtol=1e-6)
    val = read_events(tmp_path / "validation")
    np.testing.assert_allclose(
        [v for _, v in val["epoch_loss"]], history.history["val_loss"], rtol=1e-6
    )
    # histograms of the trainable parameters (not conn_in's), every second epoch
    tags = {
        "encoders": "Ensemble_my_ens_encoders/histogram",
        "bias": "Ensemble.neurons_my_ens_bias/histogram",
        "out": "Connection_None_weights/histogram",
    }
    assert sorted(t for t in train if t.endswith("/histogram")) == sorted(tags.values())
    for key, tag in tags.items():
        assert [step for step, _ in train[tag]] == [0, 2]
        for step, buckets in train[tag]:
            check_histogram(buckets, record.values[step][key])


def profiled_events(logdir):
    """``[(name, start_ps, end_ps, step_num)]`` of every event of the one profile
    under ``logdir``, read as an XSpace (the profiler's own format)."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    (path,) = (logdir / "plugins" / "profile").glob("*/*.xplane.pb")
    space = xplane_pb2.XSpace.FromString(path.read_bytes())
    events = []
    for plane in space.planes:
        names = {k: m.name for k, m in plane.event_metadata.items()}
        stat_names = {k: m.name for k, m in plane.stat_metadata.items()}
        for line in plane.lines:
            for e in line.events:
                start = line.timestamp_ns * 1000 + e.offset_ps
                step = [
                    getattr(s, s.WhichOneof("value"))
                    for s in e.stats
                    if stat_names.get(s.metadata_id) == "step_num"
                ]
                name = names.get(e.metadata_id, "")
                events.append((name, start, start + e.duration_ps, step[0] if step else None))
    return events


def ops_within(events, batch):
    """Names of the events that ran inside the ``batch`` event."""
    return [name for name, start, end, _ in events if batch[1] <= start and end <= batch[2]]


def test_tensorboard_profiles_training_and_prediction(tmp_path):
    net, inp, _, _, _, p = make_net()
    with nengodl.Simulator(net, progress_bar=False) as sim:
        sim.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        x, y = data(inp, p)
        sim.fit(x, y, verbose=0, callbacks=[TensorBoard(tmp_path / "fit", profile_batch=2)])
        # the profile holds one training batch (Keras counts profile_batch from 1: the
        # batch of index 1), and in it a backward pass and one SGD update per parameter
        events = profiled_events(tmp_path / "fit" / "train")
        (batch,) = [e for e in events if e[0] == "Profiled batch"]
        assert batch[3] == 1
        ran = ops_within(events, batch)
        n_params = len(sim.loop.trainable)
        assert n_params == 4  # encoders, biases and the two connections' weights
        assert len([n for n in ran if n.endswith(":AssignSubVariableOp")]) == n_params
        assert any("gradient_tape/" in n for n in ran)

        # prediction, through Keras' callback protocol (as Model.predict calls it)
        tb = TensorBoard(tmp_path / "predict", profile_batch=(1, 2))
        cbs = keras.callbacks.CallbackList([tb], model=SimulatorModel(sim))
        cbs.on_predict_begin()
        for b in range(3):
            cbs.on_predict_batch_begin(b)
            outputs = sim.predict_on_batch({inp: x[inp][:1]})
            cbs.on_predict_batch_end(b, {"outputs": outputs[p]})
        cbs.on_predict_end()
    path = tmp_path / "predict" / "train"
    assert "batch_2" in read_events(path)  # the trace of batches 1-2, named as Keras names it
    # two prediction batches ran TensorFlow ops ("name:type"), with no gradient and
    # no update
    events = profiled_events(path)
    batches = [e for e in events if e[0] == "Profiled batch"]
    assert len(batches) == 2
    for batch in batches:
        ran = ops_within(events, batch)
        assert any(":" in n for n in ran)
        assert not any("gradient_tape/" in n or "AssignSub" in n for n in ran)


class RunEachEpoch(keras.callbacks.Callback):
    """A callback changing the simulator's state: it runs 3 steps per epoch."""

    def __init__(self, sim):
        super().__init__()
        self.sim = sim

    def on_epoch_end(self, epoch, logs=None):
        self.sim.run_steps(3)


def fit_with(sim, inp, p, callbacks):
    sim.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
    x, y = data(inp, p)
    sim.fit(x, y, epochs=2, verbose=0, callbacks=callbacks, seed=0)  # same shuffling


def test_isolate_state_keeps_state_and_training(tmp_path):
    net, inp, _, _, conn_out, p = make_net()
    with net:
        inp.output = lambda t: [np.sin(10 * t), np.cos(10 * t)]  # a state that changes
    net.probes[0].synapse = 0.02  # the probe filters: its synapse state is state
    with nengodl.Simulator(net, progress_bar=False) as control:
        control.run_steps(7)
        fit_with(control, inp, p, [RunEachEpoch(control)])
        assert control.n_steps == 13  # without IsolateState, the callback's steps count

    with nengodl.Simulator(net, progress_bar=False) as sim:
        initial = sim.data[conn_out].weights.copy()
        sim.run_steps(7)
        n_steps, time, probed = sim.n_steps, sim.time, sim.data[p].copy()
        signals = {k: np.array(sim.signals[k]) for k in sim.signals}
        iso = IsolateState(sim)
        fit_with(sim, inp, p, [RunEachEpoch(sim), iso])

        assert sim.n_steps == n_steps and sim.time == time
        np.testing.assert_array_equal(sim.data[p], probed)
        for key, value in signals.items():
            if key in sim.loop.params or key in sim.loop.pinned:
                continue  # trained parameters are not state
            np.testing.assert_array_equal(sim.signals[key], value, err_msg=str(key))
        # training happened and was kept, as it was without IsolateState
        trained = sim.data[conn_out].weights
        assert np.abs(trained - initial).max() > 1e-3
        np.testing.assert_allclose(trained, control.data[conn_out].weights, rtol=1e-6)

        # running on continues from the kept state with the trained weights: as a
        # simulator that ran 7 steps and then loaded the trained parameters
        sim.save_params(tmp_path / "trained")
        sim.run_steps(5)
        with nengodl.Simulator(net, progress_bar=False) as ref:
            ref.run_steps(7)
            ref.load_params(tmp_path / "trained")
            ref.run_steps(5)
            np.testing.assert_allclose(sim.data[p], ref.data[p], rtol=1e-6, atol=1e-7)


def test_isolate_state_from_the_start_and_per_batch():
    net, _, _, _, _, p = make_net()
    with nengodl.Simulator(net, progress_bar=False) as sim:
        iso = IsolateState(sim)  # made before any step: time 0, no probe data
        cbs = keras.callbacks.CallbackList([iso], model=SimulatorModel(sim))
        for begin, batch_end, end in (
            (cbs.on_predict_begin, cbs.on_predict_batch_end, cbs.on_predict_end),
            (cbs.on_test_begin, cbs.on_test_batch_end, cbs.on_test_end),
        ):
            begin()
            for b in range(2):
                sim.run_steps(4)  # a batch that changes the state
                assert sim.n_steps == 4
                batch_end(b)
                assert sim.n_steps == 0 and sim.data[p].shape == (0, 2)
            sim.run_steps(2)
            end()
            assert sim.n_steps == 0 and sim.time == 0 and len(sim.data[p]) == 0
        sim.run_steps(3)
        with nengodl.Simulator(net, progress_bar=False) as ref:
            ref.run_steps(3)
            np.testing.assert_allclose(sim.data[p], ref.data[p])


class RunEachTestBatch(keras.callbacks.Callback):
    """A callback changing the simulator's state during `evaluate`."""

    def __init__(self, sim):
        super().__init__()
        self.sim = sim

    def on_test_batch_end(self, batch, logs=None):
        self.sim.run_steps(2)


def test_isolate_state_and_tensorboard_in_evaluate(tmp_path):
    net, inp, _, _, _, p = make_net()
    x, y = data(inp, p)
    with nengodl.Simulator(net, progress_bar=False) as sim:
        sim.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
        sim.evaluate(x, y, verbose=0, callbacks=[RunEachTestBatch(sim)])
        assert sim.n_steps == 2 * len(x[inp])  # the control: the state changed

    with nengodl.Simulator(net, progress_bar=False) as sim:
        sim.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
        sim.run_steps(5)
        probed = sim.data[p].copy()
        tb = TensorBoard(tmp_path)
        logs = sim.evaluate(
            x, y, verbose=0, callbacks=[RunEachTestBatch(sim), IsolateState(sim), tb]
        )
        assert sim.n_steps == 5
        np.testing.assert_array_equal(sim.data[p], probed)
    # Keras' evaluation summary, at the optimizer's iteration count (0: no training yet)
    ((step, value),) = read_events(tmp_path / "validation")["evaluation_loss_vs_iterations"]
    assert step == 0
    np.testing.assert_allclose(value, logs["loss"], rtol=1e-6)


def test_tensorboard_histograms_of_keras_layer_weights(tmp_path):
    with nengo.Network(seed=0) as net:
        a = nengo.Node(np.zeros(3))
        dense = keras.layers.Dense(4, name="dense")  # (default names count up per process)
        p = nengo.Probe(nengodl.Layer(dense)(a))
    with nengodl.Simulator(net, progress_bar=False) as sim:
        sim.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        before = dense.kernel.numpy().copy()
        sim.fit(
            {a: np.ones((2, 1, 3))},
            {p: np.ones((2, 1, 4))},
            verbose=0,
            callbacks=[TensorBoard(tmp_path, histogram_freq=1)],
        )
        kernel, bias = dense.kernel.numpy(), dense.bias.numpy()
    assert np.abs(kernel - before).max() > 1e-3  # trained, so the logged values are the new ones
    train = read_events(tmp_path / "train")
    check_histogram(train["dense/kernel/histogram"][0][1], kernel)
    check_histogram(train["dense/bias/histogram"][0][1], bias)
