"""The examples run end to end and say what they should."""

import os
import subprocess
import sys

import pytest

EXAMPLES = os.path.join(os.path.dirname(__file__), os.pardir, "examples")


@pytest.mark.parametrize("script", ["from_nengo.py", "spiking_digits.py"])
def test_example_runs(script, tmp_path):
    env = dict(
        os.environ, NENGODL_PLOTS=str(tmp_path), TF_CPP_MIN_LOG_LEVEL="2", NENGODL_EPOCHS="5"
    )
    out = subprocess.run(
        [sys.executable, os.path.join(EXAMPLES, script)],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    pngs = [f for f in os.listdir(tmp_path) if f.endswith(".png")]
    assert len(pngs) >= (5 if script == "from_nengo.py" else 1)
    if script == "spiking_digits.py":
        accuracy = float(out.stdout.split("Spiking test accuracy: ")[1].split("%")[0])
        assert accuracy >= 60
    if script == "from_nengo.py":
        improvement = float(out.stdout.split("Improvement: ")[1].split("%")[0])
        assert improvement >= 20
