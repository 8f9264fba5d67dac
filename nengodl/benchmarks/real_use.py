"""``python -m nengodl.benchmarks.real_use``: the costs users meet outside long runs.

Four figures, nengodl against nengo.Simulator in one run (timed runs alternate
between the two), and one of nengodl alone:

- ``step``: milliseconds per `Simulator.step` call on a warm simulator
  (2 x 50 LIF neurons fed by a Python Node), what nengo-gui and closed-loop
  control code do;
- ``new length``: seconds a warm simulator (run for 10 steps) takes beyond
  the steps themselves when asked for a run length it has not run before (17,
  33, 100, 257 and 1000 steps; the worst is shown);
- ``30 sims``: MiB the process grows while 30 simulators are built, run
  for 100 steps and closed, after one warm-up simulator (in a fresh process
  each);
- ``30 trained``: the same for 30 simulators that each ``compile`` and
  ``fit`` (two epochs of two minibatches; nengodl only: no target yet);
- ``unroll 25``: seconds and peak MiB of a fresh process that builds
  ``Node(np.sin) -> Ensemble(10)`` with ``unroll_simulation=25`` and runs it
  for 50 steps (killed above ``--memory-limit`` MiB), and what it costs beyond
  the same with ``unroll_simulation=1`` (a process that has loaded TensorFlow
  holds about 700 MiB before it builds anything).
"""

import argparse
import gc
import json
import subprocess
import sys
import time

import nengo
import numpy as np


def two_ensembles():
    """The ``step`` network: a Python Node into 50 LIF neurons into 50 more."""
    with nengo.Network(seed=0) as net:
        stim = nengo.Node(np.sin)
        a = nengo.Ensemble(50, 1)
        b = nengo.Ensemble(50, 1)
        nengo.Connection(stim, a)
        nengo.Connection(a, b)
        nengo.Probe(b, synapse=0.01)
    return net


def make(kind, net, **kwargs):
    """A simulator of ``kind`` (``"nengo"`` or ``"nengodl"``)."""
    if kind == "nengo":
        return nengo.Simulator(net, progress_bar=False)
    import nengodl

    return nengodl.Simulator(net, progress_bar=False, **kwargs)


def step_ms(sims, calls=500, repeats=5):
    """Best milliseconds per `step` call of each simulator, alternating."""
    best = [float("inf")] * len(sims)
    for sim in sims:
        for _ in range(20):
            sim.step()
    for _ in range(repeats):
        for k, sim in enumerate(sims):
            t0 = time.perf_counter()
            for _ in range(calls):
                sim.step()
            best[k] = min(best[k], (time.perf_counter() - t0) / calls * 1e3)
    return best


def new_length_s(sims, lengths=(17, 33, 100, 257, 1000)):
    """Worst extra seconds of a first run of each length, over its rerun."""
    for sim in sims:
        sim.run_steps(10)
    worst = [0.0] * len(sims)
    for n in lengths:
        for k, sim in enumerate(sims):
            t0 = time.perf_counter()
            sim.run_steps(n)
            first = time.perf_counter() - t0
            t0 = time.perf_counter()
            sim.run_steps(n)
            again = time.perf_counter() - t0
            worst[k] = max(worst[k], first - again)
    return worst


def rss_mib():
    """Resident memory of this process, MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def rss_growth(one, n):
    """MiB this process grows over ``n`` calls of ``one``, after one warm-up call."""
    one()
    gc.collect()
    before = rss_mib()
    for _ in range(n):
        one()
    gc.collect()
    return rss_mib() - before


def many_sims(kind, n=30):
    """MiB grown by building, running and closing ``n`` simulators."""
    net = two_ensembles()

    def one():
        sim = make(kind, net)
        sim.run_steps(100)
        sim.close()

    return rss_growth(one, n)


def many_trained(n=30, jit=True):
    """MiB grown by building, training (``compile`` and ``fit``) and closing
    ``n`` nengodl simulators."""
    import keras

    net = two_ensembles()
    stim, probe = net.nodes[0], net.probes[0]
    x = np.zeros((8, 10, stim.size_out))
    y = np.zeros((8, 10, probe.size_in))

    def one():
        with make("nengodl", net, minibatch_size=4, jit=jit) as sim:
            sim.compile(keras.optimizers.SGD(0.01), "mse")
            sim.fit({stim: x}, {probe: y}, epochs=2, verbose=0)

    return rss_growth(one, n)


def unrolled(unroll=25, steps=50):
    """Seconds to build and run the ``unroll 25`` model (nengodl)."""
    with nengo.Network(seed=0) as net:
        stim = nengo.Node(np.sin)
        ens = nengo.Ensemble(10, 1)
        nengo.Connection(stim, ens)
        p = nengo.Probe(ens, synapse=0.01)
    t0 = time.perf_counter()
    with make("nengodl", net, unroll_simulation=unroll) as sim:
        sim.run_steps(steps)
    assert sim.data[p].shape == (steps, 1)
    return time.perf_counter() - t0


def child(task, *args):
    """Run ``task`` of this module in a fresh process; its result, peak MiB, or
    None (and the peak so far) when it runs out of time or memory."""
    code = (
        "import json, resource, sys; from nengodl.benchmarks import real_use as r; "
        f"out = r.{task}(*{args!r}); "
        "peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024; "
        "print(json.dumps([out, peak]))"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    peak, start = 0.0, time.perf_counter()
    while proc.poll() is None:
        try:
            with open(f"/proc/{proc.pid}/status") as f:
                rss = [int(x.split()[1]) / 1024 for x in f if x.startswith("VmRSS:")]
            peak = max([peak] + rss)
        except OSError:
            pass
        if peak > ARGS.memory_limit or time.perf_counter() - start > ARGS.time_limit:
            proc.kill()
            proc.wait()
            return None, peak
        time.sleep(0.05)
    out, child_peak = json.loads(proc.stdout.read().strip().splitlines()[-1])
    return out, max(peak, child_peak)


ARGS = argparse.Namespace(memory_limit=3000, time_limit=120)


def main(argv=None):
    """Print the figures (see the module's docstring)."""
    global ARGS
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--memory-limit", type=float, default=3000, help="MiB, for `unroll 25`")
    p.add_argument("--time-limit", type=float, default=120, help="seconds per fresh process")
    ARGS = p.parse_args(argv)

    print(f"{'figure':12s} {'nengo':>10s} {'nengodl':>10s} {'ratio':>7s}  target", flush=True)
    net = two_ensembles()
    sims = [make("nengo", net), make("nengodl", net)]
    ref, got = step_ms(sims)
    print(f"{'step ms':12s} {ref:10.4f} {got:10.4f} {got / ref:7.2f}  <= 2x nengo", flush=True)
    ref, got = new_length_s(sims)
    print(f"{'new length s':12s} {ref:10.4f} {got:10.4f} {'':>7s}  <= 0.05 s", flush=True)
    for sim in sims:
        sim.close()
    (ref, _), (got, _) = child("many_sims", "nengo"), child("many_sims", "nengodl")
    print(f"{'30 sims MiB':12s} {ref:10.1f} {got:10.1f} {'':>7s}  <= 30 MiB", flush=True)
    got, _ = child("many_trained")
    print(f"{'30 trained':12s} {'-':>10s} {got:10.1f} {'':>7s}  MiB (no target yet)", flush=True)
    (base, base_peak), (seconds, peak) = child("unrolled", 1), child("unrolled", 25)
    shown = "killed" if seconds is None else f"{seconds:.1f} s"
    print(
        f"{'unroll 25':12s} {'-':>10s} {shown:>10s} {'':>7s}  peak {peak:.0f} MiB, "
        f"{peak - base_peak:+.0f} MiB and {(seconds or float('nan')) - base:+.1f} s on "
        f"unroll 1 (target < 500 MiB, seconds)",
        flush=True,
    )


if __name__ == "__main__":
    main()
