"""The Live page in headless Chromium: while the page follows a pcap that PcapWriter fills in
steps, the packet count shown grows to the analysis of the same bytes; a missing path, a
hostile path and a path outside the allowed folders are one line of text, naming no server path
but the one typed.  The app is given
its folder as `inspector dashboard --live-dir DIR` would.  No console errors; screenshots under
screenshots/."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.by import By

from dashboard import ids
from dashboard.live import ALLOWED_FOLDERS
from inspector.analysis.pipeline import analyze_captures
from inspector.capture.files import CaptureInfo, read_packets
from inspector.capture.writers import PcapWriter
from tests.dashboard.browser.helpers import (
    CHAT,
    console_errors,
    dialogs,
    page_errors,
    screenshot,
    wait,
    wait_css,
    wait_dash_ready,
)

HOSTILE = "<img src=x onerror=alert(1)>.pcap"


@pytest.fixture(scope="module")
def live_dir(tmp_path_factory) -> Path:
    """The folder the app may follow files in (its --live-dir); each test writes under its own."""
    return tmp_path_factory.mktemp("live-dir")


@pytest.fixture(scope="module")
def live_url(serve_app, live_dir):
    from dashboard.app import create_app
    from dashboard.store import TableStore

    store = TableStore([], live_dirs=[live_dir])
    assert store.wait(30)
    return serve_app(create_app(store)) + "/live"


@pytest.fixture
def folder(live_dir, request) -> Path:
    path = live_dir / request.node.name
    path.mkdir()
    return path


def open_page(driver, url: str) -> None:
    driver.get(url)
    wait_css(driver, f"#{ids.LIVE_PATH}")
    wait_dash_ready(driver)


def enter_path(driver, text: str) -> None:
    # The path is set as the input's value, as pressing Enter after typing it does.  Typed
    # key by key, a busy machine interleaved the keys with the page's one-and-a-half-second
    # refresh of this controlled input: letters came out lost or moved ("pcapo").
    driver.execute_script("window.dash_clientside.set_props(arguments[0], {value: arguments[1]});", ids.LIVE_PATH, text)


def status_when(driver, predicate, message: str) -> str:
    seen = []

    def shown(d):
        text = d.find_element(By.ID, ids.LIVE_STATUS).text
        seen.append(text)
        return text if predicate(text) else False

    try:
        return wait(driver).until(shown)
    except TimeoutException:
        raise AssertionError(f"{message}; the page last showed {seen[-1] if seen else None!r}") from None


def packets_of(path: Path) -> int:
    return int(analyze_captures([path])["captures"].iloc[0]["packets"])


def test_packet_count_grows_while_the_file_is_written(live_url, browser, folder):
    info = CaptureInfo(path=str(CHAT))
    records = list(read_packets(CHAT, info))
    (link_type,) = info.link_types
    path = folder / "live.pcap"
    open_page(browser, live_url)
    screenshot(browser, "live-empty")
    with PcapWriter(path, link_type, nanosecond=True) as writer:
        enter_path(browser, str(path))
        status_when(browser, lambda t: t.startswith("0 packets, "), "the empty capture was never shown")
        counts = []
        steps = [len(records) // 4, len(records) // 2, len(records)]
        done = 0
        for step in steps:
            for ts_ns, _link, wire_len, data in records[done:step]:
                writer.write(ts_ns, data, wire_len)
            writer.flush()
            done = step
            snapshot = folder / f"snapshot-{step}.pcap"
            shutil.copyfile(path, snapshot)
            expected = packets_of(snapshot)
            status = status_when(browser, lambda t, e=expected: t.startswith(f"{e:,} packets, "),
                                 f"the page never showed {expected:,} packets")
            counts.append(expected)
            assert "connections" in status and "wire bytes" in status
        assert counts == sorted(counts) and counts[0] < counts[-1] == len(records)
    wait(browser).until(lambda d: d.execute_script(
        f"return document.querySelectorAll('#{ids.LIVE_FIGURE} .scatterlayer .trace').length > 0"),
        message="the wire bytes figure never drew a trace")
    wait_dash_ready(browser)
    screenshot(browser, "live-chat")
    assert console_errors(browser) == []


def test_missing_and_hostile_paths_are_text(live_url, browser, folder, tmp_path):
    outside = tmp_path / "outside.pcap"  # pytest's folder for this test is not one the app may follow
    shutil.copyfile(CHAT, outside)
    open_page(browser, live_url)
    roots = browser.find_element(By.ID, ids.LIVE_ROOTS).text
    assert ALLOWED_FOLDERS in roots and str(folder.parent) not in roots  # described, never a server path
    missing = folder / "missing.pcap"
    enter_path(browser, str(missing))
    status_when(browser, lambda t: t == f"{missing}: no such file", "no error for a missing file")
    enter_path(browser, str(folder))
    status_when(browser, lambda t: t == f"{folder}: not a regular file", "no error for a directory")
    notes = folder / "notes.txt"
    notes.write_text("hello, this is not a capture\n")
    enter_path(browser, str(notes))
    status_when(browser, lambda t: t == f"{notes}: not a pcap or pcapng capture (magic 68656c6c)",
                "no error for a file that is not a capture")
    enter_path(browser, HOSTILE)
    status_when(browser, lambda t: t == f"{HOSTILE}: no such file", "the hostile path was not shown as text")
    for escape in (str(outside), os.path.join(folder, os.path.relpath(outside, folder))):  # absolute; `..`
        enter_path(browser, escape)
        refused = status_when(browser, lambda t, e=escape: t.startswith(f"{e}: not inside a folder"),
                              f"{escape} was not refused")
        assert str(folder.parent) not in refused.replace(escape, "") and "--live-dir" in refused
    hostile_outside = f"{outside.parent}/{HOSTILE}"
    enter_path(browser, hostile_outside)
    status_when(browser, lambda t: t.startswith(f"{hostile_outside}: not inside a folder"),
                "the hostile path outside was not shown as text")
    wait_dash_ready(browser)
    assert browser.execute_script("return document.images.length") == 0
    assert dialogs(browser) == [] and page_errors(browser) == []
    assert console_errors(browser) == []
    screenshot(browser, "live-hostile-path")
