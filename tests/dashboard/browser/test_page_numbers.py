"""The numbers the Overview, REST vs WebSocket, Connections, Frames and Findings pages show
in headless Chromium equal the analysis tables.

Every expected value is computed here with plain pandas from the tables of
`analyze_captures` run on the same captures as the app (never through
`dashboard.aggregate` or `dashboard.figures`, which would compare the dashboard
with itself); the shown values are read from the DOM: table cells, and the
traces of the Plotly figures (the plot element's own `data`).  Each test also
checks that the browser console stayed clean and saves a screenshot under
screenshots/.

The bundled captures have no findings, so the Findings page is also run on an
app over captures that do: a small WebSocket capture built here byte by byte
(unmasked client frames, a masked server frame, a Close with code 1005, a wrong
Sec-WebSocket-Accept) and, when the public corpus is present, four of its
captures with findings.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By

from dashboard import ids
from dashboard.components import PAGE_SIZE
from inspector.analysis.pipeline import analyze_captures
from inspector.analysis.tables import BYTE_CATEGORIES
from tests import factories
from tests.conftest import CORPUS
from tests.dashboard.browser.helpers import (
    ANALYSIS_TIMEOUT,
    BUNDLED,
    console_errors,
    grid_page_count,
    grid_records,
    grid_row_summary,
    plotly_figure,
    screenshot,
    wait,
    wait_css,
    wait_dash_ready,
)

# Captures of the public corpus with findings (small ones); used when the corpus is present.
CORPUS_WITH_FINDINGS = [
    "zeek-websocket-oversized-close-len64.pcapng",
    "suricata-websocket-ping-pong-linux-sll.pcap",
    "zeek-http-raw-ipv4-te-cl-desync.pcap",
    "zeek-websocket-wrong-accept-header.pcap",
]
# What the REST vs WebSocket page counts as a message: one carrying payload (an HTTP
# request or response with a body, a non-empty WebSocket message, a Server-Sent Event); the bytes of the
# application messages carrying none (an empty poll, a 204) are cost, not messages.
APP_ITEMS = ["exchange", "ws_message", "sse_event"]
# A message's layers add up to its wire bytes (the TLS layer: record headers and AEAD overhead of decrypted TLS).
COST_LAYERS = ["app_header_bytes", "wire_payload_bytes", "tls_overhead_bytes", "transport_bytes", "ack_bytes"]
# The REST side of the comparison: request/response over HTTP/1.1 and over HTTP/2.
REST_KINDS = ["rest", "http2"]
# Payload sums per connection; efficiency is the application payload (decoded) over wire bytes.
PAYLOAD_SUMS = ["wire_payload_bytes", "app_payload_bytes", "undecoded_payload_bytes"]
VERDICTS = ("holds", "does not hold", "no material difference", "not measurable here")
MATERIAL = 0.05  # a difference under 5 % of the larger number is no material difference (shown under the claims)


# --- apps --------------------------------------------------------------------------


def serve_over(serve_app, sources: list[Path]) -> str:
    """Serve an app over `sources`, analysed before the first page loads."""
    from dashboard.app import create_app
    from dashboard.store import TableStore

    store = TableStore([str(p) for p in sources])
    assert store.wait(ANALYSIS_TIMEOUT), store.progress().text
    assert store.progress().errors == (), store.progress().text
    return serve_app(create_app(store))


@pytest.fixture(scope="module")
def bundled_url(serve_app):
    return serve_over(serve_app, BUNDLED)


@pytest.fixture(scope="module")
def bundled():
    """The analysis tables of the bundled captures, computed apart from the app."""
    return by_name(analyze_captures(BUNDLED).tables)


@pytest.fixture(scope="module")
def findings_sources(tmp_path_factory) -> list[Path]:
    sources = [write_nonconforming_capture(tmp_path_factory.mktemp("findings") / "nonconforming.pcap")]
    sources += [CORPUS / name for name in CORPUS_WITH_FINDINGS if (CORPUS / name).is_file()]
    return sources


@pytest.fixture(scope="module")
def findings_url(serve_app, findings_sources):
    return serve_over(serve_app, findings_sources)


@pytest.fixture(scope="module")
def findings_tables(findings_sources):
    return by_name(analyze_captures(findings_sources).tables)


# --- a capture with findings, built byte by byte ------------------------------------

WS_KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def write_nonconforming_capture(path: Path) -> Path:
    """Two WebSocket connections breaking RFC 6455: 4 unmasked client frames on 2
    connections, a masked server frame, a Close with code 1005, a wrong accept."""
    def upgrade(accept: str) -> list[tuple[str, bytes]]:
        request = factories.http_request("GET", "/chat", headers={
            "Host": "10.0.0.2:8080", "Upgrade": "websocket", "Connection": "Upgrade",
            "Sec-WebSocket-Key": WS_KEY, "Sec-WebSocket-Version": "13"})
        response = factories.http_response(101, "Switching Protocols", headers={
            "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Accept": accept})
        return [("client", request), ("server", response)]

    first = upgrade(factories.ws_accept(WS_KEY)) + [("client", factories.ws_frame(f"hello {i}".encode())) for i in range(3)] + [
        ("server", factories.ws_frame(b"a masked reply", masked=True)),
        ("client", factories.ws_frame((1005).to_bytes(2, "big"), opcode=8, masked=True)),
    ]
    second = upgrade(factories.ws_accept("c29tZSBvdGhlciBrZXkhIQ==")) + [
        ("client", factories.ws_frame(b"unmasked again")),
        ("server", factories.ws_frame(b"reply")),
    ]
    t0 = 1_700_000_000 * 10**9
    frames = factories.tcp_connection(40001, first, t0) + factories.tcp_connection(40002, second, t0 + 10**9)
    path.write_bytes(factories.pcap_file(frames, nano=True))
    return path


# --- reading the page ------------------------------------------------------------------


def open_page(driver, url: str, ready_css: str) -> None:
    driver.get(url)
    wait_css(driver, ready_css)
    wait_dash_ready(driver)


def figure_when(driver, element_id: str, predicate, message: str) -> dict:
    """The figure of #element_id once `predicate(figure)` holds."""

    def shown(d):
        figure = plotly_figure(d, element_id)
        return figure if figure is not None and predicate(figure) else False

    return wait(driver, ANALYSIS_TIMEOUT).until(shown, message=message)


def records_when(driver, element_id: str, predicate, message: str) -> list[dict[str, str]]:
    """The grid rows of #element_id once `predicate(rows)` holds (and a row exists)."""

    def shown(d):
        rows = grid_records(d, element_id)
        return rows if rows and predicate(rows) else False

    return wait(driver, ANALYSIS_TIMEOUT).until(shown, message=message)


def click_cell(driver, element_id: str, column: str, row_id: str) -> None:
    """Click the cell of `column` in the grid row whose id (getRowId) is `row_id`."""
    css = f"#{element_id} .ag-row[row-id='{row_id}'] .ag-cell[col-id='{column}']"
    wait(driver).until(lambda d: d.find_element(By.CSS_SELECTOR, css), message=f"no cell {css}").click()


def number(text: str) -> float:
    """A number as the page prints it ("14,564", "0.9716", "4.3", "83.2%": 0.832)."""
    if text.endswith("%"):
        return float(text[:-1].replace(",", "")) / 100
    return float(text.replace(",", ""))


def shown_share(text: str, expected: float) -> bool:
    """A share the page prints with one decimal of a percent ("83.2%") is `expected`."""
    return abs(number(text) - expected) <= 0.0005 + 1e-12


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def check_clean(driver, name: str, show: str | None = None) -> None:
    """No callback pending, a screenshot (scrolled to the element `show` when given), a clean console."""
    wait_dash_ready(driver)
    if show is not None:
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", driver.find_element(By.CSS_SELECTOR, show))
    screenshot(driver, name)
    assert console_errors(driver) == []


# --- expected values, with pandas from the tables ---------------------------------------


def short(capture: str) -> str:
    return Path(str(capture)).name


def by_name(tables):
    """The tables with each capture named by its file name, as the app names them (never a path)."""
    return {name: table.assign(capture=table["capture"].map(short)) if "capture" in table.columns else table
            for name, table in tables.items()}


def with_group(connections: pd.DataFrame) -> pd.DataFrame:
    """Connections with `group`: the recorded variant, or the connection kind when there is none."""
    variant = connections["variant"].fillna("").astype(str)
    return connections.assign(group=variant.where(variant != "", connections["kind"].astype(str)))


def group_totals(tables, capture: str) -> pd.DataFrame:
    """Per group of one capture: kind, connections' wire and payload bytes (PAYLOAD_SUMS), messages
    carrying payload, and the cost layers and wire bytes summed over its application messages
    (`app_rows`: how many message_costs rows those are)."""
    conns = with_group(tables["connections"])
    conns = conns[conns["capture"] == capture]
    out = conns.groupby("group").agg(kind=("kind", "first"), wire_bytes=("wire_bytes", "sum"), deflate=("ws_deflate", "any"),
                                     **{column: (column, "sum") for column in PAYLOAD_SUMS})
    group_of = conns.set_index("conn_id")["group"]
    http, ws = tables["http_messages"], tables["ws_messages"]
    # a body carries payload unless it decodes to nothing (a gzip-encoded empty body)
    decoded = http["decompressed_bytes"].fillna(http["body_bytes"]).where(~http["content_encoding"].isin(["", "identity"]), http["body_bytes"])
    # an event stream's body is its events: each Server-Sent Event is a message (carrying its data)
    streams = tables["sse_events"][["conn_id", "exchange_id"]].drop_duplicates().assign(stream=True)
    http = http.merge(streams, on=["conn_id", "exchange_id"], how="left")
    decoded = decoded.to_numpy()
    with_body = http[http["conn_id"].isin(group_of.index) & (decoded > 0) & http["stream"].isna().to_numpy()]
    non_empty = ws[ws["conn_id"].isin(group_of.index) & (ws["payload_bytes"] > 0)]
    events = tables["sse_events"]
    events = events[events["conn_id"].isin(group_of.index) & (events["kind"] == "event")]
    messages = pd.concat([with_body["conn_id"], non_empty["conn_id"], events["conn_id"]]).map(group_of).value_counts()
    out["messages"] = messages.reindex(out.index, fill_value=0).astype("int64")
    costs = tables["message_costs"].merge(conns[["conn_id", "group"]], on="conn_id")
    app = costs[costs["item"].isin(APP_ITEMS)]
    sums = app.groupby("group")[COST_LAYERS + ["wire_bytes"]].sum().add_prefix("app_")
    sums["app_rows"] = app.groupby("group").size()
    return out.join(sums).fillna({"app_rows": 0})


def rest_pairs(tables, conn_ids) -> int:
    """REST requests that have their response."""
    http = tables["http_messages"][tables["http_messages"]["conn_id"].isin(conn_ids)]
    keys = ["conn_id", "exchange_id"]
    return len(http[http["direction"] == "client"][keys].merge(http[http["direction"] == "server"][keys], on=keys))


def most_variants(tables) -> str:
    conns = with_group(tables["connections"])
    counts = conns.groupby("capture")["group"].nunique()
    return str(counts[counts == counts.max()].index.sort_values()[0])


def frame_rows(tables) -> pd.DataFrame:
    """Every WebSocket frame and HTTP message, as the Frames page lists them, keyed."""
    frames, http = tables["ws_frames"], tables["http_messages"]
    ws = pd.DataFrame({
        "key": [f"ws:{c}:{f}" for c, f in zip(frames["conn_id"], frames["frame_id"])],
        "conn_id": frames["conn_id"], "protocol": "websocket", "direction": frames["direction"], "ts": frames["ts"],
        "type": frames["opcode_name"], "header_bytes": frames["header_bytes"], "payload_bytes": frames["payload_length"],
    })

    def text(value) -> str:
        return "" if pd.isna(value) else str(value)

    kinds = [(f"{text(m)} {text(t)}" if d == "client" else f"{text(s)} {text(r)}").strip()
             for d, m, t, s, r in zip(http["direction"], http["method"], http["target"], http["status"], http["reason"])]
    web = pd.DataFrame({
        "key": [f"http:{c}:{e}:{d}" for c, e, d in zip(http["conn_id"], http["exchange_id"], http["direction"])],
        "conn_id": http["conn_id"], "protocol": "http", "direction": http["direction"], "ts": http["ts"],
        "type": kinds, "header_bytes": http["header_bytes"], "payload_bytes": http["body_wire_bytes"],
    })
    out = pd.concat([web, ws], ignore_index=True)
    # t_s: seconds since the capture's first TCP packet, the earliest start of its connections
    conns = tables["connections"]
    first = conns.groupby("capture")["start_ts"].min()
    out["t_s"] = out["ts"] - out["conn_id"].map(conns.set_index("conn_id")["capture"]).map(first)
    return out.set_index("key")


# --- Overview --------------------------------------------------------------------------------


def test_overview_numbers_equal_the_analysis(bundled_url, bundled, browser):
    """Per capture: the counts, the payload sums of its connections, what compression saved and
    both efficiencies (application payload, and payload as sent, over its TCP wire bytes)."""
    open_page(browser, bundled_url + "/", f"#{ids.OVERVIEW_TABLE}")
    rows = {r["capture"]: r for r in records_when(browser, ids.OVERVIEW_TABLE, lambda rs: len(rs) == len(bundled["captures"]),
                                                   "the overview never showed every capture")}
    conns = bundled["connections"]
    for capture in bundled["captures"].itertuples():
        shown = rows[short(capture.capture)]
        mine = conns[conns["capture"] == capture.capture]
        wire = int(mine["wire_bytes"].sum())
        sums = {column: int(mine[column].sum()) for column in PAYLOAD_SUMS}
        assert (number(shown["packets"]), number(shown["connections"])) == (capture.packets, capture.connections), shown
        assert number(shown["tcp_wire_bytes"]) == wire, shown
        assert number(shown["rest_exchanges"]) == mine.loc[mine["kind"].isin(["rest", "http2"]), "http_requests"].sum(), shown
        assert number(shown["ws_messages"]) == mine["ws_messages"].sum(), shown
        for column, value in sums.items():
            assert number(shown[column]) == value, (column, shown)
        assert number(shown["compression_saved_bytes"]) == sums["app_payload_bytes"] - sums["wire_payload_bytes"], shown
        assert shown_share(shown["efficiency"], sums["app_payload_bytes"] / wire), shown
        assert shown_share(shown["wire_payload_efficiency"], sums["wire_payload_bytes"] / wire), shown
    check_clean(browser, "overview-payload-numbers")


def test_overview_opens_with_headline_numbers_and_the_claims(bundled_url, bundled, browser):
    """The cards: captures, connections, messages (REST exchanges + WebSocket messages), wire
    bytes, efficiency and findings over every capture, each with its exact numbers on hover; then
    the claims table with the verdicts the REST vs WebSocket page shows."""
    open_page(browser, bundled_url + "/", f"#{ids.OVERVIEW_CARDS}")
    cards = {card.get_attribute("data-card"): (card.find_element(By.CSS_SELECTOR, ".card-value").text, card.get_attribute("title"))
             for card in browser.find_elements(By.CSS_SELECTOR, f"#{ids.OVERVIEW_CARDS} .card")}
    conns, captures = bundled["connections"], bundled["captures"]
    rest = int(conns.loc[conns["kind"].isin(REST_KINDS), "http_requests"].sum())
    ws = int(conns["ws_messages"].sum())
    tcp_wire, app = int(conns["wire_bytes"].sum()), int(conns["app_payload_bytes"].sum())
    wire = int(captures["wire_bytes"].sum())
    assert cards["captures"][0] == str(len(captures))
    assert cards["connections"][0] == f"{len(conns):,}"
    assert cards["messages"] == (f"{rest + ws:,}", f"{rest:,} REST exchanges + {ws:,} WebSocket messages")
    assert cards["wire_bytes"][1].startswith(f"{wire:,} B") and cards["wire_bytes"][0] == f"{wire / 1000:.3g} kB"  # 333 kB: decimal units
    assert cards["efficiency"][0] == f"{app / tcp_wire:.1%}" and f"{app:,} B" in cards["efficiency"][1]
    assert cards["findings"][0] == f"{len(bundled['findings']):,}"
    wait_css(browser, f"#{ids.OVERVIEW_CLAIMS} tr[data-claim]")
    check_claims(browser, bundled, ids.OVERVIEW_CLAIMS)
    check_clean(browser, "overview-headline-claims")


# --- REST vs WebSocket ---------------------------------------------------------------------


def choose_capture(driver, capture: str) -> None:
    driver.find_element(By.ID, ids.COMPARE_CAPTURE).click()
    option = f"[role=option] input[value='{capture}']"
    wait(driver).until(lambda d: d.find_element(By.CSS_SELECTOR, option), message=f"no option {capture}")
    driver.find_element(By.CSS_SELECTOR, option).find_element(By.XPATH, "./ancestor::*[@role='option']").click()


def push_totals(tables, capture: str) -> pd.DataFrame:
    """Per variant of a push recording: connections, wire bytes, updates received (the staleness
    rows of the sidecar's ledger), bytes per update and median staleness; empty for another capture."""
    scenario = tables["captures"].set_index("capture").loc[capture, "scenario"]
    conns = tables["connections"]
    conns = conns[(conns["capture"] == capture) & (conns["variant"].fillna("") != "")]
    if scenario not in ("feed", "idle") or conns.empty:
        return pd.DataFrame()
    staleness = tables["staleness"][tables["staleness"]["capture"] == capture]
    out = conns.groupby("variant").agg(connections=("conn_id", "size"), wire_bytes=("wire_bytes", "sum"))
    out["updates"] = staleness.groupby("variant").size().reindex(out.index, fill_value=0)
    out["bytes_per_update"] = out["wire_bytes"] / out["updates"].replace(0, float("nan"))
    out["staleness_median_s"] = staleness.groupby("variant")["staleness_s"].median().reindex(out.index)
    return out


def check_push_section(driver, tables, capture: str) -> None:
    """The push section: the variants' table and the cost per update equal to the tables; the
    cheapest variant named; another capture says it is not a push recording."""
    variants = push_totals(tables, capture)
    if variants.empty:
        said = f"{short(capture)}: not a push recording"
        wait(driver, ANALYSIS_TIMEOUT).until(lambda d: d.find_element(By.ID, ids.COMPARE_PUSH_SUMMARY).text.startswith(said),
                                             message=f"the push section never said: {said}")
        assert grid_records(driver, ids.COMPARE_PUSH_TABLE) == []
        return
    rows = {r["group"]: r for r in records_when(driver, ids.COMPARE_PUSH_TABLE, lambda rs: {r["group"] for r in rs} == set(variants.index),
                                                f"the push table never showed the variants of {short(capture)}")}
    for variant, row in variants.iterrows():
        shown = rows[variant]
        assert int(shown["connections"]) == row["connections"] and int(number(shown["wire_bytes"])) == row["wire_bytes"], shown
        assert int(shown["updates"]) == row["updates"], shown
        if row["updates"]:
            assert abs(number(shown["bytes_per_update"]) - row["bytes_per_update"]) <= 0.05, shown
            assert abs(number(shown["staleness_median_s"]) - row["staleness_median_s"]) <= 5e-7, shown
        else:
            assert shown["bytes_per_update"] == "" and shown["staleness_median_s"] == "", shown
    summary = driver.find_element(By.ID, ids.COMPARE_PUSH_SUMMARY).text
    if variants["updates"].gt(0).all():
        cheapest = variants["bytes_per_update"].idxmin()
        assert f"{cheapest} is cheapest, {variants.loc[cheapest, 'bytes_per_update']:,.0f} B/update" in summary, summary
        cost = figure_when(driver, ids.COMPARE_PUSH_COST, lambda f: f["traces"] and all(set(t["x"]) == set(variants.index) for t in f["traces"]),
                           f"the cost per update never showed the variants of {short(capture)}")
        for variant, row in variants.iterrows():  # the categories stacked: all the variant's bytes over its updates
            stacked = sum(dict(zip(t["x"], t["y"]))[variant] for t in cost["traces"])
            assert math.isclose(stacked, row["bytes_per_update"], rel_tol=1e-9), (variant, stacked)
    else:
        assert summary.startswith(f"{short(capture)} with no updates: ") and " is cheapest, " in summary, summary
    lines = figure_when(driver, ids.COMPARE_PUSH_RATES, lambda f: {t["name"] for t in f["traces"]} == set(variants.index),
                        f"the push rates never showed the variants of {short(capture)}")
    assert all(t["x"][0] == 0 for t in lines["traces"])


def check_compare_capture(driver, tables, capture: str) -> None:
    check_push_section(driver, tables, capture)
    groups = group_totals(tables, capture)
    rest = groups[groups["kind"].isin(REST_KINDS)]
    websocket = groups[groups["kind"] == "websocket"]
    # crossover table: every REST group against every WebSocket group, with their totals.
    # Read first: it names the capture, and comes with the figures in one callback response.
    # A capture without both kinds has no crossover, and the page says which is missing.
    if rest.empty or websocket.empty:
        missing = " and no ".join(name for name, kind in (("REST (HTTP/1.1 or HTTP/2)", rest), ("WebSocket", websocket)) if kind.empty)
        said = f"{short(capture)}: no crossover: the capture has no {missing} traffic to compare."
        wait(driver, ANALYSIS_TIMEOUT).until(lambda d: d.find_element(By.ID, ids.COMPARE_CROSSOVERS).text == said,
                                             message=f"the crossover section never said: {said}")
        assert grid_records(driver, ids.COMPARE_CROSSOVERS) == []
    rows = [] if rest.empty or websocket.empty else records_when(
        driver, ids.COMPARE_CROSSOVERS, lambda rs: all(r.get("capture") == short(capture) for r in rs),
        f"the crossover table never showed {short(capture)}")
    assert sorted((r["rest"], r["websocket"]) for r in rows) == sorted((r, w) for r in rest.index for w in websocket.index)
    for r in rows:
        assert number(r["rest_total"]) == rest.loc[r["rest"], "wire_bytes"], r
        assert number(r["websocket_total"]) == websocket.loc[r["websocket"], "wire_bytes"], r
        assert int(r["rest_messages"]) == rest.loc[r["rest"], "messages"], r
        assert int(r["websocket_messages"]) == websocket.loc[r["websocket"], "messages"], r

    # efficiency: application payload (decoded) / wire bytes of each group's connections, and beside
    # it the payload as sent / wire bytes
    eff = figure_when(driver, ids.COMPARE_EFFICIENCY, lambda f: f["traces"] and all(set(t["x"]) == set(groups.index) for t in f["traces"]),
                      f"the efficiency figure never showed the groups of {short(capture)}: {sorted(groups.index)}")
    bars = {t["meta"]: dict(zip(t["x"], t["y"])) for t in eff["traces"]}
    assert set(bars) == {"efficiency", "wire_payload_efficiency"}, eff["traces"]
    for group, row in groups.iterrows():
        assert close(bars["efficiency"][group], row["app_payload_bytes"] / row["wire_bytes"]), (capture, group, bars)
        assert close(bars["wire_payload_efficiency"][group], row["wire_payload_bytes"] / row["wire_bytes"]), (capture, group, bars)

    # the payload table beside it: the same sums, what compression saved, both efficiencies
    payload = {r["group"]: r for r in grid_records(driver, ids.COMPARE_PAYLOAD)}
    assert set(payload) == set(groups.index), payload
    for group, row in groups.iterrows():
        shown = payload[group]
        assert shown["kind"] == row["kind"] and number(shown["wire_bytes"]) == row["wire_bytes"], (capture, shown)
        for column in PAYLOAD_SUMS:
            assert number(shown[column]) == row[column], (capture, group, column, shown)
        assert number(shown["compression_saved_bytes"]) == row["app_payload_bytes"] - row["wire_payload_bytes"], (capture, shown)
        if row["wire_payload_bytes"]:
            assert abs(number(shown["compression_ratio"]) - row["app_payload_bytes"] / row["wire_payload_bytes"]) <= 0.005, (capture, shown)
        assert shown_share(shown["efficiency"], row["app_payload_bytes"] / row["wire_bytes"]), (capture, shown)
        assert shown_share(shown["wire_payload_efficiency"], row["wire_payload_bytes"] / row["wire_bytes"]), (capture, shown)

    # cost split: each layer summed over the group's application messages, per message carrying payload
    with_app = groups[groups["app_rows"] > 0]
    cost = figure_when(driver, ids.COMPARE_COST, lambda f: all(set(t["x"]) == set(with_app.index) for t in f["traces"]),
                       f"the cost split never showed the groups of {short(capture)}")
    assert sorted(t["meta"] for t in cost["traces"]) == sorted(COST_LAYERS), cost["traces"]
    for trace in cost["traces"]:
        shown = dict(zip(trace["x"], trace["y"]))
        for group, row in with_app.iterrows():
            if row["messages"] == 0:  # nothing carried payload: no cost per message
                assert shown[group] is None or math.isnan(shown[group]), (capture, group, trace["meta"], shown[group])
            else:
                assert close(shown[group], row["app_" + trace["meta"]] / row["messages"]), (capture, group, trace["meta"], shown[group])
    # the layers add up to the wire bytes of those messages
    for group, row in with_app[with_app["messages"] > 0].iterrows():
        stacked = sum(dict(zip(t["x"], t["y"]))[group] for t in cost["traces"])
        assert close(stacked, row["app_wire_bytes"] / row["messages"]), (capture, group)

    # break-even: each group's curve ends at its messages and all its wire bytes (setup included)
    def curve_names(figure):
        return {t["name"] for t in figure["traces"] if t["meta"] == "wire_bytes"}

    curves = figure_when(driver, ids.COMPARE_BREAK_EVEN, lambda f: curve_names(f) == set(groups.index),
                         f"the break-even curves never showed the groups of {short(capture)}")
    ends = {t["name"]: (t["x"][-1], t["y"][-1]) for t in curves["traces"] if t["name"] in groups.index}
    for group, row in groups.iterrows():
        assert ends[group][0] == row["messages"] and close(ends[group][1], row["wire_bytes"]), (capture, group, ends[group])
    check_tls_layer_of_curves(curves, tables, capture, groups)

    # latency: a REST group's box has one point per request answered
    latency = plotly_figure(driver, ids.COMPARE_LATENCY)
    boxes = {t["name"]: t for t in latency["traces"]}
    conns = with_group(tables["connections"])
    for group in rest.index:
        pairs = rest_pairs(tables, conns[(conns["capture"] == capture) & (conns["group"] == group)]["conn_id"])
        if pairs:
            assert len(boxes[group]["y"]) == pairs, (capture, group, len(boxes[group]["y"]))


def expected_verdict(holds: bool, one: float, other: float) -> str:
    if abs(one - other) < MATERIAL * max(one, other):
        return "no material difference"
    return "holds" if holds else "does not hold"


def check_tls_layer_of_curves(curves, tables, capture: str, groups: pd.DataFrame) -> None:
    """The TLS layer beneath a break-even curve: only for a group with TLS bytes (the tls_* byte
    categories of its connections), ending at them; for a group of one connection it starts at
    what of them no message carries (the handshake: the connection's TLS bytes less its messages'
    tls_overhead_bytes) and rises at each message carrying payload by that message's
    tls_overhead_bytes."""
    layers = {t["name"].removesuffix(" TLS layer"): t for t in curves["traces"] if t["meta"] == "tls_bytes"}
    conns = with_group(tables["connections"])
    conns = conns[conns["capture"] == capture]
    tls = conns.groupby("group")[[c for c in BYTE_CATEGORIES if c.startswith("tls_")]].sum().sum(axis=1)
    assert set(layers) == set(tls[tls > 0].index), (capture, sorted(layers))
    costs = tables["message_costs"]
    for group, layer in layers.items():
        assert layer["x"][-1] == groups.loc[group, "messages"] and close(layer["y"][-1], tls[group]), (capture, group, layer["y"][-1])
        mine = conns[conns["group"] == group]["conn_id"]
        if len(mine) == 1:
            rows = costs[costs["conn_id"].isin(mine) & costs["item"].isin(APP_ITEMS)]
            assert close(layer["y"][0], tls[group] - rows["tls_overhead_bytes"].sum()), (capture, group, layer["y"][0])
            carrying = rows[rows["payload_messages"] > 0]
            if len(carrying) == len(rows):  # every message carries payload: a step per message
                steps = np.diff(layer["y"])
                assert sorted(steps) == pytest.approx(sorted(carrying["tls_overhead_bytes"])), (capture, group)


def shown_claims(driver, table_id: str) -> dict[str, dict]:
    """The claims table: per claim, its verdict badge and, per capture, (numbers, verdict badge)."""
    rows = driver.find_elements(By.CSS_SELECTOR, f"#{table_id} tr[data-claim]")
    assert len(rows) == 5, [r.text for r in rows]
    claims = {}
    for row in rows:
        verdict = row.find_element(By.CSS_SELECTOR, "td.verdict .badge").text
        captures = {}
        for item in row.find_elements(By.CSS_SELECTOR, "td.measured li"):
            capture = item.find_element(By.CSS_SELECTOR, ".claim-capture").text.removesuffix(":")
            captures[capture] = (item.text, item.find_element(By.CSS_SELECTOR, ".badge").text)
        assert verdict in VERDICTS and all(v in VERDICTS for _t, v in captures.values()), row.text
        claims[row.get_attribute("data-claim")] = {"verdict": verdict, "captures": captures}
    threshold = driver.find_element(By.CSS_SELECTOR, f"#{table_id} .claims-threshold").text
    assert f"less than {MATERIAL:.0%} of the larger number is no material difference" in threshold, threshold
    return claims


def check_claims(driver, tables, table_id: str = ids.COMPARE_CLAIMS) -> None:
    claims = shown_claims(driver, table_id)

    def claim(words: str) -> dict:
        (title,) = [t for t in claims if words in t]
        return claims[title]

    conns = with_group(tables["connections"])
    # "REST costs more per message than WebSocket": cheapest REST group against cheapest plain
    # WebSocket group, all wire bytes (setup included) per message carrying payload, per capture
    verdicts = []
    shown = claim("costs more per message")
    for capture in conns["capture"].unique():
        groups = group_totals(tables, capture)
        groups = groups[groups["messages"] > 0]
        per = groups["wire_bytes"] / groups["messages"]
        rest_per = per[groups["kind"].isin(REST_KINDS)]
        ws_per = per[(groups["kind"] == "websocket") & ~groups["deflate"].astype(bool)]
        if rest_per.empty or ws_per.empty:
            assert short(capture) not in shown["captures"], (capture, shown)
            continue
        text, verdict = shown["captures"][short(capture)]
        assert f"{rest_per.min():,.0f} B" in text and f"({rest_per.idxmin()})" in text, (capture, text)
        assert f"{ws_per.min():,.0f} B" in text and f"({ws_per.idxmin()})" in text, (capture, text)
        assert verdict == expected_verdict(rest_per.min() > ws_per.min(), rest_per.min(), ws_per.min()), (capture, text, verdict)
        verdicts.append(verdict)
    material = [v for v in verdicts if v != "no material difference"]
    assert verdicts and shown["verdict"] == ("no material difference" if not material else
                                             "holds" if all(v == "holds" for v in material) else "does not hold"), shown

    # "WebSocket is the cheapest way to push": per push recording, the cheapest WebSocket variant
    # against the cheapest other, bytes per update (idle: the claim's row names both)
    shown = claim("cheapest way to push")
    for capture in tables["captures"]["capture"]:
        variants = push_totals(tables, capture)
        if variants.empty:
            assert short(capture) not in shown["captures"], (capture, shown)
            continue
        text, verdict = shown["captures"][short(capture)]
        if variants["updates"].gt(0).all():
            kinds = conns[conns["capture"] == capture].groupby("variant")["kind"].first()
            per = variants["bytes_per_update"]
            ws, other = per[kinds[per.index] == "websocket"], per[kinds[per.index] != "websocket"]
            assert f"WebSocket {ws.min():,.0f} B/update ({ws.idxmin()}) vs {other.min():,.0f} B/update ({other.idxmin()})" in text, text
            assert verdict == expected_verdict(ws.min() < other.min(), ws.min(), other.min()), (text, verdict)
        else:
            assert "B/min idle" in text, text

    # "WebSocket pays a setup cost and keeps state": mean setup bytes per connection of each kind
    shown = claim("setup cost")
    ws_setup = conns[conns["kind"] == "websocket"]["setup_bytes"].mean()
    rest_setup = conns[conns["kind"].isin(REST_KINDS)]["setup_bytes"].mean()
    text, verdict = shown["captures"]["all captures"]
    assert f"{ws_setup:,.0f} B" in text and f"{rest_setup:,.0f} B" in text, text
    assert shown["verdict"] == verdict == expected_verdict(ws_setup > rest_setup, ws_setup, rest_setup)


def test_compare_numbers_equal_the_analysis(bundled_url, bundled, browser, tmp_path):
    open_page(browser, bundled_url + "/compare", f"#{ids.COMPARE_EFFICIENCY} .js-plotly-plot")
    chosen = most_variants(bundled)
    wait(browser).until(lambda d: d.find_element(By.ID, ids.COMPARE_CAPTURE).text == short(chosen),
                        message=f"the capture chosen is not {short(chosen)}")
    check_compare_capture(browser, bundled, chosen)
    check_claims(browser, bundled)
    check_clean(browser, "compare-numbers")

    # every other capture: the callback redraws every figure and the crossover table
    for other in [c for c in bundled["captures"]["capture"] if c != chosen]:
        choose_capture(browser, other)
        check_compare_capture(browser, bundled, other)
        check_clean(browser, f"compare-numbers-{Path(other).stem}", f"#{ids.COMPARE_COST}")
        variants = push_totals(bundled, other)
        if not variants.empty:  # the push table's CSV: the variants as shown
            check_clean(browser, f"compare-push-{Path(other).stem}", f"#{ids.COMPARE_PUSH_TABLE}")
            csv = downloaded_csv(browser, tmp_path, f"push-variants-{short(other)}.csv", ids.COMPARE_PUSH_CSV_BUTTON).set_index("group")
            assert sorted(csv.index) == sorted(variants.index) and set(csv["capture"]) == {short(other)}
            assert (csv["wire_bytes"] == variants["wire_bytes"]).all() and (csv["updates"] == variants["updates"]).all()


# --- Connections ---------------------------------------------------------------------------


def check_connection_row(row: dict[str, str], conns: pd.DataFrame) -> None:
    expected = conns.set_index("conn_id").loc[int(row["conn_id"])]
    assert row["capture"] == short(expected["capture"]), row
    assert row["kind"] == expected["kind"] and row["variant"] == (expected["variant"] if isinstance(expected["variant"], str) else ""), row
    for column in ("client_port", "server_port", "packets", "wire_bytes", *PAYLOAD_SUMS, "http_requests", "ws_messages"):
        assert int(row[column]) == int(expected[column]), (column, row)
    assert int(row["compression_saved_bytes"]) == expected["app_payload_bytes"] - expected["wire_payload_bytes"], row
    assert row["client_ip"] == expected["client_ip"] and row["server_ip"] == expected["server_ip"], row
    assert abs(number(row["efficiency"]) - expected["app_payload_bytes"] / expected["wire_bytes"]) <= 0.5e-4, row
    assert abs(number(row["duration_ms"]) - (expected["end_ts"] - expected["start_ts"]) * 1000.0) <= 0.5e-3 + 1e-6, row


def check_connection_figures(driver, tables, conn_id: int) -> None:
    """The attribution and timeline of one selected connection equal its rows in the tables."""
    conn = tables["connections"].set_index("conn_id").loc[conn_id]
    attribution = figure_when(driver, ids.CONN_ATTRIBUTION, lambda f: f"connection {conn_id}" in f["title"],
                              f"the byte attribution never showed connection {conn_id}")
    (bars,) = attribution["traces"]
    labels = {c.removesuffix("_bytes").replace("_", " "): c for c in BYTE_CATEGORIES}
    shown = {labels[label]: value for label, value in zip(bars["y"], bars["x"])}
    assert shown == {c: int(conn[c]) for c in BYTE_CATEGORIES}
    assert sum(shown.values()) == int(conn["wire_bytes"])

    # timeline: one arrow (3 points: from, to, gap) per TCP setup/teardown, HTTP message and frame
    timeline = figure_when(driver, ids.CONN_TIMELINE, lambda f: f"connection {conn_id}" in f["title"],
                           f"the timeline never showed connection {conn_id}")
    events = {t["name"]: len(t["x"]) // 3 for t in timeline["traces"] if t["name"]}
    costs = tables["message_costs"]
    frames = tables["ws_frames"][tables["ws_frames"]["conn_id"] == conn_id]
    expected = {
        "tcp": int((costs["conn_id"].eq(conn_id) & costs["item"].isin(["setup", "teardown"])).sum()),
        "http": int((tables["http_messages"]["conn_id"] == conn_id).sum()),
        "ws-data": int((frames["opcode"] < 8).sum()),
        "ws-control": int((frames["opcode"] >= 8).sum()),
    }
    assert events == {k: v for k, v in expected.items() if v}, (conn_id, timeline["title"])


def test_connections_numbers_equal_the_analysis(bundled_url, bundled, browser):
    conns = bundled["connections"]
    open_page(browser, bundled_url + "/connections", f"#{ids.CONN_TABLE}")
    rows = records_when(browser, ids.CONN_TABLE, lambda rs: len(rs) == min(len(conns), PAGE_SIZE),
                        "the connections table never showed its first page")
    # unsorted and unfiltered: the first connections of the table, in its order
    assert [int(r["conn_id"]) for r in rows] == conns["conn_id"].head(PAGE_SIZE).tolist()
    for row in rows:
        check_connection_row(row, conns)
    assert grid_page_count(browser, ids.CONN_TABLE) == math.ceil(len(conns) / PAGE_SIZE)
    assert grid_row_summary(browser, ids.CONN_TABLE) == f"1 to {min(len(conns), PAGE_SIZE)} of {len(conns)}"

    # click the connection of the first page with the most byte categories in use
    shown = conns[conns["conn_id"].isin([int(r["conn_id"]) for r in rows])]
    used = (shown[list(BYTE_CATEGORIES)] > 0).sum(axis=1)
    conn_id = int(shown.loc[used.idxmax(), "conn_id"])
    click_cell(browser, ids.CONN_TABLE, "wire_bytes", str(conn_id))
    check_connection_figures(browser, bundled, conn_id)
    check_clean(browser, "connections-numbers", f"#{ids.CONN_ATTRIBUTION}")

    # a connection of the second page, reached by its link (?conn=): the one row, then its figures
    conn_id = int(conns["conn_id"].iloc[-1])
    open_page(browser, bundled_url + f"/connections?conn={conn_id}", f"#{ids.CONN_TABLE}")
    rows = records_when(browser, ids.CONN_TABLE, lambda rs: [r["conn_id"] for r in rs] == [str(conn_id)],
                        f"the connections table never showed only connection {conn_id}")
    check_connection_row(rows[0], conns)
    check_connection_figures(browser, bundled, conn_id)
    check_clean(browser, "connections-numbers-link", f"#{ids.CONN_ATTRIBUTION}")


def test_a_connection_goes_to_wireshark_with_its_filter_and_its_packets(bundled_url, bundled, browser, tmp_path):
    """The connection detail shows a display filter that selects, in tshark, exactly the
    connection's packets in its capture, and a link that downloads those packets as a capture
    (the last connection: of the last capture, its number not its store's own)."""
    from tests.test_slice import tshark_frames

    conns = bundled["connections"]
    row = conns.iloc[-1]
    conn_id, capture = int(row["conn_id"]), next(Path(path) for path in BUNDLED if Path(path).name == row["capture"])
    open_page(browser, bundled_url + f"/connections?conn={conn_id}", f"#{ids.CONN_FILTER}")
    display_filter = browser.find_element(By.ID, ids.CONN_FILTER).text
    frames = tshark_frames(capture, display_filter)
    assert len(frames) == row["packets"] and sum(int(length) for _t, length, _md5 in frames) == row["wire_bytes"]

    browser.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(tmp_path)})
    browser.find_element(By.ID, ids.CONN_SLICE).click()
    sliced = tmp_path / f"{capture.stem}-conn{conn_id}.pcap"
    wait(browser).until(lambda d: sliced.is_file() and sliced.stat().st_size > 0, message=f"{sliced.name} was never downloaded")
    assert tshark_frames(sliced) == frames
    check_clean(browser, "connections-wireshark", f"#{ids.CONN_WIRESHARK}")


def sort_by_header(driver, element_id: str, column: str, clicks: int) -> None:
    """Click the header of `column` `clicks` times (AG Grid: ascending, then descending)."""
    css = f"#{element_id} .ag-header-row-column .ag-header-cell[col-id='{column}'] .ag-header-cell-label"
    for _ in range(clicks):
        wait(driver).until(lambda d: d.find_element(By.CSS_SELECTOR, css), message=f"no header {column}").click()


def type_filter(driver, element_id: str, column: str, text: str) -> None:
    """Type into the floating filter box under the header of `column`."""
    css = f"#{element_id} .ag-header-row-filter .ag-floating-filter[col-id='{column}'] input"
    wait(driver).until(lambda d: d.find_element(By.CSS_SELECTOR, css), message=f"no filter box for {column}").send_keys(text)


def downloaded_csv(driver, folder: Path, name: str, button_id: str) -> pd.DataFrame:
    """Click a "Download CSV" button and read the file the browser saved as `name` in `folder`."""
    driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(folder)})
    driver.find_element(By.ID, button_id).click()
    path = folder / name
    wait(driver).until(lambda d: path.is_file() and path.stat().st_size > 0, message=f"{name} was never downloaded")
    return pd.read_csv(path)


def test_connections_sorted_and_filtered_in_the_grid_and_exported(bundled_url, bundled, browser, tmp_path):
    """Sorting and filtering in the grid's own header go to the server as AG Grid's sortModel and
    filterModel; the page, the pager and the CSV download all follow them."""
    conns = bundled["connections"]
    open_page(browser, bundled_url + "/connections", f"#{ids.CONN_TABLE}")
    records_when(browser, ids.CONN_TABLE, lambda rs: len(rs) == min(len(conns), PAGE_SIZE), "the connections table never showed its first page")

    sort_by_header(browser, ids.CONN_TABLE, "wire_bytes", 2)
    type_filter(browser, ids.CONN_TABLE, "kind", "webSOCKET")  # AG Grid's text filter: contains, any case
    expected = conns[conns["kind"] == "websocket"].sort_values("wire_bytes", ascending=False, kind="stable")
    assert 1 < len(expected) < len(conns)
    want = [str(c) for c in expected["conn_id"].head(PAGE_SIZE)]
    rows = records_when(browser, ids.CONN_TABLE, lambda rs: [r["conn_id"] for r in rs] == want,
                        f"the grid never showed the websocket connections by wire bytes, largest first: {want}")
    for row in rows:
        check_connection_row(row, conns)
    assert grid_row_summary(browser, ids.CONN_TABLE) == f"1 to {min(len(expected), PAGE_SIZE)} of {len(expected)}"
    assert grid_page_count(browser, ids.CONN_TABLE) == math.ceil(len(expected) / PAGE_SIZE)
    check_clean(browser, "connections-sorted-filtered")

    csv = downloaded_csv(browser, tmp_path, "connections.csv", ids.CONN_CSV_BUTTON)
    assert list(csv["conn_id"]) == list(expected["conn_id"])  # every page, in the grid's order
    assert list(csv["wire_bytes"]) == list(expected["wire_bytes"]) and set(csv["kind"]) == {"websocket"}


# --- Frames and messages ---------------------------------------------------------------------


def check_frame_rows(rows: list[dict[str, str]], expected: pd.DataFrame) -> None:
    """Each row shown equals its frame or message, and the rows are the earliest of `expected`."""
    for row in rows:
        want = expected.loc[row["key"]]
        for column in ("conn_id", "header_bytes", "payload_bytes"):
            assert int(row[column]) == int(want[column]), (column, row)
        for column in ("protocol", "direction", "type"):
            assert row[column] == want[column], (column, row)
        assert abs(float(row["t_s"]) - float(want["t_s"])) <= 0.5e-3 + 1e-9, row  # shown to the millisecond
        assert "ts" not in row, row  # absolute time: on hover, not a column
    keys = [r["key"] for r in rows]
    assert len(set(keys)) == len(keys) == min(len(expected), PAGE_SIZE), keys
    rest = expected.drop(index=keys)
    if len(rest):
        assert expected.loc[keys, "ts"].max() <= rest["ts"].min(), "the first page is not the earliest rows"


def test_frames_numbers_equal_the_analysis(bundled_url, bundled, browser):
    every = frame_rows(bundled)
    open_page(browser, bundled_url + "/frames", f"#{ids.FRAMES_TABLE}")
    rows = records_when(browser, ids.FRAMES_TABLE, lambda rs: len(rs) == min(len(every), PAGE_SIZE),
                        "the frames table never showed its first page")
    check_frame_rows(rows, every)
    assert grid_page_count(browser, ids.FRAMES_TABLE) == math.ceil(len(every) / PAGE_SIZE)
    assert grid_row_summary(browser, ids.FRAMES_TABLE) == f"1 to {min(len(every), PAGE_SIZE)} of {len(every)}"
    # hovering a time shows its absolute UTC time, to the microsecond
    first = rows[0]["key"]
    utc = datetime.fromtimestamp(float(every.loc[first, "ts"]), tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f UTC")
    ActionChains(browser).move_to_element(browser.find_element(By.CSS_SELECTOR, f"#{ids.FRAMES_TABLE} .ag-row[row-id='{first}'] .ag-cell[col-id='t_s']")).perform()
    wait(browser).until(lambda d: [t.text for t in d.find_elements(By.CSS_SELECTOR, ".ag-tooltip")] == [utc], message=f"no tooltip {utc}")
    check_clean(browser, "frames-numbers")

    # one plain WebSocket connection (?conn=): its upgrade and its frames; one frame selected
    conns = bundled["connections"]
    conn_id = int(conns[(conns["kind"] == "websocket") & ~conns["ws_deflate"].astype(bool) & (conns["ws_messages"] > 0)]["conn_id"].iloc[0])
    mine = every[every["conn_id"] == conn_id]
    open_page(browser, bundled_url + f"/frames?conn={conn_id}", f"#{ids.FRAMES_TABLE}")
    rows = records_when(browser, ids.FRAMES_TABLE, lambda rs: all(r["conn_id"] == str(conn_id) for r in rs) and len(rs) == min(len(mine), PAGE_SIZE),
                        f"the frames table never showed the first page of connection {conn_id}")
    check_frame_rows(rows, mine)
    assert grid_page_count(browser, ids.FRAMES_TABLE) == math.ceil(len(mine) / PAGE_SIZE)
    assert grid_row_summary(browser, ids.FRAMES_TABLE) == f"1 to {min(len(mine), PAGE_SIZE)} of {len(mine)}"

    index = next(i for i, r in enumerate(rows) if r["protocol"] == "websocket" and r["direction"] == "client" and r["type"] == "text")
    frame_id = int(rows[index]["key"].rsplit(":", 1)[1])
    click_cell(browser, ids.FRAMES_TABLE, "type", rows[index]["key"])
    check_frame_detail(browser, bundled, conn_id, frame_id)
    check_clean(browser, "frames-numbers-detail", f"#{ids.FRAMES_DETAIL} pre")


def frame_detail_shown(driver, conn_id: int, frame_id: int) -> tuple[dict[str, str], list[str], str]:
    """(header fields, the <pre> texts, the findings heading) of the detail of one frame."""
    title = f"WebSocket frame {frame_id} of connection {conn_id}"
    wait(driver, ANALYSIS_TIMEOUT).until(
        lambda d: d.find_element(By.CSS_SELECTOR, f"#{ids.FRAMES_DETAIL} h4").text == title, message=f"the detail never showed {title!r}")
    wait_dash_ready(driver)
    detail = driver.find_element(By.ID, ids.FRAMES_DETAIL)
    fields = {}
    for tr in detail.find_elements(By.CSS_SELECTOR, "table tr"):
        cells = tr.find_elements(By.TAG_NAME, "td")
        fields[cells[0].get_attribute("textContent")] = cells[1].get_attribute("textContent")
    pres = [p.get_attribute("textContent") for p in detail.find_elements(By.TAG_NAME, "pre")]
    heading = next(h.text for h in detail.find_elements(By.TAG_NAME, "h5") if h.text.startswith("Findings"))
    return fields, pres, heading


def check_frame_detail(driver, tables, conn_id: int, frame_id: int) -> None:
    frames = tables["ws_frames"]
    frame = frames[(frames["conn_id"] == conn_id) & (frames["frame_id"] == frame_id)].iloc[0]
    fields, pres, heading = frame_detail_shown(driver, conn_id, frame_id)
    for column in ("payload_length", "header_bytes", "opcode", "frame_id", "conn_id", "offset"):
        assert int(fields[column]) == int(frame[column]), (column, fields)
    assert fields["direction"] == frame["direction"] and fields["masked"] == str(bool(frame["masked"])), fields
    text, hex_ = pres[0], pres[1]
    assert text == frame["payload_text"] and hex_ == frame["payload_hex"], pres
    assert len(text.encode("utf-8")) == int(frame["payload_length"]), (len(text.encode("utf-8")), frame["payload_length"])
    # the findings of this frame (same time and direction) and of its connection
    findings = tables["findings"][tables["findings"]["conn_id"] == conn_id]
    here = findings[np.isclose(findings["ts"].astype("float64"), float(frame["ts"]), rtol=0, atol=1e-6) & (findings["direction"] == frame["direction"])]
    assert heading == f"Findings ({len(here)} at this frame, {len(findings)} on the connection)", heading


# --- Findings ----------------------------------------------------------------------------------


def check_findings_page(driver, findings: pd.DataFrame) -> list[tuple[str, int, str]]:
    """The counts per rule, the connections and each finding listed equal the findings table;
    returns (rule, conn_id, href) of the first link of each rule."""
    listing = wait_css(driver, f"#{ids.FINDINGS_LIST}")
    if findings.empty:
        assert listing.text.startswith("No findings"), listing.text
        return []
    counts = findings["rule"].value_counts()
    connections = findings.dropna(subset=["conn_id"]).groupby("rule")["conn_id"].nunique()
    details = listing.find_elements(By.TAG_NAME, "details")
    summaries = [d.find_element(By.TAG_NAME, "summary").text for d in details]
    parsed = [re.fullmatch(r"(\S+): (\d+) on (\d+) connections?", s) for s in summaries]
    assert all(parsed), summaries
    shown = {m.group(1): (int(m.group(2)), int(m.group(3))) for m in parsed}
    assert shown == {rule: (int(n), int(connections.get(rule, 0))) for rule, n in counts.items()}, summaries
    order = [shown[m.group(1)][0] for m in parsed]
    assert order == sorted(order, reverse=True), "rules are not listed most frequent first"

    links = []
    for detail, m in zip(details, parsed):
        rule = m.group(1)
        rows = findings[findings["rule"] == rule]
        items = detail.find_elements(By.CSS_SELECTOR, "li")
        assert len(items) == min(len(rows), 50), (rule, len(items))
        for item, f in zip(items, rows.itertuples(index=False)):
            text = item.get_attribute("textContent")
            assert text.endswith(f": {f.detail}"), (text, f.detail)
            if pd.isna(f.conn_id):
                assert text.startswith("no connection"), text
                continue
            link = item.find_element(By.TAG_NAME, "a")
            assert link.text == f"connection {int(f.conn_id)}", link.text
            assert link.get_attribute("href").endswith(f"/connections?conn={int(f.conn_id)}"), link.get_attribute("href")
        first = items[0].find_elements(By.TAG_NAME, "a")
        if first:
            links.append((rule, int(first[0].text.split()[-1]), first[0].get_attribute("href")))
    return links


def test_findings_page_without_findings(bundled_url, bundled, browser):
    open_page(browser, bundled_url + "/findings", f"#{ids.FINDINGS_LIST}")
    check_findings_page(browser, bundled["findings"])
    check_clean(browser, "findings-numbers-none")


def test_findings_numbers_equal_the_analysis(findings_url, findings_tables, browser):
    findings = findings_tables["findings"]
    assert findings["rule"].nunique() >= 4 and findings["rule"].value_counts().max() >= 4, findings["rule"].value_counts()
    open_page(browser, findings_url + "/findings", f"#{ids.FINDINGS_LIST}")
    links = check_findings_page(browser, findings)
    check_clean(browser, "findings-numbers")

    # the first finding's link leads to its connection, shown with its numbers
    rule, conn_id, _ = links[0]
    first = browser.find_element(By.CSS_SELECTOR, f"#{ids.FINDINGS_LIST} details a")
    first.click()
    wait(browser).until(lambda d: d.current_url.endswith(f"/connections?conn={conn_id}"), message="the link never led to the connection")
    rows = records_when(browser, ids.CONN_TABLE, lambda rs: [r["conn_id"] for r in rs] == [str(conn_id)],
                        f"the connections page never showed connection {conn_id} of {rule}")
    check_connection_row(rows[0], findings_tables["connections"])
    check_connection_figures(browser, findings_tables, conn_id)
    check_clean(browser, "findings-numbers-connection", f"#{ids.CONN_ATTRIBUTION}")

    # on the Frames page, an unmasked client frame counts its findings
    unmasked = findings[findings["rule"] == "ws-unmasked-client-frame"]
    conn_id = int(unmasked["conn_id"].value_counts().idxmax())
    frames = findings_tables["ws_frames"]
    frame = frames[(frames["conn_id"] == conn_id) & (frames["direction"] == "client") & ~frames["masked"].astype(bool)].iloc[0]
    open_page(browser, findings_url + f"/frames?conn={conn_id}", f"#{ids.FRAMES_TABLE}")
    key = f"ws:{conn_id}:{int(frame['frame_id'])}"
    rows = records_when(browser, ids.FRAMES_TABLE, lambda rs: any(r["key"] == key for r in rs), f"the frames table never listed {key}")
    check_frame_rows(rows, frame_rows(findings_tables).query(f"conn_id == {conn_id}"))
    click_cell(browser, ids.FRAMES_TABLE, "type", key)
    check_frame_detail(browser, findings_tables, conn_id, int(frame["frame_id"]))
    check_clean(browser, "findings-numbers-frame", f"#{ids.FRAMES_DETAIL} pre")
