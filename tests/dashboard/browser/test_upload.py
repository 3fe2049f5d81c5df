"""The Upload page in headless Chromium: a bundled capture given to the dcc.Upload's file input
is analysed and its packet count shown, then appears on the overview; a text file gives the
inspector's error; a file over the limit is refused with a message; a hostile file name stays
text.  No console errors; screenshots under screenshots/."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By

from dashboard import ids
from inspector.analysis.pipeline import analyze_captures
from tests.dashboard.browser.helpers import (
    CHAT,
    console_errors,
    dialogs,
    page_errors,
    screenshot,
    table_rows,
    wait,
    wait_css,
    wait_dash_ready,
)

HOSTILE = "<img src=x onerror=alert(1)>.pcap"


@pytest.fixture(scope="module")
def upload_url(serve_app):
    from dashboard.app import create_app
    from dashboard.store import TableStore

    store = TableStore([])  # nothing loaded: what the pages show after an upload is the upload
    assert store.wait(30)
    return serve_app(create_app(store)) + "/upload"


def send_file(driver, path: Path) -> None:
    # the <input type=file> dcc.Upload hides inside its drop zone; a click would open a dialog
    field = wait(driver).until(lambda d: d.find_element(By.CSS_SELECTOR, f"#{ids.UPLOAD} input[type=file]"))
    field.send_keys(str(path))


def status_when(driver, predicate, message: str) -> str:
    def shown(d):
        text = d.find_element(By.ID, ids.UPLOAD_STATUS).text
        return text if predicate(text) else False

    return wait(driver).until(shown, message=message)


def open_page(driver, url: str) -> None:
    driver.get(url)
    wait_css(driver, f"#{ids.UPLOAD}")
    wait_dash_ready(driver)
    # The page's sender (assets/upload.js) is installed by a clientside callback after the page
    # renders; a file chosen before that goes to dcc.Upload, which nothing listens to.
    wait_css(driver, f"#{ids.UPLOAD}[data-sender]")


def test_upload_a_capture_then_a_text_file(upload_url, browser, tmp_path):
    open_page(browser, upload_url)
    screenshot(browser, "upload-empty")
    send_file(browser, CHAT)
    expected = analyze_captures([CHAT])["captures"].iloc[0]
    status = status_when(browser, lambda t: t.startswith("chat.pcap: added:"), "chat.pcap never shown as added")
    assert f"{int(expected['packets']):,} packets" in status
    assert f"{int(expected['connections']):,} connections" in status
    header, row = wait(browser).until(lambda d: table_rows(d, f"#{ids.UPLOAD_TABLE}")[:2] or False,
                                      message="the uploaded capture's table never rendered")
    shown = dict(zip(header, row))
    assert shown["capture"] == "chat.pcap" and int(shown["packets"]) == int(expected["packets"])
    wait_dash_ready(browser)
    screenshot(browser, "upload-chat")

    notes = tmp_path / "notes.txt"
    notes.write_text("hello, this is not a capture\n")
    send_file(browser, notes)
    status = status_when(browser, lambda t: t.startswith("Not added:"), "the text file's error never shown")
    assert status == "Not added: notes.txt: not a pcap or pcapng capture (magic 68656c6c)"
    wait_dash_ready(browser)
    screenshot(browser, "upload-not-a-capture")
    assert console_errors(browser) == []

    # added to what the other pages show
    browser.find_element(By.LINK_TEXT, "Overview").click()
    wait(browser).until(lambda d: any("chat.pcap" in c for r in table_rows(d, f"#{ids.OVERVIEW_TABLE}") for c in r),
                        message="the uploaded capture never appeared on the overview")
    wait_dash_ready(browser)
    assert console_errors(browser) == []


def test_file_over_the_limit_is_refused_with_a_message(upload_url, browser, monkeypatch):
    from dashboard import uploads

    monkeypatch.setattr(uploads, "MAX_UPLOAD_BYTES", CHAT.stat().st_size - 1)  # read when the page renders
    open_page(browser, upload_url)
    # the page's sender (assets/upload.js) is installed once the upload has rendered
    wait(browser).until(lambda d: d.execute_script(f"return document.getElementById('{ids.UPLOAD}').dataset.sender"),
                        message="the upload sender was never installed")
    send_file(browser, CHAT)
    status = status_when(browser, lambda t: "not uploaded" in t, "no message for a file over the limit")
    assert status.startswith("chat.pcap: not uploaded: ") and "over the upload limit" in status
    screenshot(browser, "upload-too-big")
    assert console_errors(browser) == []


def test_hostile_file_name_stays_text(upload_url, browser, tmp_path):
    hostile = tmp_path / HOSTILE
    hostile.write_bytes(gzip.compress(CHAT.read_bytes()))  # new bytes: really analysed and added
    open_page(browser, upload_url)
    send_file(browser, hostile)
    status_when(browser, lambda t: t.startswith(HOSTILE + ": added:"), "the hostile name never shown as text")
    wait_dash_ready(browser)
    assert browser.execute_script("return document.images.length") == 0
    assert dialogs(browser) == [] and page_errors(browser) == []
    assert console_errors(browser) == []
    screenshot(browser, "upload-hostile-name")


def test_the_status_follows_the_analysis_in_the_worker(serve_app, browser, tmp_path):
    """The upload returns at once; the page shows the worker's progress, then the result."""
    import threading

    from dashboard.app import create_app
    from dashboard.store import TableStore

    release = threading.Event()

    def slow(paths, progress=None):
        progress(str(paths[0]), 0.25)
        assert release.wait(60)
        return analyze_captures(paths, progress=progress)

    store = TableStore([], analyze_upload=slow)
    assert store.wait(30)
    open_page(browser, serve_app(create_app(store)) + "/upload")
    slow_file = tmp_path / "slow.pcap"
    slow_file.write_bytes(CHAT.read_bytes())
    send_file(browser, slow_file)
    status_when(browser, lambda t: t == "slow.pcap: analysing: 25%.", "the analysis's progress was never shown")
    screenshot(browser, "upload-analysing")
    release.set()
    status_when(browser, lambda t: t.startswith("slow.pcap: added: "), "the upload was never shown as added")
    wait_dash_ready(browser)
    assert console_errors(browser) == []
    store.close()
