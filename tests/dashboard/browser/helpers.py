"""Helpers for the real-browser tests: waits, console log, alerts, screenshots.

Importable from the tests (``from tests.dashboard.browser.helpers import ...``);
the fixtures that use them live in ``conftest.py`` next to this file.
"""

from __future__ import annotations

import re
from pathlib import Path

from selenium.common.exceptions import NoAlertPresentException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

REPO = Path(__file__).resolve().parents[3]
BUNDLED = sorted((REPO / "captures").glob("*.pcap*"))
CHAT = REPO / "captures" / "chat.pcap"
# /screenshots/ is in .gitignore: a person looks at these, git never sees them.
SCREENSHOTS = REPO / "screenshots"
TIMEOUT = 20.0  # seconds; generous, CI machines have 2 cores
ANALYSIS_TIMEOUT = TIMEOUT * 3  # an app analyses its captures in the background
POLL = 0.05

# Injected into every document before its own scripts run (CDP
# Page.addScriptToEvaluateOnNewDocument): records alert/confirm/prompt calls
# uncaught errors and Content-Security-Policy violations, instead of letting a dialog block the driver.
HOOK_JS = r"""
(() => {
  window.__dialogs = [];
  window.__page_errors = [];
  window.__csp_violations = [];
  document.addEventListener("securitypolicyviolation", (e) => {
    window.__csp_violations.push(e.violatedDirective + " " + (e.blockedURI || "inline"));
  });
  for (const name of ["alert", "confirm", "prompt"]) {
    window[name] = (msg) => { window.__dialogs.push(name + ":" + String(msg)); return null; };
  }
  window.addEventListener("error", (e) => {
    window.__page_errors.push(String(e.message || (e.target && e.target.outerHTML) || e));
  }, true);
})();
"""


def wait(driver: WebDriver, timeout: float = TIMEOUT) -> WebDriverWait:
    """An explicit wait; a re-render between finding and reading an element
    (stale element) just means: look again."""
    return WebDriverWait(
        driver, timeout, poll_frequency=POLL, ignored_exceptions=(StaleElementReferenceException,)
    )


def wait_css(driver: WebDriver, css: str, timeout: float = TIMEOUT):
    """The first element matching ``css`` once it is visible."""
    return wait(driver, timeout).until(
        EC.visibility_of_element_located((By.CSS_SELECTOR, css)),
        message=f"no visible element {css!r} after {timeout:g} s",
    )


def wait_text(driver: WebDriver, css: str, text: str, timeout: float = TIMEOUT):
    """Wait until the element matching ``css`` shows exactly ``text``; return it."""

    def shown(d):
        for el in d.find_elements(By.CSS_SELECTOR, css):
            if el.text == text:
                return el
        return False

    return wait(driver, timeout).until(shown, message=f"{css!r} never showed {text!r}")


def wait_dash_ready(driver: WebDriver, timeout: float = TIMEOUT) -> None:
    """Wait until the Dash renderer has mounted and no callback is pending.

    Dash marks the document title "Updating..." and keeps a
    ``[data-dash-is-loading]`` attribute on components while callbacks run.
    """

    def ready(d):
        return d.execute_script(
            "return !!document.querySelector('#react-entry-point > *')"
            " && !document.querySelector('[data-dash-is-loading=\"true\"]')"
            " && document.title !== 'Updating...';"
        )

    wait(driver, timeout).until(ready, message="the Dash app never finished rendering")


# The rows of an AG Grid under a CSS selector, read in one script call so that a re-render
# cannot tear the snapshot.  A row may be split over several containers (pinned columns),
# so cells are gathered by the row's row-index; rows still loading have no cells yet.
_GRID_JS = r"""
let grid = document.querySelector(arguments[0]);
if (!grid) { return {columns: [], rows: []}; }
if (grid.tagName !== 'TABLE' && !grid.querySelector('.ag-root') && grid.querySelector('table')) { grid = grid.querySelector('table'); }
if (grid.tagName === 'TABLE') {  // a small table: plain HTML, every cell names its column (data-col)
  const cellsOf = (tr) => Object.fromEntries(Array.from(tr.querySelectorAll('td[data-col]')).map(
    (c) => [c.getAttribute('data-col'), c.innerText.trim()]));
  return {columns: Array.from(grid.querySelectorAll('thead th[data-col]')).map((h) => [h.getAttribute('data-col'), h.innerText.trim()]),
          rows: Array.from(grid.querySelectorAll('tbody tr')).map(cellsOf).filter((r) => Object.keys(r).length > 0)};
}
const columns = Array.from(grid.querySelectorAll('.ag-header-row-column .ag-header-cell[col-id]')).map(
  (h) => [h.getAttribute('col-id'), h.innerText.trim()]);
const rows = new Map();
for (const row of grid.querySelectorAll('.ag-row')) {
  if (row.classList.contains('ag-row-loading')) { continue; }
  const index = Number(row.getAttribute('row-index'));
  const cells = rows.get(index) || {};
  for (const cell of row.querySelectorAll('.ag-cell[col-id]')) { cells[cell.getAttribute('col-id')] = cell.innerText.trim(); }
  rows.set(index, cells);
}
return {columns: columns,
        rows: Array.from(rows.entries()).sort((a, b) => a[0] - b[0]).map((e) => e[1]).filter((r) => Object.keys(r).length > 0)};
"""


def table_rows(driver: WebDriver, css: str) -> list[list[str]]:
    """The AG Grid (or small HTML table) under ``css`` as lists of cell texts: its header row,
    then its body rows in display order, cells in column order ([] before it is there)."""
    grid = driver.execute_script(_GRID_JS, css)
    if not grid["columns"]:
        return []
    ids = [column for column, _ in grid["columns"]]
    return [[text for _, text in grid["columns"]]] + [[row.get(column, "") for column in ids] for row in grid["rows"]]


def console_log(driver: WebDriver) -> list[dict]:
    """Every browser console entry so far (Chromium hands each out once, so they
    are accumulated on the driver)."""
    kept = driver.__dict__.setdefault("_console_entries", [])
    kept.extend(driver.get_log("browser"))
    return list(kept)


def clear_console(driver: WebDriver) -> None:
    """Forget the console entries so far (before loading the next page)."""
    driver.get_log("browser")
    driver.__dict__["_console_entries"] = []


def console_errors(driver: WebDriver) -> list[str]:
    """Console entries at level SEVERE (JS errors, failed requests, React errors)."""
    return [e["message"] for e in console_log(driver) if e.get("level") == "SEVERE"]


def dialogs(driver: WebDriver) -> list[str]:
    """alert/confirm/prompt calls the page made, as ``"alert:1"``; also fails
    if a real dialog is open (the hook was bypassed)."""
    try:
        text = driver.switch_to.alert.text
    except NoAlertPresentException:
        pass
    else:
        return [f"native-dialog:{text}"]
    return list(driver.execute_script("return window.__dialogs || [];"))


def page_errors(driver: WebDriver) -> list[str]:
    """Uncaught errors and failed resource loads the hook saw in this document."""
    return list(driver.execute_script("return window.__page_errors || [];"))


def csp_violations(driver: WebDriver) -> list[str]:
    """What the page's Content-Security-Policy blocked in this document ("directive blocked-uri")."""
    return list(driver.execute_script("return window.__csp_violations || [];"))


def screenshot(driver: WebDriver, name: str) -> Path:
    """Save a PNG of the window as ``screenshots/<name>.png`` at the repo root."""
    SCREENSHOTS.mkdir(exist_ok=True)
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "page"
    path = SCREENSHOTS / f"{safe}.png"
    if not driver.save_screenshot(str(path)):
        raise AssertionError(f"could not save screenshot {path}")
    return path


# Plotly keeps numpy arrays sent by plotly.py as typed-array specs ({dtype, bdata}),
# decoded into `_inputArray` once drawn: hand plain lists back either way.
_PLOTLY_JS = r"""
const gd = document.querySelector('#' + CSS.escape(arguments[0]) + ' .js-plotly-plot');
if (!gd || !gd.data) { return null; }
const plain = (v) => {
  if (v === null || v === undefined || typeof v !== 'object' || Array.isArray(v)) { return v === undefined ? null : v; }
  if (v._inputArray) { return Array.from(v._inputArray); }
  if (ArrayBuffer.isView(v)) { return Array.from(v); }
  return v;
};
const title = gd.layout && gd.layout.title;
return {
  title: typeof title === 'string' ? title : (title && title.text) || '',
  traces: gd.data.map((t) => ({name: t.name === undefined ? null : t.name, meta: t.meta === undefined ? null : t.meta,
                               type: t.type || null, x: plain(t.x), y: plain(t.y)})),
};
"""


def _decoded(values):
    """A trace's x or y as a list (a still-encoded typed-array spec decoded here)."""
    if isinstance(values, dict) and "bdata" in values:
        import base64

        import numpy as np

        return np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"]).tolist()
    return values


def plotly_figure(driver: WebDriver, element_id: str) -> dict | None:
    """What the dcc.Graph ``#element_id`` draws, read from the plot's own ``data`` in the
    browser: ``{"title": str, "traces": [{"name", "meta", "type", "x", "y"}]}`` with x and y
    as lists; None until plotly has drawn it."""
    figure = driver.execute_script(_PLOTLY_JS, element_id)
    if figure is None:
        return None
    for trace in figure["traces"]:
        trace["x"], trace["y"] = _decoded(trace["x"]), _decoded(trace["y"])
    return figure


def grid_records(driver: WebDriver, element_id: str) -> list[dict[str, str]]:
    """The body rows of the AG Grid (or small HTML table) ``#element_id`` as {column id: cell text},
    in display order."""
    return driver.execute_script(_GRID_JS, "#" + element_id)["rows"]


def grid_page_count(driver: WebDriver, element_id: str) -> int | None:
    """The page count a paged AG Grid shows ("Page 1 of N"), or None when it shows no pager."""
    text = driver.execute_script(
        "const e = document.querySelector('#' + CSS.escape(arguments[0]) + ' .ag-paging-panel [data-ref=lbTotal]');"
        " return e ? e.innerText : null;",
        element_id,
    )
    return int(text) if text and text.strip().isdigit() else None


def grid_row_summary(driver: WebDriver, element_id: str) -> str | None:
    """The row summary of a paged AG Grid's pager ("1 to 20 of 46"), or None without a pager."""
    return driver.execute_script(
        "const e = document.querySelector('#' + CSS.escape(arguments[0]) + ' .ag-paging-row-summary-panel');"
        " return e ? e.innerText.trim() : null;",
        element_id,
    )
