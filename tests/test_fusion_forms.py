"""Forms chosen so that XLA fuses more of the loop: overlapping increments as
sums of slices (nengodl.views), folded sums (nengodl.ops.basic) and the clock
advanced outside the loop's step (nengodl.runtime), against numpy and
nengo.Simulator with each switch on and off."""

import nengo
import numpy as np
import pytest
import tensorflow as tf
from nengo.builder import Signal

import nengodl
import nengodl.ops.basic
import nengodl.views
from nengodl.benchmarks.networks import integrator
from nengodl.options import Options
from nengodl.views import ViewPlan, apply_writes


def numpy_writes(flat, writes):
    out = flat.copy()
    for idx, value, inc in writes:
        if inc:
            out[:, idx] += value
        else:
            out[:, idx] = value
    return out


@pytest.mark.parametrize("slice_sums", [True, False])
@pytest.mark.parametrize(
    "views",
    [
        [slice(0, 6), slice(0, 6), slice(12, 18)],  # duplicates, contiguous (the integrator's)
        [slice(2, 9), slice(5, 14), slice(0, 20)],  # partial overlaps and the whole signal
        [slice(3, 4), slice(3, 4), slice(3, 4)],  # one element three times
        [slice(0, 10), [9, 1, 4], slice(8, 12)],  # with a gathered view
    ],
)
def test_overlapping_increments_match_numpy(rng, slice_sums, views):
    base = Signal(np.zeros(20), name="base")
    flat = rng.uniform(-1, 1, size=(3, 20))
    group, writes = [], []
    for view in views:
        plan = ViewPlan(base, np.array(view)) if isinstance(view, list) else ViewPlan(base[view])
        value = rng.uniform(-1, 1, size=(3, plan.size))
        group.append((plan, value, True))
        writes.append((np.arange(20)[view], value, True))
    out = apply_writes(flat, group, 20, sums=slice_sums)
    np.testing.assert_allclose(out.numpy(), numpy_writes(flat, writes), rtol=1e-12)


@pytest.mark.parametrize("make", ["cheap", "exp", "sum"])
def test_slice_sums_keep_only_costly_increments(rng, make):
    """Increments that XLA recomputes cheaply are not kept (two kernels saved);
    those made with an exp or a sum are; the sums are right either way."""
    import tensorflow as tf

    base = Signal(np.zeros(12), name="base")
    plans = [ViewPlan(base[0:6]), ViewPlan(base[3:9])]
    flat = rng.uniform(-1, 1, size=(2, 12))
    raw = [rng.uniform(-1, 1, size=(2, 6)) for _ in plans]
    form = {
        "cheap": lambda x: 2 * x + 1,
        "exp": tf.exp,
        "sum": lambda x: tf.reduce_sum(x[:, :, None] * tf.ones((1, 1, 3), x.dtype), axis=2),
    }[make]
    kept = []

    @tf.function
    def writes(flat, a, b):
        group = [(plan, form(v), True) for plan, v in zip(plans, (a, b))]
        keep = lambda x: kept.append(x) or x
        return nengodl.views.slice_sums(flat, group, 12, keep)

    out = writes(flat, *raw).numpy()
    values = [{"cheap": 2 * v + 1, "exp": np.exp(v), "sum": 3 * v}[make] for v in raw]
    expected = numpy_writes(
        flat, [(np.arange(0, 6), values[0], True), (np.arange(3, 9), values[1], True)]
    )
    np.testing.assert_allclose(out, expected, rtol=1e-12)
    assert len(kept) == (make != "cheap")


@pytest.mark.parametrize("slice_sums", [True, False])
def test_integrator_with_and_without_slice_sums_matches_nengo(monkeypatch, slice_sums):
    # the integrator's synapse input gets the stimulus and the recurrent value
    # added to the same elements: an increment with duplicate indices
    used = []
    original = nengodl.views.slice_sums
    monkeypatch.setattr(
        nengodl.views, "slice_sums", lambda *args: used.append(1) or original(*args)
    )
    net = integrator(4, 20, nengo.LIF())
    with net:
        probes = [nengo.Probe(ens, synapse=0.01) for ens in net.all_ensembles[:3]]
    with nengo.Simulator(net, progress_bar=False) as ref:
        ref.run_steps(200)
    with nengodl.Simulator(
        net,
        dtype="float64",
        progress_bar=False,
        optimize=False,  # (merged steps increment repeated elements in one write)
        options=Options(slice_sums=slice_sums, xla_after_steps=0),
    ) as sim:
        sim.run_steps(200)
    assert bool(used) == slice_sums
    for p in probes + [net.probe]:
        np.testing.assert_allclose(sim.data[p], ref.data[p], atol=1e-10, rtol=0)


@pytest.mark.parametrize("fold_width", [32, None])
@pytest.mark.parametrize("jit", [True, False])
def test_folded_decoding_sums_match_nengo(monkeypatch, fold_width, jit):
    # 64 neurons fold once; 75 fold twice (75 -> 38 -> 19) with odd middles
    widths = []
    original = nengodl.ops.basic.last_axis_sum
    monkeypatch.setattr(
        nengodl.ops.basic,
        "last_axis_sum",
        lambda ctx, x: widths.append((ctx.xla, x.shape[-1])) or original(ctx, x),
    )
    with nengo.Network(seed=1) as net:
        # ensembles of one size have their decoders merged into one block-sparse product
        stim = nengo.Node(lambda t: [np.sin(8 * t), np.cos(5 * t), np.sin(3 * t), -t])
        ens = [nengo.Ensemble(n, 1) for n in (64, 64, 75, 75)]
        out = nengo.Node(size_in=4)
        for k, e in enumerate(ens):
            nengo.Connection(stim[k], e)
            nengo.Connection(e, out[k], synapse=None)
        probe = nengo.Probe(out)
    with nengo.Simulator(net, progress_bar=False) as ref:
        ref.run_steps(300)
    options = Options(fold_width=fold_width, xla_after_steps=0)
    with nengodl.Simulator(
        net, dtype="float64", jit=jit, progress_bar=False, options=options
    ) as sim:
        sim.run_steps(300)
    assert (jit, 75) in widths and (jit, 64) in widths  # the decoders' sums went through it
    assert np.abs(ref.data[probe]).max() > 0.5
    np.testing.assert_allclose(sim.data[probe], ref.data[probe], atol=1e-10, rtol=0)


@pytest.mark.parametrize("outside", [True, False])
def test_clock_outside_the_step_matches_nengo(outside):
    """Where nothing in the loop reads the time, the step leaves the clock out
    and each XLA call advances it: probes, the time and the step count are
    nengo's after runs of several lengths (chunks of 1024 steps included)."""
    net = integrator(4, 20, nengo.LIF())
    with net:
        stim = nengo.Node(lambda t: np.sin(10 * t))  # computed ahead of each run
        nengo.Connection(stim, net.all_ensembles[0].neurons, transform=np.ones((20, 1)))
    with nengo.Simulator(net, progress_bar=False) as ref:
        ref.run_steps(1500)
        clock = ref.signals[ref.model.step], ref.signals[ref.model.time], ref.time
    options = Options(clock_outside=outside, xla_after_steps=0)
    with nengodl.Simulator(net, dtype="float64", progress_bar=False, options=options) as sim:
        assert sim.loop.clock_outside == outside
        sim.run_steps(1100)
        sim.step()
        sim.run_steps(399)
        np.testing.assert_allclose(sim.data[net.probe], ref.data[net.probe], atol=1e-10, rtol=0)
        assert clock[0] == 1500
        assert (sim.signals[sim.model.step], sim.signals[sim.model.time], sim.time) == clock


def test_clock_read_in_the_loop_stays_in_the_step():
    """A TensorNode reads the time in the loop: the step advances the clock."""
    with nengo.Network(seed=0) as net:
        node = nengodl.TensorNode(
            lambda t: tf.reshape(t, (1, 1)) * tf.ones((1, 2), t.dtype),
            shape_in=None,
            shape_out=(2,),
            pass_time=True,
        )
        probe = nengo.Probe(node)
    with nengodl.Simulator(net, dtype="float64", progress_bar=False) as sim:
        assert not sim.loop.clock_outside
        sim.run_steps(30)
    np.testing.assert_allclose(sim.data[probe][:, 0], 0.001 * np.arange(1, 31), rtol=1e-12)
