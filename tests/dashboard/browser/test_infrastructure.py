"""The browser-test infrastructure itself, on tiny Dash apps built here: a real
server, headless Chromium, callbacks, the console log, screenshots, and that
hostile text is shown as text."""

from __future__ import annotations

import dash
import plotly.graph_objects as go
from dash import Input, Output, dcc, html
from selenium.webdriver.common.by import By

from tests.dashboard.browser.helpers import (
    console_errors,
    dialogs,
    page_errors,
    screenshot,
    wait,
    wait_css,
    wait_dash_ready,
    wait_text,
)

XSS = "<img src=x onerror=alert(1)>"


def tiny_app() -> dash.Dash:
    app = dash.Dash(__name__, title="tiny")
    app.layout = html.Div(
        [
            html.H1("Tiny app", id="title"),
            html.Div("3", id="n-points"),
            html.Div(id="out"),
            dcc.Graph(id="graph"),
        ]
    )

    @app.callback(Output("out", "children"), Output("graph", "figure"), Input("n-points", "children"))
    def draw(n):
        n = int(n)
        fig = go.Figure(go.Bar(x=list(range(n)), y=[i * i for i in range(n)]))
        return f"callback ran: {n} points", fig

    return app


def test_tiny_app_renders_with_callback_and_no_console_errors(serve_app, browser):
    url = serve_app(tiny_app())
    browser.get(url)
    wait_text(browser, "#out", "callback ran: 3 points")
    # the figure reached plotly.js: three bars drawn
    wait(browser).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#graph .trace.bars .point")) == 3)
    wait_dash_ready(browser)
    assert browser.title == "tiny"
    assert console_errors(browser) == []
    assert page_errors(browser) == []
    path = screenshot(browser, "infra-tiny-app")
    assert path.stat().st_size > 1000 and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def xss_app() -> dash.Dash:
    app = dash.Dash(__name__, title="xss")
    app.layout = html.Div(
        [
            html.Pre(XSS, id="payload-static"),
            html.Div(id="payload-callback"),
            dcc.Store(id="payload-store", data=XSS),
        ]
    )

    # the same string coming through a callback, as a payload from the tables would
    @app.callback(Output("payload-callback", "children"), Input("payload-store", "data"))
    def show(data):
        return data

    return app


def test_hostile_payload_is_shown_as_text_and_runs_nothing(serve_app, browser):
    url = serve_app(xss_app())
    browser.get(url)
    static = wait_text(browser, "#payload-static", XSS)
    dynamic = wait_text(browser, "#payload-callback", XSS)
    wait_dash_ready(browser)
    for el in (static, dynamic):
        assert el.get_attribute("textContent") == XSS
        assert el.find_elements(By.CSS_SELECTOR, "*") == []  # a text node, no child element
    assert browser.find_elements(By.TAG_NAME, "img") == []
    assert browser.execute_script("return document.images.length") == 0
    # the hook is live (sanity: it does record a dialog) ...
    assert browser.execute_script("return typeof window.__dialogs") == "object"
    # ... and recorded none; no native dialog is open either
    assert dialogs(browser) == []
    assert page_errors(browser) == []
    assert console_errors(browser) == []
    screenshot(browser, "infra-xss-as-text")


def test_alert_hook_catches_a_dialog(serve_app, browser):
    """The negative control: the check above would see an alert if one ran."""
    browser.get(serve_app(xss_app()))
    wait_css(browser, "#payload-static")
    browser.execute_script("alert(1)")
    assert dialogs(browser) == ["alert:1"]


def test_console_errors_are_collected(serve_app, browser):
    """The negative control for the console check: an error logged is seen."""
    browser.get(serve_app(xss_app()))
    wait_css(browser, "#payload-static")
    browser.execute_script("console.error('boom from the test')")
    wait(browser).until(lambda d: any("boom from the test" in m for m in console_errors(d)))
