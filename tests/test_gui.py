"""nengodl as nengo-gui's backend (``nengo -b nengodl model.py``).

nengo-gui's server runs on 127.0.0.1 at a free port in this process; the test
talks to it as a browser does: the page request (which executes the model file
and its .cfg of plots), then websockets to the sim control (play) and to the
plots (their data). The model's ``on_step`` hook pauses the simulation every
``STEPS`` steps, so that each backend runs exactly the same steps; what the
plots receive from nengodl must equal what they receive from nengo.Simulator.
"""

import struct
import textwrap
import time

import numpy as np
import pytest

components = pytest.importorskip("nengo_gui.components")

from nengodl.benchmarks.gui_harness import OP_BINARY, GuiSession  # noqa: E402

STEPS = 150  # steps per round
ROUNDS = 2
DT = 0.001
N_VOLTAGE = 5  # nengo-gui's Voltage plot shows 5 neurons

MODEL = f"""\
import numpy as np
import nengo

model = nengo.Network(seed=3)
with model:
    stim = nengo.Node(lambda t: np.sin(10 * t))
    ens = nengo.Ensemble(30, 1)
    nengo.Connection(stim, ens)


def on_step(sim):
    # nengo-gui calls this after each step: pause every {STEPS} steps
    if sim is not None and sim.n_steps % {STEPS} == 0:
        __page__.get_component(nengo_gui.components.SimControl).paused = True
"""

CFG = """\
_viz_value = nengo_gui.components.Value(ens)
_viz_voltage = nengo_gui.components.Voltage(ens)
_viz_raster = nengo_gui.components.Raster(ens)
"""


def frames_until(client, t_end, time_of, timeout=120.0):
    """The binary frames from ``client`` until one whose time (``time_of``) reaches
    ``t_end``, and any that follow at once (the rest of the same update)."""
    frames = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        item = client.read_frame(deadline - time.monotonic())
        if item is None:
            break
        if item[0] == OP_BINARY:
            frames.append(item[1])
            if time_of(item[1]) >= t_end - DT / 4:
                return frames + client.binary_frames(quiet=0.2)
    raise AssertionError(f"no plot data up to t={t_end} within {timeout} s")


def first_time(frame):
    return struct.unpack_from("<f", frame)[0]


def plot_data(session, n_steps):
    """What the Value, Voltage and Raster plots' websockets deliver up to step
    ``n_steps``: ``(t, x)`` rows, ``(t, voltages)`` rows and ``(t, spiking neuron
    indices)``."""
    t_end = n_steps * DT
    value, voltage, raster = [], [], []
    client = session.connect(session.component(components.Value))
    # a Value frame holds all the rows pending, each (t, x): the last time is 8 bytes in
    for frame in frames_until(client, t_end, lambda f: struct.unpack_from("<f", f, len(f) - 8)[0]):
        value.extend(struct.iter_unpack("<2f", frame))
    client = session.connect(session.component(components.Voltage))
    for frame in frames_until(client, t_end, first_time):
        row = struct.unpack(f"<{1 + N_VOLTAGE}f", frame)
        # nengo-gui offsets neuron i's voltage by i, to stack the traces
        voltage.append((row[0], *(np.array(row[1:]) - np.arange(N_VOLTAGE))))
    client = session.connect(session.component(components.Raster))
    for frame in frames_until(client, t_end, first_time):
        n = (len(frame) - 4) // 2
        t, *idx = struct.unpack(f"<f{n}H", frame)
        raster.append((t, tuple(idx)))
    return np.array(value), np.array(voltage), raster


def run_gui(filename, backend):
    """Run ``ROUNDS`` rounds of ``STEPS`` steps in nengo-gui; for each round the
    simulator's step count, the plots' data and the number of the voltage
    probe's raw samples left after the plot read them."""
    rounds = []
    with GuiSession(str(filename), backend) as session:
        control = session.connect(session.sim_control)
        for _ in range(ROUNDS):
            session.run_until_paused(control)
            sim = session.page.sim
            value, voltage, raster = plot_data(session, sim.n_steps)
            # the Voltage plot reads sim.data.raw[probe] and clears it
            left = len(sim.data.raw[session.component(components.Voltage).probe])
            rounds.append((sim.n_steps, value, voltage, raster, left))
            for client in session.clients[1:]:
                client.close()  # reconnected when paused, so no read races a step
            del session.clients[1:]
        assert session.page.error is None
    return rounds


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gui")
    (folder / "model.py").write_text(MODEL)
    (folder / "model.py.cfg").write_text(textwrap.dedent(CFG))
    return folder / "model.py"


@pytest.fixture(scope="module")
def nengo_rounds(model_file):
    return run_gui(model_file, "nengo")


# float64: the same numbers as nengo; float32 (the default) keeps the built parameters
# in float32, which moves the voltages by ~1e-6
@pytest.mark.parametrize("dtype, atol", [("float32", 2e-5), ("float64", 0)])
def test_plots_in_nengo_gui_match_nengo(model_file, nengo_rounds, dtype, atol, monkeypatch):
    monkeypatch.setenv("NENGODL_DTYPE", dtype)
    ref = nengo_rounds
    got = run_gui(model_file, "nengodl")

    # a plot Node can be called in the step that the pause holds, so the value and
    # raster rows are compared by their time over all rounds
    r_values, g_values = (np.concatenate([r[1] for r in rounds]) for rounds in (ref, got))
    r_spikes, g_spikes = ([row for r in rounds for row in r[3]] for rounds in (ref, got))
    for k, (r, g) in enumerate(zip(ref, got)):
        lo, hi = k * STEPS * DT, (k + 1) * STEPS * DT
        eps = DT / 4
        assert r[0] == g[0] == (k + 1) * STEPS  # paused after each round's steps
        assert r[4] == g[4] == 0  # the Voltage plot emptied sim.data.raw[probe]

        # the voltage plot: exactly this round's steps (raw data cleared and recorded on)
        r_volt, g_volt = r[2], g[2]
        np.testing.assert_allclose(
            g_volt[:, 0], DT * np.arange(k * STEPS + 1, (k + 1) * STEPS + 1), rtol=1e-6
        )
        np.testing.assert_array_equal(r_volt[:, 0], g_volt[:, 0])
        np.testing.assert_allclose(g_volt[:, 1:], r_volt[:, 1:], rtol=0, atol=atol)
        assert np.ptp(g_volt[:, 1:]) > 0.5  # voltages move

        # the value plot (decoded, filtered): the round's steps (t=0 comes from
        # nengo checking the plot's Node function, before the first round)
        def window(rows, lo=lo, hi=hi, eps=eps):
            return rows[(rows[:, 0] > lo + eps) & (rows[:, 0] < hi + eps)]

        r_val, g_val = window(r_values), window(g_values)
        assert len(g_val) == len(r_val) == STEPS
        np.testing.assert_allclose(g_val, r_val, rtol=0, atol=atol)
        assert np.max(np.abs(g_val[:, 1])) > 0.3  # follows the sine input

        # the raster: the same neurons spike at the same steps
        r_sp = [row for row in r_spikes if lo + eps < row[0] < hi + eps]
        g_sp = [row for row in g_spikes if lo + eps < row[0] < hi + eps]
        assert len(g_sp) == STEPS
        assert g_sp == r_sp
        assert sum(len(idx) for _, idx in g_sp) > 10


def test_gui_speed_command_prints_a_row_per_simulator(capsys):
    from nengodl.benchmarks import gui_speed

    rows = gui_speed.main(["--models", "03", "--repeats", "1", "--window", "0.5"])
    name = "03-many-neurons"
    assert [row[:2] for row in rows] == [(name, "nengo"), (name, "nengodl")]
    for _, _, build, real_time, steps, _ in rows:
        assert build > 0 and real_time > 0 and steps > 0
    assert rows[1][5] == pytest.approx(rows[1][4] / rows[0][4])
    assert f"| {name} | nengodl |" in capsys.readouterr().out

    rows = gui_speed.main(["--models", "03", "--direct", "--repeats", "3"])
    ((direct_name, nengo_rate, nengodl_rate, ratio),) = rows
    assert direct_name == name and nengo_rate > 0 and nengodl_rate > 0
    assert ratio == pytest.approx(nengodl_rate / nengo_rate)
