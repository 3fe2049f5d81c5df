"""Every page of the real dashboard in headless Chromium: it renders, the
browser console shows no error, a screenshot is saved under screenshots/, and
the overview shows the same numbers as the analysis tables."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import dash
from selenium.webdriver.common.by import By

from dashboard import ids
from inspector.analysis.pipeline import analyze_captures
from tests.dashboard.browser.helpers import (
    ANALYSIS_TIMEOUT,
    BUNDLED,
    clear_console,
    console_errors,
    screenshot,
    table_rows,
    wait,
    wait_css,
    wait_dash_ready,
)



def make_app() -> dash.Dash:
    from dashboard.app import create_app
    from dashboard.store import TableStore

    # Analyse first, then build the app over the finished store: the pages read
    # the tables when they load, so a page loaded mid-analysis would be empty.
    store = TableStore([str(p) for p in BUNDLED])
    assert store.wait(ANALYSIS_TIMEOUT), store.progress().text
    assert store.progress().errors == (), store.progress().text
    return create_app(store)


@pytest.fixture(scope="module")
def dashboard_url(serve_app):
    # Built once: dash.callback registrations are taken by the first app set
    # up, and the page modules are imported only once per process.
    app = make_app()
    assert isinstance(app, dash.Dash)
    return serve_app(app)


@pytest.fixture(scope="module")
def pages(dashboard_url):
    registry = list(dash.page_registry.values())
    assert registry, "create_app registered no page"
    return registry


def load_page(driver, url: str) -> None:
    driver.get(url)
    # the pages container has content and no callback is in flight
    wait(driver).until(
        lambda d: d.execute_script(
            "const c = document.getElementById('_pages_content');"
            " return !!c && c.children.length > 0 && c.innerText.trim().length > 0;"
        ),
        message=f"{url}: the page never rendered",
    )
    wait_dash_ready(driver)
    # every graph drawn by Plotly (its bundle loads lazily, after the page's content)
    wait(driver).until(
        lambda d: d.execute_script(
            "return Array.from(document.querySelectorAll('.dash-graph'))"
            ".every(g => g.querySelector('.main-svg'));"
        ),
        message=f"{url}: a figure was never drawn",
    )


def test_every_page_renders_without_console_errors(dashboard_url, pages, browser):
    problems = []
    for page in pages:
        if page.get("path_template"):
            problems.append(f"{page['module']}: path template {page['path_template']} not covered")
            continue
        url = dashboard_url + page["relative_path"]
        try:
            load_page(browser, url)
        except Exception as exc:  # report every page, not only the first
            problems.append(f"{page['relative_path']}: {type(exc).__name__}: {exc}")
        else:
            errors = console_errors(browser)
            if errors:
                problems.append(f"{page['relative_path']}: console errors {errors}")
            problems += page_marked(browser, page)
        name = page["relative_path"].strip("/") or "overview"
        screenshot(browser, f"page-{name}")
        clear_console(browser)  # the next page starts with a clean console
    assert problems == []


def page_marked(driver, page) -> list[str]:
    """Problems with how the page is named: its own title in the browser, and the navigation bar
    marking its link, and only its link, as the current page."""
    problems = []
    try:
        wait(driver).until(lambda d: d.title == f"{page['name']} · wire-inspector", message="title")
    except Exception:
        problems.append(f"{page['relative_path']}: title {driver.title!r}")
    current = [link.text for link in driver.find_elements(By.CSS_SELECTOR, "nav#nav a.nav-link.current")]
    if current != [page["name"]]:
        problems.append(f"{page['relative_path']}: the navigation bar marks {current}")
    return problems


def read_table(driver, element_id: str, must_contain: str) -> tuple[list[str], list[list[str]]]:
    """Header and body rows of the grid inside #element_id,
    once a body row mentions ``must_contain``."""

    def loaded(d):
        table = table_rows(d, f"#{element_id}")
        header = [r for r in table if any(c.lower().startswith("connection") for c in r)]
        body = [r for r in table if any(must_contain in c for c in r)]
        return (header[0], body) if header and body else False

    header, body = wait(driver, ANALYSIS_TIMEOUT).until(
        loaded, message=f"#{element_id} never showed a connections column and a row for {must_contain}"
    )
    return [h.lower() for h in header], body


def as_int(text: str) -> int | None:
    digits = re.sub(r"[\s,\u202f\u00a0_']", "", text)
    return int(digits) if re.fullmatch(r"\d+", digits) else None


def test_overview_numbers_equal_the_analysis(dashboard_url, browser):
    """Every per-capture integer the overview shows in a column named like a
    column of the analysis's `captures` table equals that table's value."""
    overview = next(p for p in dash.page_registry.values() if p["path"] == "/")
    browser.get(dashboard_url + overview["relative_path"])
    wait_css(browser, f"#{ids.OVERVIEW_TABLE}")
    captures = analyze_captures(BUNDLED)["captures"]
    columns = ["packets", "connections", "wire_bytes"]
    checked = []
    for path in BUNDLED:
        expected = captures[captures["capture"].map(lambda c: Path(c).name) == path.name].iloc[0]
        header, rows = read_table(browser, ids.OVERVIEW_TABLE, path.name)
        assert len(rows) == 1, (path.name, rows)
        row = dict(zip(header, rows[0]))
        for column in columns:
            shown = next((v for h, v in row.items() if h.replace(" ", "_") == column), None)
            if shown is None:
                continue
            assert as_int(shown) == int(expected[column]), (path.name, column, row)
            checked.append((path.name, column))
        assert (path.name, "connections") in checked, f"no connections column in {header}"
    wait_dash_ready(browser)
    assert console_errors(browser) == []
    screenshot(browser, "overview-numbers")


def test_overview_downloads_the_chosen_captures_har(dashboard_url, browser, tmp_path):
    """"Download HAR" saves the HAR of the capture the overview shows: a valid HAR 1.2 with the
    entries `inspector analyze --format har` writes for that capture (connection ids counted on
    from the captures loaded before it, as on the Connections page); an unknown capture is 404."""
    import json
    import urllib.error
    import urllib.request
    from urllib.parse import parse_qs, urlsplit

    from selenium.webdriver.common.by import By

    from tests.analysis.test_har import assert_valid_har, export_har, load_har

    browser.get(dashboard_url + "/")
    link = wait_css(browser, f"#{ids.OVERVIEW_HAR}")
    (capture,) = parse_qs(urlsplit(link.get_attribute("href")).query)["capture"]
    (path,) = [p for p in BUNDLED if p.name == Path(capture).name]
    browser.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(tmp_path)})
    browser.find_element(By.ID, ids.OVERVIEW_HAR).click()
    saved = tmp_path / f"{path.stem}.har"
    wait(browser).until(lambda d: saved.is_file() and saved.stat().st_size > 0, message=f"{saved.name} was never downloaded")
    downloaded = load_har(saved)
    assert_valid_har(downloaded)
    exported = load_har(export_har(path, tmp_path / "cli")[0])
    got, expected = downloaded["log"]["entries"], exported["log"]["entries"]
    assert len(got) == len(expected) > 0
    offsets = {int(g.pop("connection")) - int(e.pop("connection")) for g, e in zip(got, expected)}
    assert len(offsets) == 1 and got == expected
    screenshot(browser, "overview-har-link")
    try:
        urllib.request.urlopen(dashboard_url + "/download/har?capture=" + "nope.pcap", timeout=30)
        raise AssertionError("an unknown capture was served")
    except urllib.error.HTTPError as error:
        assert error.code == 404
    assert json.loads(saved.read_text())["log"]["creator"]["name"] == "wire-inspector"
