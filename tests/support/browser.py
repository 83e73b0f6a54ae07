"""Debian's chromium, headless, driven over the DevTools protocol (a websocket).

:func:`start_chromium` starts it on a port it picks itself (``--remote-debugging-port=0``;
the port is read from ``DevToolsActivePort`` in its profile directory), in its own
process group, stopped by PID like every process of the tests. :class:`Tab` opens
a page, records what a person would see in the developer tools (console messages,
uncaught exceptions, browser log entries such as failed loads, and every request
made), evaluates expressions and takes screenshots.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from websockets.sync.client import ClientConnection, connect

from tests.support.procs import Managed, wait_for

__all__ = ["Tab", "chromium_binary", "start_chromium"]


def chromium_binary() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        raise FileNotFoundError("chromium not on PATH (apt-get install chromium)")
    return found


@contextmanager
def start_chromium(workdir: Path, width: int = 1300, height: int = 1400) -> Iterator[int]:
    """Yields the DevTools port of a headless chromium; stops it by PID afterwards."""
    profile = workdir / "chromium-profile"
    profile.mkdir(parents=True, exist_ok=True)
    argv = [chromium_binary(), "--headless", "--disable-gpu", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-default-apps", "--disable-extensions", "--mute-audio",
            f"--user-data-dir={profile}", "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0", f"--window-size={width},{height}", "about:blank"]
    if os.geteuid() == 0:
        argv.insert(1, "--no-sandbox")  # chromium refuses to run as root with its sandbox
    proc = Managed("chromium", argv, workdir / "chromium.log", 0).start()
    active = profile / "DevToolsActivePort"
    try:
        wait_for(lambda: active.exists() and bool(active.read_text().strip()), 60, "chromium",
                 proc)
        yield int(active.read_text().split()[0])
    finally:
        proc.stop()


@dataclass
class Tab:
    """One page target of the browser at ``port``."""

    port: int
    events: list[dict[str, Any]] = field(default_factory=list)
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _socket: ClientConnection | None = None

    def __enter__(self) -> Tab:
        targets = httpx.get(f"http://127.0.0.1:{self.port}/json/list", timeout=10).json()
        page = next(t for t in targets if t["type"] == "page")
        self._socket = connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=10)
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._socket is not None:
            self._socket.close()

    def send(self, method: str, params: dict[str, Any] | None = None,
             timeout: float = 30.0) -> dict[str, Any]:
        """One command; events that arrive meanwhile are recorded."""
        assert self._socket is not None
        ident = next(self._ids)
        self._socket.send(json.dumps({"id": ident, "method": method, "params": params or {}}))
        deadline = time.monotonic() + timeout
        while True:
            message = json.loads(self._socket.recv(timeout=max(0.1, deadline - time.monotonic())))
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return dict(message.get("result", {}))
            self.events.append(message)

    def _wait_event(self, method: str, timeout: float) -> None:
        assert self._socket is not None
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == method for e in self.events):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no {method} after {timeout:.0f}s")
            self.events.append(json.loads(self._socket.recv(timeout=remaining)))

    def open(self, url: str, timeout: float = 60.0) -> None:
        """Navigate and wait for the load event (and a moment for late console output)."""
        self.events.clear()
        self.send("Page.navigate", {"url": url})
        self._wait_event("Page.loadEventFired", timeout)
        self.evaluate("new Promise(done => setTimeout(done, 300))", await_promise=True)

    def evaluate(self, expression: str, *, await_promise: bool = False) -> Any:
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": await_promise})
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def console_errors(self) -> list[str]:
        """Console errors and assertions, uncaught exceptions and error log entries (a
        resource that failed to load, a refused content security policy)."""
        found = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                found.append("console: " + " ".join(str(a.get("value", a.get("description")))
                                                     for a in params.get("args", [])))
            elif method == "Runtime.exceptionThrown":
                found.append("exception: " + json.dumps(params.get("exceptionDetails"))[:500])
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                entry = params["entry"]
                found.append(f"log: {entry.get('text')} ({entry.get('url', '')})")
        return found

    def requested(self) -> list[str]:
        return [e["params"]["request"]["url"] for e in self.events
                if e.get("method") == "Network.requestWillBeSent"]

    def screenshot(self, path: Path) -> Path:
        data = self.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
        path.write_bytes(base64.b64decode(data["data"]))
        return path
