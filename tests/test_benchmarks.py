"""The benchmark networks and command line."""

import nengo
import numpy as np
import pytest

import nengodl
from nengodl.benchmarks import NETWORKS, first_result
from nengodl.benchmarks.__main__ import main


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_network_matches_nengo(name):
    net = NETWORKS[name](4, 16, nengo.LIF())
    with nengo.Simulator(net, progress_bar=False) as ref:
        ref.run_steps(100)
    with nengodl.Simulator(net, progress_bar=False, dtype="float64") as sim:
        assert sim.jit  # every benchmark runs without Python in the loop
        sim.run_steps(100)
    assert np.abs(ref.data[net.probe]).max() > 0  # the probed signal is not silent
    np.testing.assert_allclose(sim.data[net.probe], ref.data[net.probe], atol=1e-9)


def test_command_line_prints_a_row_per_simulator(capsys):
    main(
        [
            "--networks",
            "integrator",
            "--dimensions",
            "2",
            "--neurons-per-d",
            "8",
            "--minibatch",
            "1",
            "3",
            "--steps",
            "20",
        ]
    )
    lines = capsys.readouterr().out.splitlines()
    rows = [line.split() for line in lines[1:-1]]
    assert [r[:3] for r in rows] == [
        ["integrator", "1", "nengo"],
        ["integrator", "1", "nengodl"],
        ["integrator", "3", "nengodl"],
    ]
    assert all(float(r[-1]) > 0 for r in rows)
    assert lines[-1].startswith("peak memory:")


def test_first_result_runs_each_simulator_in_fresh_processes(capsys):
    first_result.main(
        [
            "--networks",
            "integrator",
            "--dimensions",
            "2",
            "--neurons-per-d",
            "8",
            "--steps",
            "20",
            "--repeats",
            "1",
            "--minibatch",
            "1",
            "2",
        ]
    )
    lines = capsys.readouterr().out.splitlines()
    rows = [line.split() for line in lines[1:]]
    assert [r[:3] for r in rows] == [
        ["integrator", "1", "nengo"],
        ["integrator", "1", "nengodl"],
        ["integrator", "2", "nengodl"],
    ]
    assert rows[0][-1] == "1.00"
    # one process each: median, fastest and slowest are its one time
    assert all(0 < float(r[3]) == float(r[4]) == float(r[5]) for r in rows)


def test_switch_flags_set_their_options(capsys):
    from nengodl.benchmarks.__main__ import SWITCHES, options_from, parser

    p = parser("test", {"integrator": None})
    for flag, _, _, text in SWITCHES:
        p.add_argument(flag, action="store_true", help=text)
    options = options_from(p.parse_args([flag for flag, _, _, _ in SWITCHES]))
    assert options == nengodl.options.Options(
        **{option: value for _, option, value, _ in SWITCHES}
    )
    assert options_from(p.parse_args([])) == nengodl.options.Options()
    main(
        [
            "--networks",
            "integrator",
            "--dimensions",
            "1",
            "--neurons-per-d",
            "4",
            "--minibatch",
            "1",
            "--steps",
            "5",
            "--repeats",
            "1",
        ]
        + [flag for flag, _, _, _ in SWITCHES]
    )
    assert "nengodl" in capsys.readouterr().out


def test_fit_epochs_prints_nengodl_and_keras_per_epoch(capsys):
    from nengodl.benchmarks import fit_epochs

    fit_epochs.main(["--epochs", "1", "--repeats", "1", "--items", "64", "--batch", "16"])
    lines = capsys.readouterr().out.splitlines()
    rows = [line.split() for line in lines[2:]]
    assert [r[0] for r in rows] == ["no", "yes"]
    for row in rows:
        ours, theirs, ratio = map(float, row[1:])
        assert ours > 0 and theirs > 0
        np.testing.assert_allclose(ratio, ours / theirs, rtol=0.02)


def test_applications_prints_a_row_per_network_equal_to_keras(capsys):
    from nengodl.benchmarks import applications

    applications.main(["--models", "MobileNetV2", "--size", "32", "--batch", "1"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["model", "layers", "fallback"]
    (row,) = [line.split() for line in lines[1:]]
    assert row[0] == "MobileNetV2" and row[2] == "0"  # every layer native
    assert float(row[5]) < 1e-4  # the largest difference, relative to Keras's largest output
    times = [float(v) for v in row[6:8] + row[9:11]]
    assert all(t > 0 for t in times)  # nengodl and Keras, first and second call
    # the ratio of the first calls (seconds: one and two decimals printed)
    np.testing.assert_allclose(float(row[8]), times[0] / times[1], rtol=0.1)


def test_scale_prints_nengodl_against_nengo_per_model(capsys):
    from nengodl.benchmarks import scale

    scale.main(["--models", "ens:10", "--steps", "50", "--nengo-unoptimized", "ens:10"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["model", "plan", "build"]
    (row,) = [line.split() for line in lines[1:]]
    assert row[0] == "ens:10*" and int(row[1]) > 0  # * nengo ran with optimize=False
    values = [float(v) for v in row[2:]]
    assert len(values) == 8 and all(v > 0 for v in values)
    # nengo's process imports nengo alone: nengodl's (with TensorFlow) holds more
    assert values[7] > 1
