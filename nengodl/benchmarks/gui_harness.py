"""A harness for nengo-gui: its server in this process, a page, websockets.

`GuiSession` starts nengo-gui's server for one model file and backend on
127.0.0.1 at a free port and creates a page with the HTTP request a browser
sends first; `WebSocketClient` is the connection nengo.js opens to each of the
page's components. ``python -m nengodl.benchmarks.gui_speed`` and
tests/test_gui.py run models in nengo-gui through them.
"""

import base64
import contextlib
import http.client
import os
import socket
import struct
import sys
import threading
import time

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
