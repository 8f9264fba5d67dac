"""The planner: merged steps whose number does not grow with the model, packed
signals, and results equal to nengo's."""

import pickle

import nengo
import numpy as np
import pytest
import tensorflow as tf
from nengo.builder import Signal
from nengo.builder.operator import Copy, DotInc, Reset

import nengodl
from nengodl.benchmarks.scale import ensembles, spa_model
from nengodl.ops.registry import OpBuilder
from nengodl.options import Options
from nengodl.planner import merge_groups, operator_order, pack_signals
from nengodl.signals import MAX_SLICES, SignalLayout, StepContext


def kinds_of_steps(sim):
    return sorted(type(obj).__name__ for _, _, obj in sim.plan.steps)


@pytest.mark.parametrize("nengo_merge_ops", [0, Options().nengo_merge_ops])
def test_step_count_does_not_grow_with_the_number_of_ensembles(nengo_merge_ops):
    """ens:50 and ens:500 (2.5k and 25k neurons) run a step or so of each kind
    of operator, with the planner alone and with nengo's merger first on models
    small enough for it (ens:50); without merging, a step per operator."""
    plans = {}
    for n in (50, 500):
        options = Options(nengo_merge_ops=nengo_merge_ops)
        with nengodl.Simulator(ensembles(n), progress_bar=False, options=options) as sim:
            plans[n] = kinds_of_steps(sim)
            assert len(sim.plan.layout.state_bases) < 20  # a tensor per role, not per signal
    if nengo_merge_ops == 0:
        assert plans[50] == plans[500]
    assert len(plans[50]) <= 12 and len(plans[500]) <= 12
    with nengodl.Simulator(ensembles(50), progress_bar=False, optimize=False) as sim:
        assert len(sim.plan.steps) > 40 * 12


@pytest.mark.parametrize(
    "make", [lambda: ensembles(30), lambda: spa_model(16)], ids=["ens:30", "spa:16"]
)
def test_merged_and_packed_model_equals_nengo_in_float64(make):
    net = make()
    with nengo.Simulator(net, progress_bar=False) as ref:
        ref.run_steps(150)
    with nengodl.Simulator(net, progress_bar=False, dtype="float64") as sim:
        merged = [obj for _, _, obj in sim.plan.steps if len(getattr(obj, "ops", ())) > 1]
        assert merged, "nothing was merged"
        sim.run_steps(150)
    np.testing.assert_allclose(sim.data[net.probe], ref.data[net.probe], rtol=0, atol=1e-10)


def continued(sim, steps=60):
    sim.run_steps(steps)
    return sim.data[sim.model.probes[0]][-steps:]


def test_packed_order_round_trips_through_params_files_and_pickles(tmp_path):
    """The packed layout is the same in every build of a network, so the state
    saved by one simulator continues in another, and in an unpickled copy."""
    net = ensembles(20)
    with nengodl.Simulator(net, progress_bar=False, dtype="float64") as a:
        a.run_steps(40)
        a.save_params(tmp_path / "p", include_state=True)
        copy = pickle.loads(pickle.dumps(a))
        expected = continued(a)
    with nengodl.Simulator(net, progress_bar=False, dtype="float64") as b:
        assert b.plan.fingerprint() == a.plan.fingerprint()
        b.load_params(tmp_path / "p", include_state=True)
        np.testing.assert_array_equal(continued(b), expected)
    with copy:
        assert copy.plan.fingerprint() == a.plan.fingerprint()
        np.testing.assert_array_equal(continued(copy), expected)


N_COPIES = OpBuilder.merge_min  # the fewest that merge


def small_model():
    """Copies of independent signals, a reset and one product."""
    model = nengo.builder.Model(dt=0.001)
    xs = [Signal(np.arange(3.0) + k, name=f"x{k}") for k in range(N_COPIES)]
    ys = [Signal(np.zeros(3), name=f"y{k}") for k in range(N_COPIES)]
    z = Signal(np.zeros(2), name="z")
    ops = [Copy(x, y) for x, y in zip(xs, ys)]
    ops += [Reset(z), DotInc(Signal(np.ones((2, 3)), name="A"), ys[0], z)]
    for op in ops:
        model.add_op(op)
    return model, ops, xs, ys


def test_merge_groups_join_independent_operators_only():
    model, ops, _, _ = small_model()
    dg = nengo.utils.simulator.operator_dependency_graph(ops)
    ordered, merged = merge_groups(operator_order(ops, dg), dg, model.dt)
    copies, (reset, product) = ops[:N_COPIES], ops[N_COPIES:]
    assert merged[copies[0]] == copies  # the copies are independent
    assert product not in merged  # the product reads y0, which a copy sets
    position = {op: k for k, op in enumerate(ordered)}
    assert position[product] > position[copies[0]] and position[product] > position[reset]
    # fewer than merge_min copies stay apart
    few = ops[: N_COPIES - 1]
    dg = nengo.utils.simulator.operator_dependency_graph(few)
    assert merge_groups(operator_order(few, dg), dg, model.dt)[1] == {}


def test_packing_keeps_every_signal_and_its_initial_value():
    model, ops, _, _ = small_model()
    before = {op: [s.initial_value.copy() for s in op.all_signals] for op in ops}
    dg = nengo.utils.simulator.operator_dependency_graph(ops)
    ordered, merged = merge_groups(operator_order(ops, dg), dg, model.dt)
    assert pack_signals(model, ordered, merged) == 2 * N_COPIES  # the xs and the ys
    for op in ops:
        for sig, value in zip(op.all_signals, before[op]):
            np.testing.assert_array_equal(sig.initial_value, value)
    ys_now = [op.dst for op in ops[:N_COPIES]]
    assert len({s.base for s in ys_now}) == 1
    assert [s.elemoffset for s in ys_now] == list(range(0, 3 * N_COPIES, 3))  # copies' order


@pytest.mark.parametrize("many", [False, True], ids=["slices", "gather"])
def test_joined_increments_of_repeated_elements_add_up(many):
    """One write of a merged step that increments some elements several times
    (two connections into one ensemble) adds every increment: as sums of
    slices where the views make a few runs, by a segment sum where many."""
    base = Signal(np.zeros(5), name="b")
    if many:
        starts = np.random.RandomState(0).randint(0, 4, size=MAX_SLICES + 4)
    else:
        starts = [1, 2, 0, 2]
    views = [base[k : k + 2] for k in starts]
    model = nengo.builder.Model(dt=0.001)
    layout = SignalLayout(model, [Reset(base)], [], [], tf.float64)
    assert (layout.joined_plans(views)[0][0][1].indices is not None) == many
    inc = np.arange(1.0, 1.0 + 4 * len(views)).reshape(2, -1)
    start = np.arange(10.0).reshape(2, 5)

    @tf.function
    def step():
        ctx = StepContext(layout, {base: tf.constant(start)}, {}, 0.001, 2)
        ctx.write_many(views, tf.constant(inc), inc=True)
        return ctx.base_value(base), ctx.read_many([base[3:5], base[0:1]])[0]

    written, joined = step()
    expected = start.copy()
    for k, v in enumerate(views):
        idx = np.arange(v.elemoffset, v.elemoffset + 2)
        np.add.at(expected, (slice(None), idx), inc[:, 2 * k : 2 * k + 2])
    np.testing.assert_allclose(written.numpy(), expected, rtol=1e-15)
    np.testing.assert_array_equal(joined.numpy(), expected[:, [3, 4, 0]])
