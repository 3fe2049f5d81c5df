"""HTTPS and WSS decrypted with the clients' key log: real aiohttp traffic on loopback
(tests/tls_keys_traffic.py), the same workload in cleartext beside it.  Checked: the same
http_messages and ws_messages rows as cleartext, tshark's view with the same key log, byte
accounting to frame.len, message costs, the key log embedded in a pcapng (editcap
--inject-secrets) as good as --keylog, and wrong, missing and junk key logs."""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter

import pandas as pd
import pytest

from inspector.analysis.pipeline import analyze_captures
from inspector.analysis.tables import BYTE_CATEGORIES
from inspector.parse.connection import ParserOptions
from inspector.parse.keylog import KeyLog
from tests import tshark_oracle as oracle
from tests.analysis.test_tls_traffic import check_against_tshark
from tests.conftest import live_traffic_unavailable
from tests.tls_keys_traffic import REQUESTS, TLS_CLIENTS, WS_MESSAGES, record_https

needs_tshark = pytest.mark.skipif(not oracle.tshark_available(), reason="tshark not installed (the README's test command installs it)")
needs_editcap = pytest.mark.skipif(shutil.which("editcap") is None, reason="editcap (Wireshark) not installed")
# What differs between a message over TLS and the same one in cleartext: which connection, and when.
NOT_COMPARED = ["conn_id", "ts", "end_ts"]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    reason = live_traffic_unavailable()
    if reason:
        pytest.skip(reason)
    recording = record_https(tmp_path_factory.mktemp("https-live"))
    keylog = KeyLog.from_text(recording.keylog.read_bytes())
    return recording, keylog, analyze_captures([recording.path], ParserOptions(keylog=keylog), jobs=1)


def runs(recording, analysis) -> dict[str, tuple[int, int]]:
    """Run name -> (conn_id of its REST connection, of its WebSocket connection)."""
    connections = analysis["connections"].sort_values("start_ts")
    clear = connections[connections["server_port"] == recording.clear_port]["conn_id"].tolist()
    tls = connections[connections["server_port"] == recording.tls_port]["conn_id"].tolist()
    ids = clear + tls
    assert len(ids) == 2 * len(recording.runs)
    return {name: (ids[2 * index], ids[2 * index + 1]) for index, name in enumerate(recording.runs)}


# Header lines that differ too: each run's Host names its own server's port, a Date its second, a
# WebSocket handshake's key (and so its accept) is random.
NOT_COMPARED_HEADERS = r"(?im)^(host|date|sec-websocket-key|sec-websocket-accept):[^\n]*(\n|$)"


def rows(table: pd.DataFrame, conn_id: int) -> pd.DataFrame:
    out = table[table["conn_id"] == conn_id].drop(columns=[c for c in NOT_COMPARED if c in table]).reset_index(drop=True)
    if "headers" in out:
        out["headers"] = out["headers"].str.replace(NOT_COMPARED_HEADERS, "", regex=True)
    return out


def test_https_and_wss_are_rest_and_websocket_with_their_tls_columns(recorded):
    recording, _keylog, analysis = recorded
    connections = analysis["connections"].set_index("conn_id")
    assert analysis["findings"].empty, analysis["findings"].to_dict("records")
    for name, (rest, ws) in runs(recording, analysis).items():
        assert (connections.loc[rest, "kind"], connections.loc[ws, "kind"]) == ("rest", "websocket")
        assert connections.loc[rest, "http_requests"] == connections.loc[rest, "http_responses"] == REQUESTS
        assert connections.loc[ws, "ws_messages"] == 2 * len(WS_MESSAGES)
        for conn_id in (rest, ws):
            row = connections.loc[conn_id]
            assert row["unparsed_bytes"] == 0 and row["tls_encrypted_bytes"] == 0
            if name == "clear":
                assert row["tls_version"] == "" and row["tls_records"] == 0 and row["tls_aead_overhead_bytes"] == 0
            else:
                version = dict((n, v) for n, v, _c in TLS_CLIENTS)[name]
                assert row["tls_version"] == version.name.replace("TLSv1_", "TLS 1.")
                assert row["tls_alpn"] == "http/1.1"  # TLS 1.3's from the decrypted EncryptedExtensions
                assert row["tls_aead_overhead_bytes"] > 0


def test_the_same_messages_as_cleartext(recorded):
    """Decrypted HTTP and WebSocket give the rows their cleartext twins give (offsets are in the plaintext)."""
    recording, _keylog, analysis = recorded
    by_run = runs(recording, analysis)
    clear_rest, clear_ws = by_run["clear"]
    for name, (rest, ws) in by_run.items():
        if name == "clear":
            continue
        pd.testing.assert_frame_equal(rows(analysis["http_messages"], rest), rows(analysis["http_messages"], clear_rest))
        for table in ("ws_messages", "ws_frames"):
            mine, clear = rows(analysis[table], ws), rows(analysis[table], clear_ws)
            # The client's masking keys are random: the same frames, other keys.
            mine, clear = (frame.drop(columns=[c for c in ("mask_key",) if c in frame]) for frame in (mine, clear))
            pd.testing.assert_frame_equal(mine, clear)
        # The upgrade request and response are the same too.
        assert rows(analysis["http_messages"], ws).equals(rows(analysis["http_messages"], clear_ws))


def test_bytes_reconcile_and_message_costs_carry_the_tls_overhead(recorded):
    recording, _keylog, analysis = recorded
    check_decrypted_costs(recording.path, analysis)


def check_decrypted_costs(path, analysis) -> None:
    """Every connection's categories add up to its frame.len as tshark counts them, its message_costs
    rows to its wire bytes; the TLS overhead of every decrypted application record is some message's
    (each exchange and WebSocket message of a decrypted connection has some)."""
    connections = analysis["connections"]
    frame_bytes = oracle.tcp_frame_bytes_by_endpoints(path) if oracle.tshark_available() else None
    costs = analysis["message_costs"]
    records = analysis["tls_records"]
    for _, row in connections.iterrows():
        assert sum(int(row[name]) for name in BYTE_CATEGORIES) == row["wire_bytes"]
        if frame_bytes is not None:
            endpoints = tuple(sorted([(row["client_ip"], int(row["client_port"])), (row["server_ip"], int(row["server_port"]))]))
            assert row["wire_bytes"] == frame_bytes[endpoints]
        mine = costs[costs["conn_id"] == row["conn_id"]]
        assert mine["wire_bytes"].sum() == pytest.approx(row["wire_bytes"], abs=1e-6)
        application = records[(records["conn_id"] == row["conn_id"]) & (records["counted_as"] == "application")]
        assert mine["tls_overhead_bytes"].sum() == 5 * len(application) + application["aead_overhead_bytes"].sum()
        assert row["tls_aead_overhead_bytes"] == application["aead_overhead_bytes"].sum()
        if row["tls_version"]:
            messages = mine[mine["item"].isin(["exchange", "ws_message"])]
            assert (messages["tls_overhead_bytes"] > 0).all()
            assert (application["plaintext_bytes"] + application["aead_overhead_bytes"] == application["length"]).all()


def test_a_message_over_tls_has_its_cleartext_twins_bytes_and_a_tls_cost(recorded):
    """The same exchange has its cleartext twin's header and payload bytes, plus its records' TLS
    overhead (packets' headers differ: TLS records segment the stream their own way)."""
    recording, _keylog, analysis = recorded
    costs = analysis["message_costs"]
    by_run = runs(recording, analysis)
    clear = costs[(costs["conn_id"] == by_run["clear"][0]) & (costs["item"] == "exchange")].reset_index(drop=True)
    for name in recording.runs[1:]:
        mine = costs[(costs["conn_id"] == by_run[name][0]) & (costs["item"] == "exchange")].reset_index(drop=True)
        assert (mine["app_header_bytes"] == clear["app_header_bytes"]).all() and (mine["wire_payload_bytes"] == clear["wire_payload_bytes"]).all()
        assert (mine["tls_overhead_bytes"] > 0).all() and (clear["tls_overhead_bytes"] == 0).all()


@needs_tshark
def test_against_tshark_with_the_same_key_log(recorded):
    recording, _keylog, analysis = recorded
    keys = ("-o", f"tls.keylog_file:{recording.keylog}")
    decode = {"decode_as_ports": (recording.clear_port,), "extra_args": keys}
    http = analysis["http_messages"]
    assert oracle.http_request_methods(recording.path, **decode) == Counter(http["method"].dropna().loc[lambda m: m != ""])
    assert oracle.http_response_codes(recording.path, **decode) == Counter(int(s) for s in http["status"].dropna())
    frames = analysis["ws_frames"].merge(analysis["connections"][["conn_id", "server_port"]], on="conn_id")
    theirs = Counter()
    for frame, count in oracle.websocket_frames(recording.path, **decode).items():
        theirs[(frame.opcode, bool(frame.fin), frame.payload_length)] += count
    assert theirs == Counter(zip(frames["opcode"], frames["fin"].astype(bool), frames["payload_length"]))
    # Records: the same content types and lengths per direction as tshark reads them.
    assert check_against_tshark(recording.path, analysis, recording.tls_port) == 2 * len(TLS_CLIENTS)


@needs_editcap
def test_secrets_in_the_pcapng_decrypt_as_the_key_log_does(recorded, tmp_path):
    recording, _keylog, analysis = recorded
    embedded = tmp_path / "https.pcapng"
    subprocess.run(["editcap", "--inject-secrets", f"tls,{recording.keylog}", str(recording.path), str(embedded)], check=True)
    again = analyze_captures([embedded], jobs=2)
    for name in ("connections", "http_messages", "ws_frames", "ws_messages", "tls_records", "findings", "message_costs"):
        mine, theirs = (table[name].drop(columns=[c for c in ("capture",) if c in table[name]]) for table in (again, analysis))
        pd.testing.assert_frame_equal(mine, theirs, obj=name)


def test_wrong_key_is_a_finding_and_the_records_stay_encrypted(recorded):
    recording, keylog, _analysis = recorded
    wrong = KeyLog()
    for client_random, by_label in keylog.secrets.items():
        wrong.secrets[client_random] = {label: bytes(b ^ 0x80 for b in secret) for label, secret in by_label.items()}
    analysis = analyze_captures([recording.path], ParserOptions(keylog=wrong), jobs=1)
    connections = analysis["connections"]
    tls = connections[connections["server_port"] == recording.tls_port]
    assert set(tls["kind"]) == {"tls"} and (tls["http_requests"] == 0).all() and (tls["tls_aead_overhead_bytes"] == 0).all()
    findings = analysis["findings"]
    assert Counter(findings["rule"]) == {"tls-decrypt-failed": 2 * len(tls)}  # each direction of each connection
    assert (connections[list(BYTE_CATEGORIES)].sum(axis=1) == connections["wire_bytes"]).all()


def test_missing_key_is_a_finding_and_junk_lines_cost_nothing(recorded):
    recording, keylog, analysis = recorded
    text = recording.keylog.read_text()
    lines = text.splitlines(keepends=True)
    tls13 = [line for line in lines if not line.startswith("CLIENT_RANDOM")]
    # Only the TLS 1.3 connections' secrets, among junk: the TLS 1.2 ones have no key.
    junky = "garbage line\n# comment\n" + "".join(line + "not hex at all\n" for line in tls13) + "\x00\xff junk\n"
    partial = analyze_captures([recording.path], ParserOptions(keylog=KeyLog.from_text(junky)), jobs=1)
    connections = partial["connections"]
    tls = connections[connections["server_port"] == recording.tls_port]
    assert Counter(tls["kind"]) == {"tls": 4, "rest": 1, "websocket": 1}
    assert Counter(partial["findings"]["rule"]) == {"tls-no-key": 4}
    assert partial["findings"]["detail"].str.contains("no CLIENT_RANDOM").all()
    decrypted = tls[tls["kind"] != "tls"]["conn_id"]
    for table in ("http_messages", "ws_messages"):
        mine = partial[table][partial[table]["conn_id"].isin(decrypted)].reset_index(drop=True)
        full = analysis[table][analysis[table]["conn_id"].isin(decrypted)].reset_index(drop=True)
        pd.testing.assert_frame_equal(mine, full)


def test_a_capture_cut_short_reconciles(recorded, tmp_path):
    """Truncated records at the cut: counted as unparsed, no traceback."""
    recording, keylog, _analysis = recorded
    data = recording.path.read_bytes()
    for fraction in (0.3, 0.55, 0.8):
        cut = tmp_path / f"cut-{fraction}.pcap"
        cut.write_bytes(data[: int(len(data) * fraction)])
        analysis = analyze_captures([cut], ParserOptions(keylog=keylog), jobs=1)
        connections = analysis["connections"]
        assert (connections[list(BYTE_CATEGORIES)].sum(axis=1) == connections["wire_bytes"]).all()
        costs = analysis["message_costs"].groupby("conn_id")["wire_bytes"].sum()
        assert costs.values == pytest.approx(connections.set_index("conn_id").loc[costs.index, "wire_bytes"].values, abs=1e-6)


def test_same_tables_whatever_the_jobs(recorded):
    recording, keylog, analysis = recorded
    again = analyze_captures([recording.path], ParserOptions(keylog=keylog), jobs=2)
    for name in ("connections", "http_messages", "ws_messages", "tls_records", "message_costs"):
        pd.testing.assert_frame_equal(again[name], analysis[name], obj=name)
