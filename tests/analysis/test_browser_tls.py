"""A real browser's HTTPS (HTTP/2) and WSS traffic: headless Chromium with its own key log
(tests/browser_traffic.py records it), checked against tshark and against what the page did."""

from __future__ import annotations

import subprocess

import pandas as pd
import pytest

from inspector.analysis.pipeline import analyze_captures
from tests import tshark_oracle as oracle
from tests.analysis.test_tls_traffic import check_against_tshark
from tests.browser_traffic import ASK_BYTES, FETCHES, WS_MESSAGES, record_browser
from tests.conftest import live_traffic_unavailable
from tests.dashboard.browser.conftest import browser_unavailable


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    reason = live_traffic_unavailable() or browser_unavailable()
    if reason:
        pytest.skip(reason)
    if not oracle.tshark_available():
        pytest.skip("tshark not installed (the README's test command installs it)")
    recording = record_browser(tmp_path_factory.mktemp("browser-tls"))
    return recording, analyze_captures([recording.path], jobs=1)


def _decrypted(recording, fields: list[str], display_filter: str) -> pd.DataFrame:
    command = ["tshark", "-r", str(recording.path), "-o", f"tls.keylog_file:{recording.keylog}", "-Y", display_filter,
               "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=|", *[arg for field in fields for arg in ("-e", field)]]
    out = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True).stdout
    return pd.DataFrame([line.split("\t") for line in out.splitlines()], columns=fields)


def test_the_page_did_its_work_over_http2_and_wss(recorded):
    recording, _analysis = recorded
    assert recording.page["replies"] == [ASK_BYTES] * FETCHES and recording.page["echoed"] == [ASK_BYTES] * WS_MESSAGES
    assert recording.page["extensions"].startswith("permessage-deflate")
    assert recording.served[("2", "POST", "/chat")] == FETCHES and recording.served["ws messages"] == WS_MESSAGES


def test_tshark_decrypts_with_chromiums_key_log_what_the_page_did(recorded):
    recording, _analysis = recorded
    headers = _decrypted(recording, ["tcp.srcport", "http2.streamid", "http2.headers.method", "http2.headers.path"],
                         "http2.type == 1 && http2.headers.method")
    posts = headers[(headers["http2.headers.method"] == "POST") & (headers["http2.headers.path"] == "/chat")]
    assert len(posts) == FETCHES and posts["http2.streamid"].nunique() == FETCHES
    frames = _decrypted(recording, ["tcp.srcport", "websocket.opcode", "websocket.rsv"], "websocket")
    text = frames[frames["websocket.opcode"] == "1"]
    sent = text[text["tcp.srcport"] != str(recording.ws_port)]
    assert len(sent) == WS_MESSAGES and len(text) == 2 * WS_MESSAGES
    assert set(text["websocket.rsv"]) == {"0x04"}  # every message compressed (permessage-deflate)


def test_without_keys_every_connection_is_tls_as_tshark_reads_it(recorded):
    recording, analysis = recorded
    connections = analysis["connections"]
    assert set(connections["kind"]) == {"tls"} and set(connections["tls_version"]) == {"TLS 1.3"}
    page = connections[connections["server_port"] == recording.page_port]
    wss = connections[connections["server_port"] == recording.ws_port]
    assert len(wss) == 1 and len(page) >= 1  # Chromium may open a spare connection to the page's server
    assert all("h2" in offered.split(",") for offered in page["tls_alpn_offered"])
    assert check_against_tshark(recording.path, analysis, recording.page_port) == len(page)
    assert check_against_tshark(recording.path, analysis, recording.ws_port) == 1
