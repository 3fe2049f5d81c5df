"""The dashboard server under hostile requests, measured on the real `inspector dashboard`
process (waitress): its resident memory around a POST declared 1 GiB long (to the upload URL
and to a Dash callback), and how long pages and callbacks take while the upload worker analyses
a gzip bomb, against the same requests on an idle server.

    PYTHONPATH=. python benchmarks/bench_dashboard_server.py
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.dashboard.served import DashboardProcess  # noqa: E402
from tests.dashboard.test_server import GiB, MiB, gzip_bomb, post_big, rows, upload, upload_status  # noqa: E402

REQUESTS = 20


def timings(server) -> dict[str, tuple[float, float]]:
    """Median and max milliseconds of REQUESTS page loads and grid row requests."""
    out = {}
    for what, call in (("GET /connections", lambda: server.request("GET", "/connections")),
                       ("grid rows callback", lambda: rows(server, "connections-table", {"startRow": 0, "endRow": 20}))):
        times = []
        for _ in range(REQUESTS):
            start = time.perf_counter()
            call()
            times.append((time.perf_counter() - start) * 1000)
        out[what] = (statistics.median(times), max(times))
    return out


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = DashboardProcess([REPO / "captures"], Path(tmp))
        try:
            server.wait_analysed()
            for path, kind in (("/upload-capture?name=big.pcap", "application/octet-stream"), ("/_dash-update-component", "application/json")):
                before = server.rss()
                status = post_big(server, path, GiB, kind)
                print(f"POST {path} declared 1 GiB: {status}; RSS {before / MiB:.0f} MiB -> {server.rss() / MiB:.0f} MiB")
            idle = timings(server)
            bomb = gzip_bomb(3 * GiB)
            _, job = upload(server, bomb, "bomb.pcap.gz")
            while not upload_status(server, [job["job"]])[0].startswith("bomb.pcap.gz: analysing"):
                time.sleep(0.1)
            busy = timings(server)
            _, chat = upload(server, (REPO / "captures" / "chat.pcap").read_bytes(), "chat.pcap")
            print(f"gzip bomb: {len(bomb) / MiB:.1f} MiB inflating to 3 GiB; while analysed: {upload_status(server, [job['job']])[0]}; "
                  f"another upload: {chat['line']}")
            for what in idle:
                print(f"{what}: idle median {idle[what][0]:.0f} ms (max {idle[what][1]:.0f}), "
                      f"during the bomb median {busy[what][0]:.0f} ms (max {busy[what][1]:.0f})")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
