"""`inspector dashboard` itself (waitress, the Host allow-list, the security headers) in headless
Chromium: every page renders with no console error and nothing blocked by its
Content-Security-Policy; a page on another origin cannot frame it; a name that resolves to this
machine but is not the dashboard's (as after DNS rebinding) gets the refusal, not the app."""

from __future__ import annotations

import http.server
import signal
import threading

import pytest
from selenium.webdriver.common.by import By

from dashboard import ids
from tests.dashboard.browser.helpers import (
    ANALYSIS_TIMEOUT,
    BUNDLED,
    clear_console,
    console_errors,
    csp_violations,
    screenshot,
    wait,
    wait_css,
    wait_dash_ready,
)
from tests.dashboard.served import DashboardProcess

PAGES = ("/", "/compare", "/connections", "/frames", "/findings", "/upload", "/live")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    server = DashboardProcess(BUNDLED, tmp_path_factory.mktemp("served"))
    try:
        server.wait_analysed(ANALYSIS_TIMEOUT)
        yield server
    finally:
        server.stop(signal.SIGTERM)


def test_every_page_renders_under_the_csp(served, browser):
    for page in PAGES:
        clear_console(browser)
        browser.get(f"http://{served.host}{page}")
        wait_css(browser, f"#{ids.NAV}")
        wait_dash_ready(browser)
        assert csp_violations(browser) == [], page
        assert console_errors(browser) == [], page
        screenshot(browser, f"served{page.replace('/', '-') or '-overview'}")


@pytest.fixture
def framer(served):
    """A page on another origin of this machine (another port) that frames the dashboard."""
    page = f"<iframe id=f width=600 height=400 src='http://{served.host}/'></iframe>".encode()

    class Framer(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *_):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Framer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()
    server.server_close()


def test_another_origin_cannot_frame_it(browser, framer):
    browser.get(framer)
    browser.switch_to.frame("f")
    # Chromium shows its own error page in the frame instead of the dashboard
    text = wait(browser).until(lambda d: "refused to connect" in (t := d.execute_script("return document.body.innerText")) and t,
                               message="the frame never showed the browser's refusal")
    assert not browser.find_elements(By.ID, "react-entry-point"), text
    browser.switch_to.default_content()


def test_a_rebound_name_gets_the_refusal(served, browser):
    # Chromium resolves every *.localhost name to this machine: the request reaches the dashboard
    # with Host evil.localhost, as a rebound name would
    browser.get(f"http://evil.localhost:{served.port}/")
    body = wait_css(browser, "body").text
    assert body.startswith("Host not allowed") and not browser.find_elements(By.ID, "react-entry-point")
