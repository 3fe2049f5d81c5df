"""A restarted `inspector dashboard` shows a capture it analysed before from the cache of
analyses: its Overview has the capture's numbers, the cache entry is the one the first run wrote
(not analysed again), and the capture was not even opened (the digest index beside the cache;
the kernel's file events say so).  How fast: benchmarks/bench_dashboard_restart.py."""

from __future__ import annotations

import json
import shutil
import signal

from dashboard import ids
from tests.dashboard.browser.helpers import ANALYSIS_TIMEOUT, CHAT, console_errors, screenshot, table_rows, wait, wait_dash_ready
from tests.dashboard.served import DashboardProcess
from tests.filewatch import FileWatch, settle


def test_a_restarted_dashboard_shows_the_analysed_capture_without_analysing_it_again(tmp_path, monkeypatch, browser):
    monkeypatch.setenv("INSPECTOR_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "captures").mkdir()
    capture, sidecar = tmp_path / "captures" / CHAT.name, tmp_path / "captures" / CHAT.with_suffix(".json").name
    shutil.copy(CHAT, capture)
    shutil.copy(CHAT.with_suffix(".json"), sidecar)
    for path in (capture, sidecar):
        settle(path)  # younger than the digest index's racy window, it would be read at every start
    for run in ("first", "again"):
        (tmp_path / run).mkdir()

    first = DashboardProcess([capture], tmp_path / "first")
    try:
        assert first.wait_analysed(ANALYSIS_TIMEOUT) == "1 of 1 captures analysed"
    finally:
        first.stop(signal.SIGTERM)
    (entry,) = (path for path in (tmp_path / "cache").iterdir() if path.is_dir())
    written = (entry / "store.json").stat()
    connections = json.loads((entry / "store.json").read_text())["rows"]["connections"]

    with FileWatch(capture) as capture_events, FileWatch(sidecar) as sidecar_events:
        again = DashboardProcess([capture], tmp_path / "again")
        try:
            browser.get(f"http://{again.host}/")

            def shown(driver) -> dict | bool:
                rows = table_rows(driver, f"#{ids.OVERVIEW_TABLE}")
                row = dict(zip(rows[0], rows[1])) if len(rows) == 2 else {}
                return row.get("capture") == "chat.pcap" and row

            row = wait(browser, ANALYSIS_TIMEOUT).until(shown, message="the restarted dashboard never showed chat.pcap")
            wait_dash_ready(browser)
            assert row["connections"] == f"{connections:,}"
            assert browser.find_element("id", ids.PROGRESS).text == "1 of 1 captures analysed"
            assert capture_events.events() == (0, 0) and sidecar_events.events() == (0, 0)
            assert console_errors(browser) == []
            screenshot(browser, "overview-after-restart")
        finally:
            again.stop(signal.SIGTERM)
    assert [path for path in (tmp_path / "cache").iterdir() if path.is_dir()] == [entry]
    assert ((entry / "store.json").stat().st_ino, (entry / "store.json").stat().st_mtime_ns) == (written.st_ino, written.st_mtime_ns)
