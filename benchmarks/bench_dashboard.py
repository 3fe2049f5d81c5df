#!/usr/bin/env python3
"""How fast the dashboard is in a real browser with the 1,000,000-packet capture loaded.

    python benchmarks/bench_dashboard.py                # from anywhere; needs the capture or root to build it
    python benchmarks/bench_dashboard.py --repeat 5

1. The big benchmark capture is found (or built) exactly as bench_analyze.py does
   (its `prepare`), analysed into a dashboard TableStore (timed, then its page views, timed), with the
   bundled captures in captures/ so the capture dropdowns have something to switch to
   (--bench-only: the big capture alone; then there is no dropdown switch to time).
2. `create_app(store)` is served by werkzeug on 127.0.0.1 in a thread (the browser
   tests' server runner) and driven by headless Debian Chromium through Selenium
   (the tests' flags, system chromedriver, no Selenium Manager).
3. For each page: time from navigation start (browser clock, performance.now()) until
   the page's main content is there AND Dash is idle (no callback request in flight,
   no [data-dash-is-loading], title not "Updating...") for a settle period; the time is
   when that idle state began, not the end of the settle period.  For each selection
   (a cell on Connections and on Frames, the capture dropdown on REST vs WebSocket and
   on Overview): time from the click / value change until the detail has updated and
   Dash is idle.  Median of --repeat.
4. Every Dash request is wrapped (window.fetch) in the page, and timed on the server
   (Flask before/after_request), so each row splits into server time (Flask handler:
   callback + JSON) and the rest (network on loopback, JSON parse, React/Plotly render).
   The largest callback response is reported with its size.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

import bench_analyze  # noqa: E402  (prepare(): find or build the big capture)

TARGET_S = 1.0
SETTLE_S = 0.3   # Dash must stay idle this long before a measurement ends
POLL_S = 0.01
TIMEOUT_S = 30.0  # a page or selection slower than this is reported as a timeout

# In every document, before Dash loads: count Dash requests in flight, and keep, for each,
# start/end (performance.now()), size of the response body and the callback's output.
FETCH_HOOK_JS = r"""
(() => {
  window.__bench = {inflight: 0, requests: []};
  const orig = window.fetch.bind(window);
  window.fetch = async (input, init) => {
    const url = String((input && input.url) || input);
    if (!url.includes('/_dash-')) { return orig(input, init); }
    const rec = {url: url.replace(location.origin, ''), start: performance.now(), end: null, bytes: 0, output: null};
    try { rec.output = JSON.parse((init && init.body) || '{}').output || null; } catch (e) {}
    window.__bench.requests.push(rec);
    window.__bench.inflight += 1;
    try {
      const resp = await orig(input, init);
      const body = await resp.clone().text();
      rec.bytes = body.length;
      rec.status = resp.status;
      return resp;
    } finally {
      rec.end = performance.now();
      window.__bench.inflight -= 1;
    }
  };
})();
"""

IDLE_JS = """
const b = window.__bench;
return [performance.now(),
        !!b && b.inflight === 0
          && !!document.querySelector('#react-entry-point > *')
          && !document.querySelector('[data-dash-is-loading="true"]')
          && document.title !== 'Updating...',
        (b ? b.requests.length : 0)];
"""


def content_js(check: str) -> str:
    return f"return !!(function() {{ {check} }})();"


# page path -> JS that is true once the page's main content has rendered
PAGES = {
    "/": "return document.querySelectorAll('#overview-table td').length > 0"
         " && document.querySelector('#overview-bytes-by-category .main-svg')"
         " && document.querySelector('#overview-protocol-mix .main-svg');",
    "/compare": "return document.querySelectorAll('#compare-claims li').length > 0"
                " && document.querySelector('#compare-cost-split .main-svg')"
                " && document.querySelector('#compare-latency .main-svg')"
                " && document.querySelector('#compare-staleness .main-svg');",
    "/connections": "return document.querySelectorAll('#connections-table .ag-row .ag-cell').length > 0"
                    " && document.querySelector('#connections-attribution .main-svg');",
    "/frames": "return document.querySelectorAll('#frames-table .ag-row .ag-cell').length > 0"
               " && document.querySelector('#frames-detail p, #frames-detail h4');",
    "/findings": "return document.querySelector('#findings-list') && document.querySelector('#findings-list').children.length > 0;",
    "/upload": "return document.querySelector('#upload') && document.querySelector('#upload-status');",
    "/live": "return document.querySelector('#live-status') && document.querySelector('#live-wire-bytes .main-svg');",
}
LIVE_FOLLOWED = ROOT / "captures" / "chat.pcap"  # inside an allowed folder: the dashboard's sources'
LIVE_DONE_JS = "return /packets/.test((document.querySelector('#live-status') || {}).innerText || '');"


class ServerTimer:
    """Flask hooks timing each Dash request on the server (handler incl. JSON encoding)."""

    def __init__(self, server) -> None:
        self.log: list[tuple[str, float, int, str | None]] = []  # (path, seconds, response bytes, output)
        self._local = threading.local()
        self._lock = threading.Lock()

        @server.before_request
        def _before():
            self._local.t0 = time.perf_counter()

        @server.after_request
        def _after(resp):
            from flask import request

            t0 = getattr(self._local, "t0", None)
            if t0 is not None and request.path.startswith("/_dash-"):
                size = resp.calculate_content_length() or 0
                body = request.get_json(silent=True) if request.method == "POST" else None
                output = body.get("output") if isinstance(body, dict) else None
                with self._lock:
                    self.log.append((request.path, time.perf_counter() - t0, size, output))
            return resp

    def mark(self) -> int:
        with self._lock:
            return len(self.log)

    def since(self, mark: int) -> list[tuple]:
        with self._lock:
            return self.log[mark:]


def make_driver():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    from tests.dashboard.browser.conftest import CHROMEDRIVER, browser_unavailable, chromium_options

    reason = browser_unavailable()
    if reason:
        raise SystemExit(reason)
    profile = tempfile.mkdtemp(prefix="chromium-bench-profile-")
    options = chromium_options(profile)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_window_size(1400, 1000)
    driver.set_page_load_timeout(TIMEOUT_S)
    driver.set_script_timeout(TIMEOUT_S)
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": FETCH_HOOK_JS})
    return driver, profile


def wait_settled(driver, content: str, t_start_ms: float, min_requests: int = 0) -> float:
    """Seconds from t_start_ms (browser clock) until content shown and Dash idle (start of the
    idle stretch that lasted SETTLE_S).  min_requests: Dash requests that must have been made."""
    check = content_js(content)
    idle_since: float | None = None
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        now, idle, nreq = driver.execute_script(IDLE_JS)
        ok = idle and nreq >= min_requests and driver.execute_script(check)
        if ok:
            if idle_since is None:
                idle_since = now
            elif now - idle_since >= SETTLE_S * 1000:
                return (idle_since - t_start_ms) / 1000
        else:
            idle_since = None
        time.sleep(POLL_S)
    raise TimeoutError(f"not settled after {TIMEOUT_S} s: {content}")


def requests_since(driver, first: int) -> list[dict]:
    return driver.execute_script("return window.__bench.requests.slice(arguments[0]);", first)


def n_requests(driver) -> int:
    return driver.execute_script("return window.__bench.requests.length;")


class Bench:
    def __init__(self, base: str, timer: ServerTimer) -> None:
        self.base, self.timer = base, timer
        self.driver, self._profile = make_driver()
        self.rows: dict[str, list[dict]] = {}
        self.failed: dict[str, str] = {}
        self.largest: dict | None = None

    def close(self) -> None:
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self._profile, ignore_errors=True)

    def _record(self, name: str, total: float, reqs: list[dict], server: list) -> None:
        for r in reqs:
            if self.largest is None or r["bytes"] > self.largest["bytes"]:
                self.largest = {**r, "action": name}
        # callback chains run one after another: the server share is the sum of the handler times
        self.rows.setdefault(name, []).append({
            "total": total, "server": sum(s[1] for s in server),
            "requests": len(reqs), "bytes": sum(r["bytes"] for r in reqs),
        })

    def _guard(self, name: str, run) -> bool:
        """Run one measurement; on a timeout (or a browser that stopped answering) note it, never
        measure `name` again, and start a fresh browser.  False when it failed."""
        if name in self.failed:
            return False
        mark = self.timer.mark()
        t0 = time.monotonic()
        try:
            run(mark)
            return True
        except Exception as exc:  # selenium/urllib3 timeouts, TimeoutError
            srv = self.timer.since(mark)
            detail = "; ".join(f"{o or p} {sec:.2f} s {size:,} B" for p, sec, size, o in srv)
            self.failed[name] = (f"no result after {time.monotonic() - t0:.0f} s ({type(exc).__name__}); "
                                 f"server answered: {detail or 'nothing'}")
            print(f"  {name}: FAILED, {self.failed[name]}", flush=True)
            self.close()
            self.driver, self._profile = make_driver()
            return False

    def page(self, path: str) -> bool:
        def run(mark):
            self.driver.get(self.base + path)  # returns after the load event; timing is from navigationStart
            total = wait_settled(self.driver, PAGES[path], 0.0)
            self._record(f"page {path}", total, requests_since(self.driver, 0), self.timer.since(mark))
        return self._guard(f"page {path}", run)

    def action(self, name: str, do_js: str, content: str, *args) -> bool:
        """Run do_js (which returns performance.now() taken just before it acts) and time until settled."""
        def run(mark):
            first = n_requests(self.driver)
            t0 = self.driver.execute_script(do_js, *args)
            total = wait_settled(self.driver, content, t0, min_requests=first + 1)
            self._record(name, total, requests_since(self.driver, first), self.timer.since(mark))
        return self._guard(name, run)


# the first cell of the grid row at row-index arguments[1] (AG Grid listens for clicks on its cells)
CLICK_CELL_JS = """
const cell = document.querySelector(arguments[0] + ' .ag-row[row-index="' + arguments[1] + '"] .ag-cell');
const t = performance.now();
cell.click();
return t;
"""

SET_VALUE_JS = """
const t = performance.now();
window.dash_clientside.set_props(arguments[0], {value: arguments[1]});
return t;
"""


def rss_mib() -> float:
    """This process's resident memory (Linux /proc)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--packets", type=int, default=1_000_000, help="the benchmark capture (bench_analyze.py --packets)")
    ap.add_argument("--base-scale", type=float, default=1.0, help="as bench_analyze.py --base-scale")
    ap.add_argument("--skip-build", action="store_true", help="fail unless the capture is already in benchmarks/data/")
    ap.add_argument("--repeat", type=int, default=3, help="measurements of each page and selection; the median is shown")
    ap.add_argument("--bench-only", action="store_true", help="load only the big capture, not the bundled captures too")
    args = ap.parse_args(argv)
    args.rebuild = False

    big, meta = bench_analyze.prepare(args)
    sources = [big] if args.bench_only else [big, ROOT / "captures"]

    from dashboard.app import create_app
    from dashboard.store import TableStore
    from tests.dashboard.browser.conftest import _ServedApp

    store = TableStore([str(s) for s in sources])
    print(f"analysing {big.name} ({meta['big']['packets']:,} packets, {big.stat().st_size / 2**20:,.0f} MiB)"
          + ("" if args.bench_only else " + the bundled captures/") + " into a TableStore ...", flush=True)
    t0 = time.perf_counter()
    store.wait()
    analysis_s = time.perf_counter() - t0
    progress = store.progress()
    if progress.errors:
        raise SystemExit(f"analysis failed: {progress.text}")
    # The store computes every page's views in the background once the tables are ready;
    # the pages are timed once that is done (warm() waits for it and computes nothing twice).
    t0 = time.perf_counter()
    store.views().warm()
    views_s = time.perf_counter() - t0
    # The tables stay in the stores (dashboard.catalog): their rows are counted there, and only
    # the tables the views loaded whole (the small ones) are in the process.
    views = store.views()
    rows = {name: sum(int(loaded.store.meta["rows"][name]) for loaded in views.catalog.loaded) for name in views.tables}
    print(f"analysis took {analysis_s:.1f} s, then the views {views_s:.1f} s more: {progress.text}; "
          + ", ".join(f"{name} {n:,}" for name, n in rows.items() if name in ("connections", "findings") or n > 100000))
    table_mib = sum(views.tables[name].memory_usage(deep=True).sum() for name in views.tables.loaded()) / 2**20
    print(f"memory of the dashboard process: {rss_mib():,.0f} MiB resident ({table_mib:,.0f} MiB of it tables loaded whole: "
          f"{', '.join(views.tables.loaded()) or 'none'})")

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no access log per request
    app = create_app(store)
    timer = ServerTimer(app.server)
    served = _ServedApp(app)
    print(f"serving on {served.url}; headless Chromium, {args.repeat} runs each, settle {SETTLE_S * 1000:.0f} ms", flush=True)

    captures = views.captures()
    # the big capture as the pages name it (its file name), never its path (no capture has that name)
    big_name = next((c for c in captures if Path(c).name == big.name), big.name)
    other = next((c for c in captures if c != big_name), None)
    bench = Bench(served.url, timer)
    try:
        # one warm-up pass: Chromium's cache of the Dash/Plotly bundles, Python imports
        for path in PAGES:
            bench.page(path)
        bench.rows.clear()
        bench.largest = None
        for i in range(args.repeat):
            for path in PAGES:
                if not bench.page(path):
                    continue
                driver = bench.driver
                if path == "/" and other:
                    bench.action("overview: capture dropdown -> bundled capture", SET_VALUE_JS,
                                 PAGES[path], "overview-capture", other) and \
                        bench.action("overview: capture dropdown -> bench capture", SET_VALUE_JS,
                                     PAGES[path], "overview-capture", big_name)
                if path == "/compare" and other:
                    # the page opens on the capture with the most variants (a bundled one): first
                    # another bundled capture, then the big one (which may hang the browser: last)
                    default = driver.execute_script(
                        "const e = document.querySelector('#compare-capture'); return e ? e.innerText : '';")
                    small = next((c for c in captures if c != big_name and Path(c).stem not in default), other)
                    bench.action("compare: capture dropdown -> bundled capture", SET_VALUE_JS,
                                 PAGES[path], "compare-capture", small)
                    bench.action("compare: capture dropdown -> bench capture", SET_VALUE_JS,
                                 PAGES[path], "compare-capture", big_name)
                if path == "/connections":
                    bench.action("connections: click a row -> detail", CLICK_CELL_JS,
                                 "return Array.from(document.querySelectorAll('#connections-attribution .gtitle, #connections-timeline .gtitle'))"
                                 ".some(e => /connection \\d+/.test(e.textContent));",
                                 "#connections-table", 1 + i)
                if path == "/live":
                    # the first run analyses the file; later runs find it unchanged (one stat)
                    bench.action("live: follow a bundled capture -> its numbers", SET_VALUE_JS, LIVE_DONE_JS,
                                 "live-path", str(LIVE_FOLLOWED))
                if path == "/frames":
                    bench.action("frames: click a row -> detail", CLICK_CELL_JS,
                                 "return !!document.querySelector('#frames-detail h4');",
                                 "#frames-table", 1 + i)
        errors = [e["message"] for e in bench.driver.get_log("browser") if e.get("level") == "SEVERE"]
    finally:
        bench.close()
        served.stop()
    biggest = max(timer.log, key=lambda entry: entry[2], default=None)

    print()
    print(f"== dashboard in headless Chromium, {meta['big']['packets']:,}-packet capture loaded "
          f"({os.cpu_count()} cores, shared) ==")
    print(f"{'page / action':52s} {'median':>8s} {'min':>7s} {'max':>7s} {'server':>8s} {'rest':>7s} {'reqs':>5s} {'bytes':>11s}  < 1 s")
    missed = []
    for name, runs in bench.rows.items():
        med = statistics.median(r["total"] for r in runs)
        srv = statistics.median(r["server"] for r in runs)
        ok = med < TARGET_S
        if not ok:
            missed.append(name)
        print(f"{name:52s} {med:7.3f}s {min(r['total'] for r in runs):6.3f}s {max(r['total'] for r in runs):6.3f}s "
              f"{srv:7.3f}s {max(med - srv, 0):6.3f}s {statistics.median(r['requests'] for r in runs):5.0f} "
              f"{statistics.median(r['bytes'] for r in runs):>11,.0f}  {'yes' if ok else 'NO'}")
    print("(median of the runs; server: sum of the Flask handler times of the Dash requests (callback + JSON);"
          " rest: median minus server = loopback transfer, JSON parse, React/Plotly render, waiting)")
    if bench.largest:
        lg = bench.largest
        print(f"largest Dash response: {lg['bytes']:,} characters of JSON, {lg['url']} output {lg['output']!r} "
              f"({lg['action']}; {lg['end'] - lg['start']:.0f} ms in the browser from request to body read)")
    if biggest:
        print(f"largest Dash response seen by the server: {biggest[2]:,} bytes, {biggest[0]} output {biggest[3]!r} "
              f"({biggest[1]:.2f} s in the Flask handler)")
    for name, why in bench.failed.items():
        missed.append(name)
        print(f"{name:52s} FAILED: {why}")
    if errors:
        print(f"browser console errors: {len(errors)}; first: {errors[0][:300]}")
    print(f"analysis: {analysis_s:.1f} s + views {views_s:.1f} s.  Under {TARGET_S:g} s: {len(bench.rows) + len(bench.failed) - len(missed)} of {len(bench.rows) + len(bench.failed)}"
          + (f"; missed: {', '.join(missed)}" if missed else ""))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
