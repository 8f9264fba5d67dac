"""``python -m nengodl.benchmarks.gui_speed``: simulation speed in nengo-gui.

Runs models in nengo-gui's own server and simulation loop (``nengo -b BACKEND
model.py`` does the same), on 127.0.0.1 at a free port, with nengo.Simulator and
with nengodl.Simulator as the backend, the runs of the two alternating. Each run
opens a websocket to every component of the page, as a browser does (a thread
reads and drops what they send: plot data, the network graph, the editor),
presses play and reads the simulation time that nengo-gui's sim control sends
about every 10 ms. Two windows are timed: one with nengo-gui's default speed
control, which slows the simulation down to real time when it can go faster
(the figure is the fraction of real time reached), then one at full speed
(``target_scale:1``, as the speed slider's top; the figure is steps per second,
1000 being real time at ``dt=0.001``).

``--direct`` times ``sim.step()`` loops of the same models outside the server
(with the Nodes that nengo-gui adds for the plots), the two simulators
alternating: what the simulators themselves cost per step.

The models are nengo-gui's tutorial models (``nengo_gui/examples/tutorial``),
each with the plots of its ``.cfg`` file, copied into a temporary folder (the
page rewrites its ``.cfg``).

``--serve MODEL`` serves a model file on nengodl and presses play on each page a
browser opens; with ``--screenshot PNG`` it opens the page in headless Chromium
and saves what it shows after ``--seconds`` (the user guide's screenshot).

The harness (a server started in this process, a page, websocket connections to
its components) is `nengodl.benchmarks.gui_harness`, which tests/test_gui.py uses too.
"""

import argparse
import base64
import os
import shutil
import socket
import struct
import sys
import tempfile
import threading
import time

from nengodl.benchmarks.gui_harness import OP_BINARY, OP_TEXT, GuiSession, WebSocketClient

# the tutorial models timed by default (name prefixes); --models all: all 26
DEFAULT_MODELS = ("00", "07", "09", "13", "15", "17", "18", "20", "25")


def tutorial_file(name, folder):
    """Copy nengo-gui's tutorial model ``name`` (and its .cfg) into ``folder``."""
    import nengo_gui

    src = os.path.join(os.path.dirname(nengo_gui.__file__), "examples", "tutorial")
    matches = sorted(f for f in os.listdir(src) if f.endswith(".py") and f.startswith(name))
    if not matches:
        raise ValueError(f"no tutorial model starts with {name!r} in {src}")
    base = matches[0]
    shutil.copy(os.path.join(src, base), folder)
    if os.path.exists(os.path.join(src, base + ".cfg")):
        shutil.copy(os.path.join(src, base + ".cfg"), folder)
    return os.path.join(folder, base)


def sim_times(control, seconds, at_least=2, limit=30.0):
    """``(wall, sim time)`` pairs from the sim control's messages for ``seconds``,
    or longer (up to ``limit`` seconds) until ``at_least`` pairs have come: on a
    busy machine nengo-gui's server may send them less often than every 10 ms."""
    pairs = []
    start = time.monotonic()
    end = start + seconds
    while time.monotonic() < end or (len(pairs) < at_least and time.monotonic() < start + limit):
        left = max(end - time.monotonic(), 0.1)
        item = control.read_frame(left)
        if item is None:
            continue
        if item[0] == OP_BINARY and len(item[1]) == 12:
            pairs.append((time.monotonic(), struct.unpack("<fff", item[1])[0]))
    return pairs


def steps_per_second(pairs, dt):
    if len(pairs) < 2:
        return float("nan")
    (w0, t0), (w1, t1) = pairs[0], pairs[-1]
    return (t1 - t0) / dt / (w1 - w0)


def measure(filename, backend, window, dt=0.001):
    """One run: build seconds, fraction of real time under nengo-gui's speed
    control, steps per second at full speed."""
    with GuiSession(filename, backend) as session:
        sc = session.sim_control
        control = session.connect(sc)
        for comp in session.page.components:
            if comp is not sc:
                session.connect(comp).drain()
        start = time.monotonic()
        control.send_text("continue")
        while True:
            item = control.read_frame(600)
            if item is None:
                raise RuntimeError(f"{filename} on {backend}: no status ({session.error()})")
            if item[0] == OP_TEXT and item[1] == "status:build_error":
                raise RuntimeError(f"{filename} on {backend}: {session.error()}")
            if item[0] == OP_TEXT and item[1] == "status:running":
                break
        build = time.monotonic() - start
        sim_times(control, 0.5)  # warm-up
        real_time = steps_per_second(sim_times(control, window), dt) * dt
        control.send_text("target_scale:1")
        sim_times(control, 0.3)
        full = steps_per_second(sim_times(control, window), dt)
        if session.page.error is not None:
            raise RuntimeError(f"{filename} on {backend}: {session.error()}")
    return build, real_time, full


def direct_steps(filename, repeats, n_steps=300):
    """``sim.step()`` per second outside the server: the model with the Nodes
    that its page's plots and sim control add (nengo-gui's own
    ``add_nengo_objects``), in nengo.Simulator and nengodl.Simulator side by
    side; median of ``repeats`` alternating loops of ``n_steps`` steps."""
    import statistics

    import nengo

    import nengodl

    with GuiSession(filename, "nengo") as session:
        page, sc = session.page, session.sim_control
        sc.paused, sc.target_rate = False, None  # no pause, no speed control
        for comp in page.components:
            comp.add_nengo_objects(page)
        try:
            sims = {
                "nengo": nengo.Simulator(page.model, progress_bar=False),
                "nengodl": nengodl.Simulator(page.model, progress_bar=False),
            }
        finally:
            for comp in page.components:
                comp.remove_nengo_objects(page)
        rates = {name: [] for name in sims}
        try:
            for sim in sims.values():
                for _ in range(50):  # warm-up (nengodl: into its numpy stepper)
                    sim.step()
            for rep in range(repeats):
                for name in sorted(sims, reverse=rep % 2 == 1):
                    start = time.perf_counter()
                    for _ in range(n_steps):
                        sims[name].step()
                    rates[name].append(n_steps / (time.perf_counter() - start))
        finally:
            for sim in sims.values():
                sim.close()
    return {name: statistics.median(r) for name, r in rates.items()}


def serve(filename, backend, port, seconds, screenshot=None, size="1280,720"):
    """Serve ``filename`` as ``nengo -b BACKEND`` does (on 127.0.0.1:``port``,
    without opening a browser) and press play on every page that a browser
    opens (nengo-gui has no option to start playing by itself), for
    ``seconds`` seconds; or, given ``screenshot`` (a PNG file name), open the
    page in headless Chromium, let it run ``seconds`` seconds and save what
    the browser shows (the user guide's screenshot)."""
    from nengo_gui import guibackend
    from nengo_gui.components import SimControl
    from nengo_gui.gui import BaseGUI
    from nengo_gui.page import PageSettings

    settings = guibackend.GuiServerSettings(("127.0.0.1", port), auto_shutdown=0)
    gui = BaseGUI(
        guibackend.ModelContext(filename=filename), settings, PageSettings(backend=backend)
    )
    thread = threading.Thread(target=gui.start, daemon=True)
    thread.start()
    url = str(gui.server.get_url())
    print(f"serving {filename} on {backend}: {url}", flush=True)
    stop = threading.Event()

    def autoplay():
        started = set()
        while not stop.wait(0.1):
            for page in gui.server.pages:
                if id(page) not in started and page.components:
                    started.add(id(page))
                    page.get_component(SimControl).message("continue")

    player = threading.Thread(target=autoplay, daemon=True)
    player.start()
    try:
        if screenshot is None:
            stop.wait(seconds)
        else:
            browser_screenshot(url, screenshot, size, seconds)
    finally:
        stop.set()
        player.join(5)
        for page in gui.server.pages:
            page.finished = True
            page.sim = None
        gui.server.shutdown()
        thread.join(10)


def browser_screenshot(url, png, size, seconds):
    """Open ``url`` in headless Chromium (Debian's ``chromium`` package) at
    window size ``size`` ("W,H"), wait ``seconds`` and save the page as ``png``
    through the DevTools protocol."""
    import json
    import subprocess
    import urllib.parse
    import urllib.request

    browser = shutil.which("chromium") or shutil.which("chromium-headless-shell")
    if browser is None:
        raise RuntimeError("no Chromium found (apt-get install chromium)")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        devtools = probe.getsockname()[1]
    with tempfile.TemporaryDirectory() as profile:
        proc = subprocess.Popen(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             f"--window-size={size}", f"--remote-debugging-port={devtools}",
             "--remote-allow-origins=*", f"--user-data-dir={profile}", url],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            targets = None
            for _ in range(300):
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{devtools}/json/list") as r:
                        targets = [t for t in json.load(r) if t.get("type") == "page"]
                    if targets:
                        break
                except OSError:
                    pass
                time.sleep(0.1)
            if not targets:
                raise RuntimeError("Chromium's DevTools did not answer")
            time.sleep(seconds)
            path = urllib.parse.urlparse(targets[0]["webSocketDebuggerUrl"]).path
            ws = WebSocketClient(devtools, path)
            ws.send_text(json.dumps({"id": 1, "method": "Page.captureScreenshot"}))
            while True:
                item = ws.read_frame(60)
                if item is None:
                    raise RuntimeError("no screenshot from Chromium")
                reply = json.loads(item[1])
                if reply.get("id") == 1:
                    break
            ws.close()
            with open(png, "wb") as f:
                f.write(base64.b64decode(reply["result"]["data"]))
            print(f"saved {png}", flush=True)
        finally:
            proc.terminate()
            proc.wait(10)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--models",
        nargs="+",
        default=list(DEFAULT_MODELS),
        help="tutorial models (name prefixes, e.g. 07) or 'all'",
    )
    parser.add_argument("--repeats", type=int, default=2, help="runs per backend")
    parser.add_argument("--window", type=float, default=2.0, help="seconds timed per window")
    parser.add_argument(
        "--serve",
        metavar="MODEL",
        help="instead: serve this model file (or tutorial name) on nengodl and press "
        "play on each page a browser opens",
    )
    parser.add_argument("--port", type=int, default=8080, help="the port of --serve")
    parser.add_argument(
        "--seconds", type=float, default=60, help="how long --serve serves (or runs, --screenshot)"
    )
    parser.add_argument(
        "--screenshot", metavar="PNG", help="with --serve: save headless Chromium's view"
    )
    parser.add_argument("--size", default="1280,720", help="--screenshot's window size")
    parser.add_argument(
        "--direct",
        action="store_true",
        help="instead: time sim.step() loops outside the server (the plots' Nodes attached)",
    )
    args = parser.parse_args(argv)
    if args.serve is not None:
        with tempfile.TemporaryDirectory() as folder:
            filename = args.serve
            if not os.path.exists(filename):
                filename = tutorial_file(filename, folder)
            serve(filename, "nengodl", args.port, args.seconds, args.screenshot, args.size)
        return None
    import logging

    import nengo_gui

    logging.basicConfig(level=logging.ERROR)
    if args.models == ["all"]:
        src = os.path.join(os.path.dirname(nengo_gui.__file__), "examples", "tutorial")
        args.models = sorted(f[:-3] for f in os.listdir(src) if f.endswith(".py"))
    rows = []
    if args.direct:
        print("| model | nengo steps/s | nengodl steps/s | ratio |\n| --- | --- | --- | --- |")
        for name in args.models:
            with tempfile.TemporaryDirectory() as folder:
                filename = tutorial_file(name, folder)
                rates = direct_steps(filename, max(args.repeats, 3))
            ratio = rates["nengodl"] / rates["nengo"]
            name = os.path.basename(filename)[:-3]
            rows.append((name, rates["nengo"], rates["nengodl"], ratio))
            print(f"| {name} | {rates['nengo']:.0f} | {rates['nengodl']:.0f} | {ratio:.2f} |")
        return rows
    print("| model | simulator | build s | real time (speed control) | steps/s (full) | ratio |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name in args.models:
        best = {}
        with tempfile.TemporaryDirectory() as folder:
            name = os.path.basename(tutorial_file(name, folder))[:-3]
        for rep in range(args.repeats):
            order = ("nengo", "nengodl") if rep % 2 == 0 else ("nengodl", "nengo")
            for backend in order:
                with tempfile.TemporaryDirectory() as folder:
                    filename = tutorial_file(name, folder)
                    try:
                        build, real, full = measure(filename, backend, args.window)
                    except RuntimeError as err:
                        print(f"{name} {backend}: failed: {err}", file=sys.stderr)
                        continue
                old = best.get(backend)
                if old is None or full > old[2]:
                    best[backend] = (build, real, full)
        for backend in ("nengo", "nengodl"):
            if backend not in best:
                continue
            build, real, full = best[backend]
            ratio = full / best["nengo"][2] if "nengo" in best else float("nan")
            rows.append((name, backend, build, real, full, ratio))
            print(
                f"| {name} | {backend} | {build:.2f} | {real:.2f}x | {full:.0f} | {ratio:.2f} |",
                flush=True,
            )
    return rows


if __name__ == "__main__":
    main()
