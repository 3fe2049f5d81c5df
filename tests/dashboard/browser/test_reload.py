"""A page opened while the analysis still runs fills in by itself when it ends (the browser reloads it)."""

from __future__ import annotations

import threading

from dashboard import ids
from inspector.analysis.pipeline import analyze_captures
from tests.dashboard.browser.helpers import CHAT, TIMEOUT, console_errors, screenshot, table_rows, wait, wait_css, wait_dash_ready



def test_overview_opened_during_analysis_shows_the_tables_when_it_ends(serve_app, browser):
    from dashboard.app import create_app
    from dashboard.store import TableStore

    release = threading.Event()

    def analyze_when_released(paths, progress):  # the real analysis, held back until the page is open
        progress(str(paths[0]), 0.5)  # as if half the file had been read
        assert release.wait(TIMEOUT * 3), "the test never released the analysis"
        return analyze_captures(paths, progress=progress)

    store = TableStore([CHAT], analyze=analyze_when_released)
    url = serve_app(create_app(store))
    try:
        browser.get(url + "/")
        wait_css(browser, f"#{ids.OVERVIEW_TABLE}")
        wait_dash_ready(browser)
        progress = browser.find_element("id", ids.PROGRESS).text
        assert "analysing chat.pcap: 50% (0 of 1 done)" in progress and "reloads when done" in progress, progress
        assert not any("chat.pcap" in " ".join(row) for row in table_rows(browser, f"#{ids.OVERVIEW_TABLE}"))
        browser.execute_script("window.__before_reload = true;")
    finally:
        release.set()
    assert store.wait(TIMEOUT * 3)

    def filled_after_reload(driver):
        if driver.execute_script("return window.__before_reload === true;"):
            return False  # still the page built from empty tables
        rows = table_rows(driver, f"#{ids.OVERVIEW_TABLE}")
        return any("chat.pcap" in " ".join(row) for row in rows)

    wait(browser, TIMEOUT * 2).until(filled_after_reload, message="the page never reloaded with the analysed capture")
    wait_dash_ready(browser)
    assert browser.find_element("id", ids.PROGRESS).text == "1 of 1 captures analysed"
    assert console_errors(browser) == []
    screenshot(browser, "overview-after-background-analysis")
