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

`GuiSession` and `WebSocketClient` are the harness (tests/test_gui.py uses them
too): a server started in this process, a page created by the HTTP request a
browser sends first, and websocket connections to its components.
"""

import argparse
import base64
import contextlib
import http.client
import os
import shutil
import socket
import struct
import sys
import tempfile
import threading
import time

# the tutorial models timed by default (name prefixes); --models all: all 26
DEFAULT_MODELS = ("00", "07", "09", "13", "15", "17", "18", "20", "25")

OP_TEXT, OP_BINARY, OP_CLOSE = 0x1, 0x2, 0x8


class WebSocketClient:
    """A websocket client to 127.0.0.1 (what nengo.js opens to each component
    of a nengo-gui page; also enough for Chromium's DevTools).

    Parameters
    ----------
    port : int
        The server's port on 127.0.0.1.
    path : str
        The resource, e.g. ``/viz_component?uid=ID`` for the component whose
        ``id()`` is ID (as the page's JavaScript names it).
    cookie : str, optional
        The session cookie (``name=value``) that the page's request was given.
    timeout : float
        Seconds to wait for the connection and the handshake.
    """

    def __init__(self, port, path, cookie=None, timeout=30.0):
        from nengo_gui.server import WebSocketFrame

        self._parse = WebSocketFrame.parse
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        host = f"127.0.0.1:{port}"
        key = base64.b64encode(os.urandom(16)).decode("ascii")
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\n"
            f"Origin: http://{host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        )
        if cookie is not None:
            request += f"Cookie: {cookie}\r\n"
        self.sock.sendall((request + "\r\n").encode("ascii"))
        reply = b""
        while b"\r\n\r\n" not in reply:
            chunk = self.sock.recv(4096)
            if not chunk:
                break
            reply += chunk
        head, _, rest = reply.partition(b"\r\n\r\n")
        status = head.split(b"\r\n", 1)[0]
        if b" 101 " not in status + b" ":
            self.sock.close()
            raise ConnectionError(f"websocket to {path} refused: {status!r}")
        self.buffer = bytearray(rest)
        self.closed = False

    def send_text(self, text):
        """Send a text message (masked, as a client must)."""
        data = text.encode("utf-8")
        if len(data) > 0xFFFF:
            raise ValueError(f"message too long for this client ({len(data)} bytes)")
        if len(data) < 126:
            header = bytes([0x80 | OP_TEXT, 0x80 | len(data)])
        else:
            header = struct.pack("!BBH", 0x80 | OP_TEXT, 0x80 | 126, len(data))
        mask = os.urandom(4)
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        self.sock.sendall(header + mask + payload)

    def read_frame(self, timeout):
        """The next data frame as ``(opcode, data)`` (text as str, binary as
        bytes), or None if none comes within ``timeout`` seconds or the server
        closed the connection. Pings are skipped."""
        end = time.monotonic() + timeout
        while True:
            try:
                frame, size = self._parse(self.buffer)
            except ValueError:  # incomplete
                frame = None
            if frame is not None:
                del self.buffer[:size]
                if frame.opcode == OP_CLOSE:
                    self.closed = True
                    return None
                if frame.opcode in (OP_TEXT, OP_BINARY):
                    data = frame.data if frame.opcode == OP_TEXT else bytes(frame.data)
                    return frame.opcode, data
                continue
            left = end - time.monotonic()
            if left <= 0 or self.closed:
                return None
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(1 << 16)
            except TimeoutError:
                return None
            except OSError:
                self.closed = True
                return None
            if not chunk:
                self.closed = True
                return None
            self.buffer += chunk

    def binary_frames(self, quiet=0.5, timeout=30.0):
        """The binary frames received until none has come for ``quiet`` seconds
        (or ``timeout`` seconds have passed)."""
        frames = []
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            item = self.read_frame(quiet)
            if item is None:
                break
            if item[0] == OP_BINARY:
                frames.append(item[1])
        return frames

    def drain(self):
        """Read and drop everything in a background thread (as a plot would
        consume it) until the connection closes."""

        def run():
            while not self.closed:
                self.read_frame(0.5)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread

    def close(self, timeout=2.0):
        """Close the connection, with the closing handshake: once the server's
        reply has come, its thread for this connection reads no more data."""
        if not self.closed:
            try:
                self.sock.sendall(bytes([0x80 | OP_CLOSE, 0x80]) + os.urandom(4))
                end = time.monotonic() + timeout
                while not self.closed and time.monotonic() < end:
                    self.read_frame(end - time.monotonic())
            except OSError:
                pass  # the server has gone
        self.closed = True
        with contextlib.suppress(OSError):
            self.sock.close()


class GuiSession:
    """nengo-gui's server for one model file and backend, with its page open.

    Parameters
    ----------
    filename : str
        The model file (its ``.cfg`` beside it gives the plots).
    backend : str
        The backend module, as ``nengo -b`` takes it (``"nengo"``, ``"nengodl"``).

    Attributes
    ----------
    server : nengo_gui.guibackend.GuiServer
    page : nengo_gui.page.Page
        The page that the first request created (built and run once play is pressed).
    port : int
    cookie : str
    """

    def __init__(self, filename, backend):
        from nengo_gui import guibackend
        from nengo_gui.gui import BaseGUI
        from nengo_gui.page import PageSettings

        self._stdout = sys.stdout  # nengo-gui sets sys.stdout to sys.__stdout__
        self.clients = []
        self.sims = []
        settings = guibackend.GuiServerSettings(("127.0.0.1", 0), auto_shutdown=0)
        self.gui = BaseGUI(
            guibackend.ModelContext(filename=filename), settings, PageSettings(backend=backend)
        )
        self.server = self.gui.server
        self.port = self.server.server_port
        self.thread = threading.Thread(target=self.gui.start, daemon=True)
        self.thread.start()
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            conn.request("GET", f"/?token={self.server.auth_token}")
            response = conn.getresponse()
            response.read()
            conn.close()
            if response.status != 200:
                raise ConnectionError(f"nengo-gui's page request got {response.status}")
            self.cookie = response.getheader("Set-Cookie").split(";", 1)[0]
            self.page = self.server.pages[-1]
        except BaseException:
            self.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def component(self, cls):
        """The page's first component of class ``cls``."""
        found = self.page.get_component(cls)
        if found is None:
            raise LookupError(f"the page has no {cls.__name__}")
        return found

    @property
    def sim_control(self):
        from nengo_gui.components import SimControl

        return self.component(SimControl)

    def connect(self, component):
        """A `WebSocketClient` to ``component``."""
        client = WebSocketClient(self.port, f"/viz_component?uid={id(component)}", self.cookie)
        self.clients.append(client)
        return client

    def run_until_paused(self, control, timeout=300.0):
        """Press play on the sim control's websocket ``control`` and wait until
        the simulation has run and is paused again (the model's ``on_step``
        pauses it): its sim control's ``paused`` flag is back and the simulator
        has stepped. Its status messages can miss a short run between two of
        their updates, so the flag is read in Python.

        Raises RuntimeError with nengo-gui's error (the build's or the model's
        traceback) if the page reports one.
        """
        sc = self.sim_control
        before = self.page.sim.n_steps if self.page.sim is not None else 0
        control.send_text("continue")
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            control.read_frame(0.01)  # drain the status and time messages
            if self.page.error is not None:
                raise RuntimeError(f"nengo-gui reports an error:\n{self.error()}")
            sim = self.page.sim
            if sc.paused and sim is not None and sim.n_steps > before:
                if sim not in self.sims:
                    self.sims.append(sim)
                return sim.n_steps
        raise RuntimeError(f"the simulation did not pause within {timeout} s")

    def error(self):
        err = self.page.error if hasattr(self, "page") else None
        return None if err is None else err.get("trace")

    def close(self):
        """Stop the page's simulation thread, the server and the connections."""
        page = getattr(self, "page", None)
        if page is not None:
            if page.sim is not None and page.sim not in self.sims:
                self.sims.append(page.sim)
            page.finished = True  # the page's simulation thread ends after its step
            page.sim = None  # frees a step waiting in the paused sim control
        self.server.shutdown()
        for client in self.clients:
            client.close()
        self.thread.join(10)
        self.server.wait_for_shutdown(1.0)
        for binding in self.server.bindings:
            binding.socket.close()
        # the page's thread closes the simulator it ran, unless the model's
        # on_step raised on being handed None; close what is left
        end = time.monotonic() + 5
        while any(not s.closed for s in self.sims) and time.monotonic() < end:
            time.sleep(0.02)
        for sim in self.sims:
            if not sim.closed:
                sim.close()
        sys.stdout = self._stdout


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
