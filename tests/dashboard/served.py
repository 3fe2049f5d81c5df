"""`inspector dashboard` as a real process, for tests over real HTTP: started on a free port
(`--port 0`, the port read from its "dashboard on" line) with its own TMPDIR (where its upload
folder goes), its resident memory read from /proc, Dash callbacks called as the browser calls
them (POST /_dash-update-component), stopped by a signal."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 60.0
ANNOUNCED = re.compile(r"dashboard on http://127\.0\.0\.1:(\d+)/")


class DashboardProcess:
    def __init__(self, sources, tmpdir: Path, *args: str) -> None:
        env = {**os.environ, "TMPDIR": str(tmpdir), "PYTHONPATH": os.environ.get("PYTHONPATH", str(REPO))}
        self.proc = subprocess.Popen([sys.executable, "-m", "inspector.cli", "dashboard", *map(str, sources), "--port", "0", *args],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                     env=env, cwd=tmpdir)
        self.tmpdir = tmpdir
        self.stderr: list[str] = []
        self._port = threading.Event()
        self.port = 0
        threading.Thread(target=self._drain, daemon=True).start()
        if not self._port.wait(START_TIMEOUT):
            self.stop(signal.SIGKILL)
            raise AssertionError(f"the dashboard never said where it listens: {''.join(self.stderr)}")
        self.host = f"127.0.0.1:{self.port}"

    def _drain(self) -> None:
        for line in self.proc.stderr:
            self.stderr.append(line)
            found = ANNOUNCED.search(line)
            if found and not self._port.is_set():
                self.port = int(found.group(1))
                self._port.set()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss(self) -> int:
        """Resident memory of the server process, bytes."""
        status = Path(f"/proc/{self.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) * 1024

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
                timeout: float = 60.0) -> tuple[int, dict, bytes]:
        """(status, headers with lower-case names, body) of one request; Host is the server's unless given."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            sent = {"Host": self.host, **(headers or {})}
            if body is not None:
                sent.setdefault("Content-Length", str(len(body)))
            for name, value in sent.items():
                connection.putheader(name, value)
            connection.endheaders(body)
            response = connection.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            connection.close()

    def callback(self, outputs: list[str], inputs: dict[str, object], state: dict[str, object] | None = None,
                 headers: dict | None = None) -> tuple[int, bytes]:
        """Call the Dash callback with these outputs ("id.prop") as the renderer does: (status, body)."""
        def props(values):
            return [{"id": key.split(".")[0], "property": key.split(".")[1], "value": value} for key, value in values.items()]

        output_ids = [{"id": o.split(".")[0], "property": o.split(".")[1]} for o in outputs]
        payload = {
            "output": outputs[0] if len(outputs) == 1 else ".." + "...".join(outputs) + "..",
            "outputs": output_ids[0] if len(outputs) == 1 else output_ids,
            "inputs": props(inputs), "state": props(state or {}), "changedPropIds": list(inputs),
        }
        status, _, body = self.request("POST", "/_dash-update-component", json.dumps(payload).encode(),
                                       {"Content-Type": "application/json", **(headers or {})})
        return status, body

    def callback_json(self, outputs, inputs, state=None) -> dict:
        status, body = self.callback(outputs, inputs, state)
        assert status == 200, (status, body[:300])
        return json.loads(body)["response"]

    def wait_analysed(self, timeout: float = START_TIMEOUT) -> str:
        """The progress line once the captures given at start are analysed."""
        deadline = time.monotonic() + timeout
        while True:
            response = self.callback_json(["progress.children", "progress-interval.disabled"], {"progress-interval.n_intervals": 1})
            if response["progress-interval"]["disabled"]:
                return response["progress"]["children"]
            assert time.monotonic() < deadline, response
            time.sleep(0.2)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout)
            raise AssertionError(f"the dashboard did not stop on signal {sig}: {''.join(self.stderr)}") from None
