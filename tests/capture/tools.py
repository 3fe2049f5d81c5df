"""Helpers for the capture tests: Wireshark's tools as an oracle, privilege checks."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


def wireshark_tools_missing() -> str | None:
    missing = [tool for tool in ("tshark", "capinfos") if shutil.which(tool) is None]
    return f"{' and '.join(missing)} not installed (the README's test command installs them)" if missing else None


def run_tool(*cmd: str) -> str:
    """stdout of a Wireshark tool; fails the test on any error or complaint on stderr."""
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    # tshark warns about running as root; that is not about the file.
    complaints = [line for line in proc.stderr.splitlines() if line.strip() and "Running as user" not in line]
    assert proc.returncode == 0 and not complaints, f"{cmd[0]} exited {proc.returncode}: {proc.stderr}"
    return proc.stdout


def require_wireshark_tools() -> None:
    reason = wireshark_tools_missing()
    if reason:
        pytest.skip(reason)


def live_capture_unavailable() -> str | None:
    """Why live capture tests cannot run here, or None if they can."""
    if os.geteuid() != 0:
        return "live capture needs root (CI runs as root)"
    if shutil.which("tcpdump") is None:
        return "tcpdump not installed (the README's test command installs it)"
    return None


# --- `inspector capture` in a subprocess ---------------------------------------

HOST = "127.0.0.1"


class InspectorCapture:
    """`inspector capture ...` running in a subprocess; stderr collected by a thread."""

    def __init__(self, *args: str, preexec_prefix: tuple[str, ...] = ()) -> None:
        self.cmd = [*preexec_prefix, sys.executable, "-m", "inspector.cli", "capture", *args]
        self.stderr = ""
        self.stdout = ""
        self.ready = threading.Event()
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self._err = threading.Thread(target=self._read_stderr, daemon=True)
        self._out = threading.Thread(target=self._read_stdout, daemon=True)
        self._err.start()
        self._out.start()

    def _read_stderr(self) -> None:
        for line in self.proc.stderr:  # type: ignore[union-attr]
            self.stderr += line
            if "inspector: capturing on" in line:
                self.ready.set()
        self.ready.set()

    def _read_stdout(self) -> None:
        self.stdout = self.proc.stdout.read()  # type: ignore[union-attr]

    def wait_ready(self, timeout: float = 30.0) -> None:
        assert self.ready.wait(timeout), f"inspector capture did not start: {self.stderr}"
        assert self.proc.poll() is None, f"inspector capture exited {self.proc.returncode}: {self.stderr}"

    def finish(self, sig: int | None = signal.SIGINT, timeout: float = 30.0) -> int:
        """Send `sig` (None: let it end by itself) and wait for the exit code."""
        if sig is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"inspector capture did not stop within {timeout} s: {self.stderr}")
        self._err.join(10)
        self._out.join(10)
        return rc

    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]


def wait_until_quiet(path: Path, quiet: float = 0.7, max_wait: float = 10.0) -> None:
    """Until `path` has not grown for `quiet` s (the writer flushes within 0.5 s)."""
    start = last_change = time.monotonic()
    last = -1
    while time.monotonic() - start < max_wait:
        size = path.stat().st_size if path.exists() else -1
        if size != last:
            last, last_change = size, time.monotonic()
        elif time.monotonic() - last_change >= quiet:
            return
        time.sleep(0.05)


@contextlib.contextmanager
def echo_server() -> Iterator[int]:
    """A threaded TCP echo server on 127.0.0.1:<ephemeral>; yields its port."""
    server = socket.create_server((HOST, 0))
    port = server.getsockname()[1]
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except (socket.timeout, OSError):
                continue
            conn.settimeout(None)
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        stop.set()
        thread.join(5)
        server.close()


def echo_exchanges(port: int, messages: int, size: int = 100, pause: float = 0.0) -> int:
    """`messages` request/echo round trips on one connection; returns bytes echoed."""
    total = 0
    with socket.create_connection((HOST, port)) as conn:
        for i in range(messages):
            payload = bytes([i % 256]) * size
            conn.sendall(payload)
            got = b""
            while len(got) < size:
                got += conn.recv(65536)
            total += len(got)
            if pause:
                time.sleep(pause)
    return total


@contextlib.contextmanager
def echo_traffic_flowing(port: int, size: int = 200) -> Iterator[threading.Event]:
    """Round trips on new connections, back to back, until the block ends."""
    stop = threading.Event()

    def pump() -> None:
        while not stop.is_set():
            echo_exchanges(port, 20, size)

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    try:
        yield stop
    finally:
        stop.set()
        thread.join(10)
