"""A hostile WebSocket payload on the real Frames page, in headless Chromium.

The test records its own small capture (a real `websockets` echo server and
client on 127.0.0.1, tcpdump on lo) in which the client sends the text message
``<img src=x onerror=alert(1)>``; the app is built over that capture, the frame
is selected on the Frames page, and the payload must be shown verbatim as text
with no <img> in the DOM, no dialog and no console error.
"""

from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By

from dashboard import ids
from tests.conftest import live_traffic_unavailable
from tests.dashboard.browser.helpers import (
    TIMEOUT,
    console_errors,
    dialogs,
    grid_records,
    page_errors,
    screenshot,
    wait,
    wait_dash_ready,
)

HOSTILE = "<img src=x onerror=alert(1)>"


def record_hostile_capture(path):
    """One WebSocket connection: the client sends HOSTILE, the server echoes it, the client closes."""
    from tests import traffic

    async def chat(port: int) -> None:
        async with traffic.ws_connect(f"ws://{traffic.HOST}:{port}/", ping_interval=None, compression=None) as ws:
            await ws.send(HOSTILE)
            assert await ws.recv() == HOSTILE
            await ws.close(1000, "bye")

    with traffic.servers(rest=False, ws=[{"compression": None}]) as (lt, _, (wss,)):
        with traffic.tcpdump_capture(path, [wss.port]):
            lt.run(chat(wss.port))
    return path


@pytest.fixture(scope="module")
def frames_url(serve_app, tmp_path_factory):
    reason = live_traffic_unavailable()
    if reason:
        pytest.skip(reason)
    from dashboard.app import create_app
    from dashboard.store import TableStore

    capture = record_hostile_capture(tmp_path_factory.mktemp("hostile") / "hostile.pcap")
    store = TableStore([capture])
    assert store.wait(TIMEOUT * 3), store.progress().text
    assert store.progress().errors == (), store.progress().text
    frames = store.tables()["ws_frames"]
    assert (frames["payload_text"] == HOSTILE).sum() == 2, "the capture lacks the payload both ways"
    return serve_app(create_app(store)) + "/frames"


def click_client_text_frame(driver) -> None:
    """Click the `type` cell of the client's text frame in the frames grid (a cellClicked)."""

    def cell(d):
        for row in grid_records(d, ids.FRAMES_TABLE):
            if row.get("type") == "text" and row.get("direction") == "client":
                return d.find_element(By.CSS_SELECTOR, f"#{ids.FRAMES_TABLE} .ag-row[row-id='{row['key']}'] .ag-cell[col-id='type']")
        return False

    wait(driver).until(cell, message="the frames table never listed the client's text frame").click()


def test_hostile_payload_is_text_on_the_frames_page(frames_url, browser):
    browser.get(frames_url)
    click_client_text_frame(browser)
    detail = f"#{ids.FRAMES_DETAIL} pre"

    def shown(d):
        return next((el for el in d.find_elements(By.CSS_SELECTOR, detail) if el.get_attribute("textContent") == HOSTILE), False)

    pre = wait(browser).until(shown, message=f"the frame's payload never showed as {HOSTILE!r}")
    wait_dash_ready(browser)
    assert pre.text == HOSTILE  # what a person sees, verbatim
    assert pre.find_elements(By.CSS_SELECTOR, "*") == []  # a text node, no element parsed out of it
    assert browser.find_elements(By.TAG_NAME, "img") == []
    assert browser.execute_script("return document.images.length") == 0
    assert browser.execute_script("return typeof window.__dialogs") == "object"  # the alert hook is live
    assert dialogs(browser) == []
    assert page_errors(browser) == []
    assert console_errors(browser) == []
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", pre)  # the payload in the picture
    screenshot(browser, "frames-hostile-payload")
