#!/usr/bin/env python3
"""How long a restarted dashboard takes to show a capture already analysed in the cache,
end to end: from the `inspector dashboard CAPTURE` command to a headless Chromium showing that
capture's numbers on the Overview page.

    python benchmarks/bench_dashboard_restart.py                       # 1M and 5M captures, 5 runs each
    python benchmarks/bench_dashboard_restart.py --packets 1000000 --repeat 3
    python benchmarks/bench_dashboard_restart.py --py-spy /tmp/restart  # + one run under py-spy (all threads)

1. The capture is `benchmarks/data/bench-N.pcap` (bench_analyze.py makes it; a size whose file
   is missing is skipped).  It is analysed into the cache of analyses first if it is not there
   (`inspector analyze CAPTURE`, untimed), and the cache entry is checked to be the same folder
   after every run: a restart that analysed it again would show here.
2. Each run: a fresh `python -m inspector.cli dashboard CAPTURE --port P` (a free port chosen
   here once: the same for every restart, as a user's 8050), its URL polled every 5 ms until it answers 200 ("server answers"); then a headless
   Chromium (started once, before the runs, as a user's browser already is) opens it, and the
   time is taken when the Overview table shows the capture's row with its connection count from
   the store's store.json ("capture visible").  Times are from the command's start, by this
   process's clock; the dashboard is stopped with SIGTERM after each run.  Median of --repeat.
3. The parts, each measured on its own: the imports (one more run under `python -X importtime`,
   the sum of its top-level imports before the server answers, and the biggest of them), the
   capture's content key (store_inputs: the sha256 of the file and its sidecar, or the index
   shortcut when it has one), opening the cache entry (open_store), the Overview's views on that
   store (a Catalog, the overview table and the two figures' aggregates), and in the browser
   the Dash requests of the first page (layout, dependencies, callbacks: from request to body
   read, hooked on window.fetch) and the document itself (navigation to responseEnd).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from bench_dashboard import make_driver  # noqa: E402

DATA = (HERE / "data").resolve()  # resolved: the cache key holds the capture's path as given
TARGET_S = 2.0
POLL_S = 0.005
TIMEOUT_S = 120.0
IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \| (\s*)(\S+)")

# true once the overview table has a row naming the capture with its connection count
VISIBLE_JS = """
const rows = Array.from(document.querySelectorAll('#overview-table tbody tr'));
return rows.some(tr => {
  const cell = c => (tr.querySelector('td[data-col="' + c + '"]') || {}).textContent;
  return cell('capture') === arguments[0] && cell('connections') === arguments[1];
});
"""
REQUESTS_JS = """
const nav = performance.getEntriesByType('navigation')[0];
return {document_ms: nav ? nav.responseEnd - nav.startTime : null,
        requests: (window.__bench || {requests: []}).requests.map(r => [r.url, r.output, r.start, r.end, r.bytes])};
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answers(port: int) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", "/", headers={"Host": f"127.0.0.1:{port}"})
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def environment(cache: Path | None) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if cache is not None:
        env["INSPECTOR_CACHE_DIR"] = str(cache)
    return env


class Dashboard:
    """`inspector dashboard CAPTURE` started now, with the times (since start) of its stderr lines."""

    def __init__(self, capture: Path, env: dict, port: int, python_args=(), wrapper=()) -> None:
        self.port = port
        self.lines: list[tuple[float, str]] = []
        self.t0 = time.perf_counter()
        self.proc = subprocess.Popen([*wrapper, sys.executable, *python_args, "-m", "inspector.cli", "dashboard", str(capture),
                                      "--port", str(self.port)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True, env=env, cwd=tempfile.gettempdir())
        self._drain = threading.Thread(target=self._read, daemon=True)
        self._drain.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.append((time.perf_counter() - self.t0, line))

    def wait_answering(self) -> float:
        deadline = time.monotonic() + TIMEOUT_S
        while not answers(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the dashboard never answered: " + "".join(line for _, line in self.lines[-20:]))
            time.sleep(POLL_S)
        return time.perf_counter() - self.t0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._drain.join(5)


def entry_of(capture: Path, env: dict) -> tuple[Path, int]:
    """The capture's cache entry (analysed into it first when missing) and its store.json's inode."""
    code = ("import sys; from inspector.parse.connection import ParserOptions; from inspector.store import cache_entry, store_inputs;"
            "print(cache_entry(store_inputs([sys.argv[1]], ParserOptions())))")
    entry = Path(subprocess.run([sys.executable, "-c", code, str(capture)], env=env, check=True, capture_output=True, text=True).stdout.strip())
    if not (entry / "store.json").exists():
        print(f"  {capture.name} is not in the cache: analysing it into {entry.parent} (untimed) ...", flush=True)
        subprocess.run([sys.executable, "-m", "inspector.cli", "analyze", str(capture)], env=env, check=True, stdout=subprocess.DEVNULL)
    return entry, (entry / "store.json").stat().st_ino


def one_run(driver, capture: Path, connections: str, env: dict, port: int) -> dict:
    driver.get("about:blank")
    dashboard = Dashboard(capture, env, port)
    try:
        answered = dashboard.wait_answering()
        driver.get(dashboard.url)
        deadline = time.monotonic() + TIMEOUT_S
        while not driver.execute_script(VISIBLE_JS, capture.name, connections):
            if time.monotonic() > deadline:
                raise SystemExit(f"{capture.name} with {connections} connections never showed on the Overview")
            time.sleep(POLL_S)
        visible = time.perf_counter() - dashboard.t0
        browser = driver.execute_script(REQUESTS_JS)
    finally:
        dashboard.stop()
    announced = next((t for t, line in dashboard.lines if "dashboard on" in line), None)
    requests = {}
    for url, output, start, end, _size in browser["requests"]:
        name = url.split("?")[0] if output is None else output.split("@")[0]
        requests[name] = requests.get(name, 0.0) + (end - start) / 1000 if end is not None else requests.get(name, 0.0)
    return {"announced": announced, "answered": answered, "visible": visible, "document": (browser["document_ms"] or 0) / 1000,
            "requests": requests}


def import_times(capture: Path, env: dict, port: int) -> tuple[float, list[tuple[float, str]]]:
    """Seconds of top-level imports before the server listened (its "dashboard on" line), under
    -X importtime, and the biggest ones."""
    dashboard = Dashboard(capture, env, port, python_args=("-X", "importtime"))
    try:
        dashboard.wait_answering()
    finally:
        dashboard.stop()
    top = []
    for _, line in dashboard.lines:
        if "dashboard on" in line:
            break
        found = IMPORT_LINE.match(line)
        if found and not found.group(3):
            top.append((int(found.group(2)) / 1e6, found.group(4)))
    return sum(s for s, _ in top), sorted(top, reverse=True)[:8]


def in_process_parts(capture: Path, cache: Path | None) -> dict[str, float]:
    """The restart's work on the capture, step by step, in this process (modules already imported)."""
    if cache is not None:
        os.environ["INSPECTOR_CACHE_DIR"] = str(cache)
    from dashboard.catalog import Catalog
    from dashboard import figures
    from dashboard.store import only_capture, shown_store
    from dashboard.storeviews import StoreViews
    from inspector.parse.connection import ParserOptions
    from inspector.store import cached_store, store_inputs
    from inspector.store.inputs import file_sha256

    parts = {}
    t = time.perf_counter()
    file_sha256(capture)
    parts["sha256 of the capture"] = time.perf_counter() - t
    t = time.perf_counter()
    store_inputs([capture], ParserOptions())
    parts["content key, read through"] = time.perf_counter() - t
    try:
        from inspector.store import cache_inputs  # the cache's digest index
    except ImportError:  # before it
        cache_inputs = store_inputs
    cache_inputs([capture], ParserOptions())  # indexed, if it was not
    t = time.perf_counter()
    inputs = cache_inputs([capture], ParserOptions())
    parts["content key, as the dashboard"] = time.perf_counter() - t
    t = time.perf_counter()
    store = cached_store(inputs)
    parts["open the cache entry"] = time.perf_counter() - t
    t = time.perf_counter()
    catalog = Catalog([shown_store(store, {only_capture(store): capture.name})])
    views = StoreViews(catalog)
    parts["catalog of the store"] = time.perf_counter() - t
    t = time.perf_counter()
    views.overview()
    parts["overview table"] = time.perf_counter() - t
    t = time.perf_counter()
    shown = views.captures()[0]  # what dashboard.pages.overview.capture_figures does (a page module needs an app)
    figures.bytes_by_category(views.bytes_by_category(shown), "bytes")
    figures.protocol_mix(views.protocol_mix(shown), "mix")
    parts["overview figures' aggregates"] = time.perf_counter() - t
    catalog.close()
    return parts


def py_spy(capture: Path, env: dict, port: int, driver, connections: str, out: Path) -> None:
    """One restart under py-spy (every thread, idle ones too), until the capture is visible."""
    py_spy_bin = shutil.which("py-spy")
    if py_spy_bin is None:
        raise SystemExit("py-spy not found")
    out.parent.mkdir(parents=True, exist_ok=True)
    driver.get("about:blank")
    dashboard = Dashboard(capture, env, port, wrapper=(py_spy_bin, "record", "--idle", "--threads", "--subprocesses", "--rate", "1000",
                                                 "--format", "raw", "-o", str(out), "--"))
    try:
        dashboard.wait_answering()
        driver.get(dashboard.url)
        while not driver.execute_script(VISIBLE_JS, capture.name, connections):
            time.sleep(POLL_S)
        print(f"  py-spy: visible {time.perf_counter() - dashboard.t0:.2f} s after the command (slowed by sampling); "
              f"stacks in {out}", flush=True)
    finally:
        # SIGTERM to the dashboard (py-spy's child), then py-spy writes its file
        for child in Path(f"/proc/{dashboard.proc.pid}/task/{dashboard.proc.pid}/children").read_text().split():
            os.kill(int(child), signal.SIGTERM)
        dashboard.proc.wait(60)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--packets", type=int, nargs="+", default=[1_000_000, 5_000_000], help="the benchmark captures (bench-N.pcap)")
    ap.add_argument("--data", type=Path, default=DATA, help="the folder of the benchmark captures (default benchmarks/data)")
    ap.add_argument("--repeat", type=int, default=5, help="restarts per capture; the median is shown")
    ap.add_argument("--cache-dir", type=Path, help="the cache of analyses to use (default: the user's, as inspector's)")
    ap.add_argument("--py-spy", type=Path, metavar="PREFIX", help="also record one restart per capture under py-spy: PREFIX-N.txt")
    args = ap.parse_args(argv)

    env = environment(args.cache_dir)
    captures = [args.data / f"bench-{n}.pcap" for n in args.packets]
    captures = [c for c in captures if c.exists()] or sys.exit(f"no benchmark capture in {args.data}")
    driver, profile = make_driver()  # its pages hook window.fetch (bench_dashboard.FETCH_HOOK_JS)
    # One port for every restart, as a user's dashboard has (8050 by default): the browser keeps
    # the Dash and Plotly bundles in its cache from one restart to the next, as a user's does.
    port = free_port()
    results = []
    try:
        for capture in captures:
            size = capture.stat().st_size
            entry, inode = entry_of(capture, env)
            connections = f"{json.loads((entry / 'store.json').read_text())['rows']['connections']:,}"
            print(f"{capture.name}: {size / 2**20:,.0f} MiB, {connections} connections, cache entry {entry.name[:12]}...; "
                  f"a warm-up restart, then {args.repeat} ...", flush=True)
            one_run(driver, capture, connections, env, port)  # warm-up: page cache, Chromium's cache of the bundles
            runs = []
            for _ in range(args.repeat):
                runs.append(one_run(driver, capture, connections, env, port))
                r = runs[-1]
                print(f"  answered {r['answered']:.2f} s, visible {r['visible']:.2f} s", flush=True)
                if (entry / "store.json").stat().st_ino != inode:
                    raise SystemExit(f"the cache entry of {capture.name} was written again: the restart analysed it")
            imports, biggest = import_times(capture, env, port)
            parts = in_process_parts(capture, args.cache_dir)
            if args.py_spy:
                py_spy(capture, env, port, driver, connections, args.py_spy.with_name(f"{args.py_spy.name}-{capture.stem}.txt"))
            results.append((capture, size, runs, imports, biggest, parts))
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)

    print(f"\n== restarted dashboard, a capture already analysed in the cache ({os.cpu_count()} cores, shared) ==")
    worst = 0.0
    for capture, size, runs, imports, biggest, parts in results:
        med = {k: statistics.median(r[k] for r in runs) for k in ("answered", "visible", "document")}
        worst = max(worst, med["visible"])
        print(f"\n{capture.name} ({size / 2**30:.2f} GiB): median of {len(runs)}, from the command")
        print(f"  server answers          {med['answered']:6.2f} s   (min {min(r['answered'] for r in runs):.2f}, max {max(r['answered'] for r in runs):.2f})")
        print(f"  capture visible         {med['visible']:6.2f} s   (min {min(r['visible'] for r in runs):.2f}, max {max(r['visible'] for r in runs):.2f})"
              f"   under {TARGET_S:g} s: {'yes' if med['visible'] < TARGET_S else 'NO'}")
        print("  parts:")
        print(f"    imports before the server answers (-X importtime, top level): {imports:.2f} s; biggest: "
              + ", ".join(f"{name} {s:.2f}" for s, name in biggest[:6]))
        for name, seconds in parts.items():
            print(f"    {name:32s} {seconds:6.3f} s   (in the benchmark's process)")
        print(f"    browser: document {med['document']:.3f} s; Dash requests (request to body read, median):")
        names = sorted({n for r in runs for n in r["requests"]})
        for name in names:
            print(f"      {name:60s} {statistics.median(r['requests'].get(name, 0.0) for r in runs):6.3f} s")
    return 0 if worst < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
