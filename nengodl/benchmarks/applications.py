"""Converted keras.applications networks against Keras: native layers, equality, time.

``python -m nengodl.benchmarks.applications`` builds each network with random
weights (``weights=None``, 10 classes without the final softmax, so that the
logits are compared; ``--size`` pixels square), converts it
with ``nengodl.Converter(model, inference_only=True)`` and predicts
``--batch`` images with ``nengodl.Simulator(net, minibatch_size=batch)
.predict_on_batch`` and with ``model.predict``. Each network runs in a fresh
process (nengodl's and Keras's runs in turn, in that process), so that
neither shares traced functions with the other or with another network. It
prints, per network: Keras layers, layers that fell back to TensorNodes, plan
steps, whether XLA runs the loop, the largest difference from Keras relative to
Keras's largest output, and the times: nengodl's conversion plus simulator
construction plus first prediction against Keras's first ``predict`` (tracing
included), then each one's second call (the steady per-batch time). With
``--repeats N`` each network runs in N fresh processes in turn and the times
are medians (Keras's first ``predict`` alone varies by 1.5x between processes).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import warnings

MODELS = {
    "MobileNetV2": {"alpha": 0.35},
    "MobileNetV3Small": {},
    "EfficientNetB0": {},
    "ResNet50": {},
    "DenseNet121": {},
    "VGG16": {},
}


def measure(name, size, batch):
    """One network's row (run in its own process by `main`)."""
    import keras
    import numpy as np

    import nengodl

    model = getattr(keras.applications, name)(
        input_shape=(size, size, 3),
        weights=None,
        classes=10,
        classifier_activation=None,  # logits: a softmax of random weights saturates
        **MODELS[name],
    )
    rng = np.random.RandomState(0)
    for w in model.weights:  # every layer matters (see the converter tests)
        value = rng.uniform(-1, 1, size=w.shape) * (0.5 if "kernel" in w.path else 1)
        if "variance" in w.path:
            value = rng.uniform(0.5, 2, size=w.shape)
        w.assign(value.astype(np.float32))
    x = np.random.RandomState(1).uniform(-1, 1, (batch, size, size, 3)).astype(np.float32)
    row = {"model": name, "layers": len(model.layers)}
    start = time.perf_counter()
    want = model.predict(x, verbose=0)
    row["keras_first"] = time.perf_counter() - start
    start = time.perf_counter()
    model.predict(x, verbose=0)
    row["keras_second"] = time.perf_counter() - start
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        conv = nengodl.Converter(model, inference_only=True)
    row["fallbacks"] = sum("TensorNode" in str(w.message) for w in caught)
    inp, out = conv.inputs[model.input], conv.outputs[model.output]
    with nengodl.Simulator(conv.net, minibatch_size=batch, progress_bar=False) as sim:
        got = sim.predict_on_batch({inp: x.reshape(batch, 1, -1)})[out][:, 0]
        row["nengodl_first"] = time.perf_counter() - start
        start = time.perf_counter()
        sim.predict_on_batch({inp: x.reshape(batch, 1, -1)})
        row["nengodl_second"] = time.perf_counter() - start
        row["plan_steps"] = len(sim.plan.steps)
        row["xla"] = bool(sim.jit)
    row["rel_error"] = float(np.abs(got - want).max() / np.abs(want).max())
    return row


def main(argv=None):
    """Print the table (see ``--help``)."""
    p = argparse.ArgumentParser(
        prog="python -m nengodl.benchmarks.applications", description=__doc__.splitlines()[0]
    )
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--size", type=int, default=64, help="image width and height")
    p.add_argument("--batch", type=int, default=2, help="images per prediction")
    p.add_argument("--repeats", type=int, default=1, help="processes per network (medians)")
    p.add_argument("--one", help=argparse.SUPPRESS)  # run one network, print its row as JSON
    args = p.parse_args(argv)
    if args.one:
        print(json.dumps(measure(args.one, args.size, args.batch)))
        return
    print(
        f"{'model':<17}{'layers':>7}{'fallback':>9}{'steps':>7}{'XLA':>5}{'rel err':>9}"
        f"{'first s':>9}{'Keras':>7}{'ratio':>7}{'second s':>10}{'Keras':>7}{'ratio':>7}"
    )
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    for name in args.models:
        cmd = [sys.executable, "-m", "nengodl.benchmarks.applications", "--one", name]
        cmd += ["--size", str(args.size), "--batch", str(args.batch)]
        rows = []
        for _ in range(args.repeats):
            run = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
            rows.append(json.loads(run.stdout.strip().splitlines()[-1]))
        r = dict(rows[0])
        for key in ("keras_first", "keras_second", "nengodl_first", "nengodl_second"):
            r[key] = statistics.median(row[key] for row in rows)
        print(
            f"{r['model']:<17}{r['layers']:>7}{r['fallbacks']:>9}{r['plan_steps']:>7}"
            f"{'yes' if r['xla'] else 'no':>5}{r['rel_error']:>9.1e}"
            f"{r['nengodl_first']:>9.1f}{r['keras_first']:>7.2f}"
            f"{r['nengodl_first'] / r['keras_first']:>7.1f}"
            f"{r['nengodl_second']:>10.3f}{r['keras_second']:>7.3f}"
            f"{r['nengodl_second'] / r['keras_second']:>7.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
