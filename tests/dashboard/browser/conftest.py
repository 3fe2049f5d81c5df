"""Fixtures for real-browser tests of the Dash app, in headless Chromium.

Why plain Selenium and not dash[testing]'s ``dash_duo``: dash_duo builds its
own Chrome options (no way to pass --no-sandbox, a fresh --user-data-dir or
the flags this closed network needs without subclassing its Browser), pulls in
percy and other extras, and its server runner is tied to one app per test.
Selenium with Debian's chromium and chromedriver given by path is a few lines,
and Selenium Manager is never asked to download a driver or browser (it is
skipped when both paths are given; SE_OFFLINE makes sure of it).

API
- ``serve_app(app) -> base_url``: session fixture giving a function that serves
  a ``dash.Dash`` on 127.0.0.1 and a free port in a background thread
  (werkzeug), answers once ready, and shuts every server down at the end.
- ``browser``: a fresh headless Chromium WebDriver per test (window 1400x1000,
  its own temporary profile, console log at level ALL, alert hook installed).
- helpers in ``helpers.py``: ``screenshot(driver, name)``, ``console_errors``,
  ``dialogs``, ``wait``, ``wait_css``, ``wait_text``, ``wait_dash_ready``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from tests.dashboard.browser.helpers import HOOK_JS, POLL, TIMEOUT, screenshot  # noqa: F401

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
MISSING = (
    "Debian chromium/chromium-driver not installed (/usr/bin/chromium, /usr/bin/chromedriver); "
    "the README's test command installs them"
)
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",  # running as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # The machine's network is closed: without these Chromium keeps trying to
    # reach Google's services, and fails, at every start.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1000",
    "--disable-dev-shm-usage",
]

os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager: never download


def chromium_options(profile: str):
    """Options for Debian's headless chromium with this machine's flags and a fresh profile."""
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return options


def browser_unavailable() -> str | None:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        return MISSING
    return None


class _ServedApp:
    def __init__(self, app) -> None:
        from werkzeug.serving import make_server

        # threaded: the browser loads assets and fires callbacks concurrently.
        self.server = make_server("127.0.0.1", 0, app.server, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, name=f"dash-{self.server.server_port}", daemon=True
        )
        self.thread.start()
        self._wait_ready()

    def _wait_ready(self) -> None:
        # The first request also runs Dash's _setup_server, which takes the
        # callbacks registered with dash.callback: do it now, for this app.
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                with urllib.request.urlopen(self.url + "/", timeout=TIMEOUT) as r:
                    if r.status == 200:
                        return
            except OSError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(POLL)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(TIMEOUT)


@pytest.fixture(scope="session")
def serve_app():
    served: list[_ServedApp] = []

    def serve(app) -> str:
        s = _ServedApp(app)
        served.append(s)
        return s.url

    yield serve
    for s in served:
        s.stop()


@pytest.fixture
def browser():
    reason = browser_unavailable()
    if reason:
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    options = chromium_options(profile)
    # A dialog the hook missed stays open so the test can see it.
    options.set_capability("unhandledPromptBehavior", "ignore")
    service = Service(executable_path=str(CHROMEDRIVER))
    driver = webdriver.Chrome(service=service, options=options)
    try:
        driver.set_window_size(1400, 1000)
        driver.set_page_load_timeout(TIMEOUT * 3)
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": HOOK_JS})
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
