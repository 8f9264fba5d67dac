"""How costs grow with model size: nengo and nengodl side by side, fresh processes.

``python -m nengodl.benchmarks.scale`` builds each model in a new Python process
per simulator, alternating nengo.Simulator and nengodl ``--repeats`` times, and
prints per model: nengodl's plan steps, the build (the simulator's
constructor), the first result (constructor plus the first ``run(0.1)``,
compilation included; the import of nengo, nengodl and TensorFlow excluded),
the steady steps per second (a further run of ``--steps`` steps, after one
of the same length that compiles its program) and the
process's peak resident memory, each nengodl's figure with its ratio to
nengo's (medians over the repeats). Models:

- ``ens:N``: N ensembles of 50 LIF neurons (1-D), each fed by two random others
  with random transforms and synapse 0.01, a tenth of them also by a WhiteSignal
  Node;
- ``spa:D``: a nengo-spa model of dimension D (States, a circular-convolution
  binding, a memory with feedback, a WTA associative memory, action selection);
- ``mobilenet``: keras.applications' MobileNetV2 (alpha 0.35, 64x64 inputs,
  random weights), converted by ``nengodl.Converter(inference_only=True)``; its
  "first result" is the constructor plus one step (an image), and its steady run
  five steps (nengo's numpy convolutions take seconds per step).

With ``--nengo-dl3 PYTHON``, NengoDL 3 (in its own environment) is timed on
the ``ens:N`` models too.

nengo's operator merger takes hours on the largest models (its time grows
faster than the number of operators): there nengo.Simulator runs with
``optimize=False`` (``--nengo-unoptimized``), marked ``*``.

nengo's decoder cache is off in every process: with it, whichever simulator
built a model first would solve the decoders that the others then read from
disk.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time


def ensembles(n, seed=0):
    """The ``ens:N`` model (see the module's docstring)."""
    import nengo
    import numpy as np

    rng = np.random.RandomState(seed)
    with nengo.Network(seed=seed) as net:
        stim = nengo.Node(nengo.processes.WhiteSignal(1.0, high=5, seed=seed))
        ens = [nengo.Ensemble(50, 1) for _ in range(n)]
        for i, e in enumerate(ens):
            for j in rng.choice(n, 2, replace=False):
                nengo.Connection(ens[j], e, transform=rng.uniform(-1, 1), synapse=0.01)
            if i % 10 == 0:
                nengo.Connection(stim, e)
        net.probe = nengo.Probe(ens[0], synapse=0.01)
    return net


def spa_model(dimensions, seed=0):
    """The ``spa:D`` model (see the module's docstring)."""
    import nengo
    import nengo_spa as spa

    with spa.Network(seed=seed) as model:
        a, b, c = spa.State(dimensions), spa.State(dimensions), spa.State(dimensions)
        a.vocab.populate("A; B; C")
        a * b >> c
        memory = spa.State(a.vocab, feedback=1.0)
        c >> memory
        clean = spa.WTAAssocMem(0.3, a.vocab, mapping=["A", "B", "C"])
        memory >> clean
        spa.sym.A >> a
        with spa.ActionSelection():
            spa.ifmax(spa.dot(a, spa.sym.A), spa.sym.B >> b)
            spa.ifmax(spa.dot(a, spa.sym.B), spa.sym.C >> b)
        model.probe = nengo.Probe(clean.output, synapse=0.01)
    return model


def mobilenet():
    """The ``mobilenet`` model: the converted network."""
    import keras

    import nengodl

    model = keras.applications.MobileNetV2(
        input_shape=(64, 64, 3), alpha=0.35, weights=None, classes=10
    )
    conv = nengodl.Converter(model, inference_only=True)
    conv.net.probe = conv.outputs[model.output]
    return conv.net


def build(name):
    """The network of model ``name`` (``ens:N``, ``spa:D`` or ``mobilenet``)."""
    kind, _, size = name.partition(":")
    if kind == "ens":
        return ensembles(int(size))
    if kind == "spa":
        return spa_model(int(size))
    if kind == "mobilenet":
        return mobilenet()
    raise ValueError(f"unknown model {name!r}: expected ens:N, spa:D or mobilenet")


def child(simulator, name, steps, optimize=True):
    """Measure one simulator of one model in this process; print a JSON row."""
    import nengo

    nengo.rc["decoder_cache"]["enabled"] = "False"  # every build solves its decoders
    if simulator == "nengodl":
        import nengodl as backend  # imported (with TensorFlow) before the clock starts
    elif simulator == "nengo_dl3":
        import nengo_dl as backend

    net = build(name)
    start = time.perf_counter()
    if simulator == "nengo":
        sim = nengo.Simulator(net, progress_bar=False, optimize=optimize)
    else:
        sim = backend.Simulator(net, progress_bar=False)
    built = time.perf_counter() - start
    first_steps = 1 if name == "mobilenet" else 100
    steps = min(steps, 5) if name == "mobilenet" else steps
    with sim:
        sim.run_steps(first_steps)
        first = time.perf_counter() - start
        if simulator != "nengo":
            sim.run_steps(steps)  # compiles the program of this run length
        start = time.perf_counter()
        sim.run_steps(steps)
        per_s = steps / (time.perf_counter() - start)
        plan_steps = len(sim.plan.steps) if simulator == "nengodl" else None
    peak = peak_mib()
    row = dict(build=built, first=first, steps_per_s=per_s, peak_mib=peak, plan=plan_steps)
    print(json.dumps(row))


def peak_mib():
    """This process's peak resident memory in MiB: ``VmHWM`` where Linux gives it
    (``ru_maxrss`` keeps the parent's peak across ``exec``), else ``ru_maxrss``."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 1024 if sys.platform != "darwin" else rss / 2**20


def run_child(simulator, name, steps, optimize=True, python=None):
    """One child process's row. The file runs as a script, so that nengo's
    process imports nengo alone (the nengodl package would import TensorFlow);
    ``python`` is the interpreter (default: this one)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    if python is None:
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    cmd = [python or sys.executable, os.path.abspath(__file__), "--child", simulator, name]
    cmd += ["--steps", str(steps), "--nengo-unoptimized"] + ([] if optimize else [name])
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode:
        raise RuntimeError(f"{simulator} on {name} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def median(rows, key):
    """The median of ``key`` over ``rows``."""
    return statistics.median(r[key] for r in rows)


def main(argv=None):
    """Print the table (see ``--help``)."""
    p = argparse.ArgumentParser(
        prog="python -m nengodl.benchmarks.scale", description=__doc__.splitlines()[0]
    )
    p.add_argument(
        "--models",
        nargs="+",
        default=["ens:100", "ens:1000", "ens:5000", "spa:64", "spa:256", "spa:512", "mobilenet"],
        help="ens:N, spa:D or mobilenet",
    )
    p.add_argument("--steps", type=int, default=1000, help="steps of the timed steady run")
    p.add_argument("--repeats", type=int, default=1, help="processes per simulator")
    p.add_argument(
        "--nengo-unoptimized",
        nargs="*",
        default=["ens:5000", "spa:512"],
        help="models on which nengo.Simulator runs with optimize=False (its merger "
        "would take hours), marked * in the table",
    )
    p.add_argument(
        "--nengo-dl3",
        metavar="PYTHON",
        help="also time NengoDL 3 on the ens:N models, with this Python (of an "
        'environment with nengo-dl==3.6.0 "tensorflow==2.12.*" nengo==3.2.0); its rows '
        "follow nengodl's, with ratios to nengo's",
    )
    p.add_argument("--child", nargs=2, help=argparse.SUPPRESS)  # simulator, model
    args = p.parse_args(argv)
    if args.child:
        return child(*args.child, args.steps, args.child[1] not in args.nengo_unoptimized)
    print(
        f"{'model':<11}{'plan':>6}{'build s':>9}{'ratio':>7}{'first s':>9}{'ratio':>7}"
        f"{'steps/s':>9}{'ratio':>7}{'peak MiB':>10}{'ratio':>7}",
        flush=True,
    )
    for name in args.models:
        rows = {"nengo": [], "nengodl": []}
        if args.nengo_dl3 and name.startswith("ens:"):
            rows["nengo_dl3"] = []
        for _ in range(args.repeats):
            for simulator in rows:  # alternating
                optimize = simulator != "nengo" or name not in args.nengo_unoptimized
                python = args.nengo_dl3 if simulator == "nengo_dl3" else None
                rows[simulator].append(run_child(simulator, name, args.steps, optimize, python))

        mark = "*" if name in args.nengo_unoptimized else ""
        for simulator in [s for s in rows if s != "nengo"]:
            label = name + mark if simulator == "nengodl" else "(NengoDL 3)"
            plan = rows[simulator][0]["plan"]
            cells = [f"{label:<11}{'' if plan is None else plan:>6}"]
            for key, fmt in (("build", ".2f"), ("first", ".2f"), ("steps_per_s", ".0f")):
                ours, theirs = median(rows[simulator], key), median(rows["nengo"], key)
                cells.append(f"{ours:>9{fmt}}{ours / theirs:>7.2f}")
            ours, theirs = median(rows[simulator], "peak_mib"), median(rows["nengo"], "peak_mib")
            cells.append(f"{ours:>10.0f}{ours / theirs:>7.2f}")
            print("".join(cells), flush=True)


if __name__ == "__main__":
    main()
