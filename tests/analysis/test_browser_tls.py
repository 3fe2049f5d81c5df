"""A real browser's HTTPS (HTTP/2) and WSS traffic: headless Chromium with its own key log
(tests/browser_traffic.py records it), checked against tshark and against what the page did,
without keys (every connection TLS) and decrypted with Chromium's key log (HTTP/2 and WebSocket)."""

from __future__ import annotations

import subprocess
from collections import Counter

import pandas as pd
import pytest

from inspector.analysis.pipeline import analyze_captures
from inspector.parse.connection import ParserOptions
from inspector.parse.keylog import KeyLog
from tests import tshark_oracle as oracle
from tests.analysis.test_tls_keys_traffic import check_decrypted_costs
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


@pytest.fixture(scope="module")
def decrypted(recorded):
    recording, _analysis = recorded
    keylog = KeyLog.from_text(recording.keylog.read_bytes())
    return analyze_captures([recording.path], ParserOptions(keylog=keylog), jobs=1)


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


# --- decrypted with Chromium's key log ----------------------------------------------------------


def _page_connections(recording, analysis) -> pd.DataFrame:
    """The page server's connections that carried HTTP/2 (Chromium may open a spare one that stays idle: kind tls)."""
    connections = analysis["connections"]
    page = connections[connections["server_port"] == recording.page_port]
    idle = page[page["kind"] == "tls"]
    assert (idle["http_requests"] == 0).all() and (idle["tls_records"] > 0).all()
    return page[page["kind"] != "tls"]


def test_decrypted_page_connection_is_http2_with_what_the_page_did(recorded, decrypted):
    recording, _analysis = recorded
    assert decrypted["findings"].empty, decrypted["findings"].to_dict("records")
    page = _page_connections(recording, decrypted)
    assert set(page["kind"]) == {"http2"} and set(page["tls_alpn"]) == {"h2"} and set(page["tls_version"]) == {"TLS 1.3"}
    assert (page["unparsed_bytes"] == 0).all() and (page["tls_encrypted_bytes"] == 0).all() and (page["http2_frame_header_bytes"] > 0).all()
    messages = decrypted["http_messages"][decrypted["http_messages"]["conn_id"].isin(page["conn_id"])]
    requests, responses = messages[messages["direction"] == "client"], messages[messages["direction"] == "server"]
    assert Counter(zip(requests["method"], requests["target"])) == Counter(
        {("POST", "/chat"): FETCHES, ("GET", "/"): 1, ("GET", "/favicon.ico"): 1})
    assert (messages["version"] == "HTTP/2").all() and messages["complete"].all()
    # Paired by stream: each stream one request and its response; the POSTs carried the page's asks and the replies.
    pairs = requests.merge(responses, on=["conn_id", "stream_id"], suffixes=("", "_response"))
    assert len(pairs) == len(requests) == len(responses) and (pairs["exchange_id"] == pairs["exchange_id_response"]).all()
    posts = pairs[pairs["method"] == "POST"]
    assert (posts["body_bytes"] == ASK_BYTES).all() and (posts["body_bytes_response"] == ASK_BYTES).all()
    assert (posts["status_response"] == 200).all() and set(pairs.loc[pairs["target"] == "/", "status_response"]) == {200}


def test_decrypted_http2_streams_against_tshark(recorded, decrypted):
    """Streams, methods, paths and statuses, and each stream's DATA, as tshark decrypts them with the same key log."""
    recording, _analysis = recorded
    page = _page_connections(recording, decrypted)
    theirs = oracle.http2_connections(recording.path, recording.page_port, decode_as=False, keylog=recording.keylog)
    messages = decrypted["http_messages"]
    for _, connection in page.iterrows():
        frames = theirs.get(int(connection["client_port"]), {"client": [], "server": [], "preface": []})
        if connection["http_requests"]:
            assert frames["preface"] == ["client"]
        # else Chromium's spare connection, opened in case and given up: its preface and SETTINGS
        # may be all it sent, which tshark 4.0 then does not always show as a preface.
        mine = messages[messages["conn_id"] == connection["conn_id"]]
        for direction in ("client", "server"):
            rows = mine[mine["direction"] == direction].set_index("stream_id")
            headers = [f for f in frames[direction] if f.frame_type == 1]
            if direction == "client":
                assert sorted((f.stream_id, f.method, f.path) for f in headers) == sorted(zip(rows.index, rows["method"], rows["target"]))
            else:
                assert sorted((f.stream_id, f.status) for f in headers) == sorted(zip(rows.index, rows["status"]))
            data = Counter()
            for frame in frames[direction]:
                if frame.frame_type == 0:
                    data[frame.stream_id] += frame.length - frame.padding
            assert data == Counter({stream: body for stream, body in rows["body_bytes"].items() if body})


def test_decrypted_wss_is_websocket_with_the_pages_messages(recorded, decrypted):
    recording, _analysis = recorded
    connections = decrypted["connections"]
    wss = connections[connections["server_port"] == recording.ws_port]
    assert len(wss) == 1 and wss["kind"].tolist() == ["websocket"] and wss["tls_alpn"].tolist() == ["http/1.1"]
    assert wss["ws_deflate"].tolist() == [True] and wss["ws_extensions"].iloc[0].startswith("permessage-deflate")
    messages = decrypted["ws_messages"][decrypted["ws_messages"]["conn_id"] == wss["conn_id"].iloc[0]]
    assert Counter(messages["direction"]) == {"client": WS_MESSAGES, "server": WS_MESSAGES}
    assert (messages["opcode"] == 1).all() and messages["compressed"].all() and messages["complete"].all()
    assert (messages["payload_bytes"] == ASK_BYTES).all() and (messages["wire_payload_bytes"] < ASK_BYTES).all()
    # tshark decrypts the same frames: the same text frames each way, every one compressed.
    frames = _decrypted(recording, ["tcp.srcport", "websocket.opcode", "websocket.payload_length"], "websocket.opcode == 1")
    theirs = Counter(zip(frames["tcp.srcport"] == str(recording.ws_port), frames["websocket.payload_length"].astype(int)))
    mine = Counter(zip(messages["direction"] == "server", messages["wire_payload_bytes"]))
    assert theirs == mine


def test_decrypted_bytes_reconcile_and_every_message_has_its_tls_cost(recorded, decrypted):
    recording, _analysis = recorded
    check_decrypted_costs(recording.path, decrypted)
    costs = decrypted["message_costs"]
    messages = costs[costs["item"].isin(["exchange", "ws_message"])]
    assert Counter(messages["kind"]) == {"http2": FETCHES + 2, "websocket": 2 * WS_MESSAGES}
    assert (messages["tls_overhead_bytes"] > 0).all()
