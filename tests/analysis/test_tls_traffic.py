"""Real TLS 1.2 and 1.3 traffic on loopback, analysed and checked against tshark and against
what each client's ssl object negotiated (tests/tls_traffic.py records it)."""

from __future__ import annotations

from collections import Counter

import pytest

from inspector.analysis.pipeline import analyze_captures
from inspector.analysis.tables import BYTE_CATEGORIES
from inspector.parse.tls import CIPHER_SUITES, cipher_suite_name
from tests import tshark_oracle as oracle
from tests.conftest import analyze_cached, connection_row, corpus_params, live_traffic_unavailable
from tests.tls_traffic import CLIENTS, record_tls

needs_tshark = pytest.mark.skipif(not oracle.tshark_available(), reason="tshark not installed (the README's test command installs it)")
# OpenSSL's names of the ciphers the clients use, as IANA names them (what tls_cipher shows).
OPENSSL_NAMES = {"TLS_AES_256_GCM_SHA384": "TLS_AES_256_GCM_SHA384",
                 "ECDHE-ECDSA-CHACHA20-POLY1305": "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
                 "ECDHE-ECDSA-AES128-GCM-SHA256": "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    reason = live_traffic_unavailable()
    if reason:
        pytest.skip(reason)
    recording = record_tls(tmp_path_factory.mktemp("tls-live"))
    return recording, analyze_captures([recording.path], jobs=1)


def test_every_connection_is_tls_with_what_the_client_negotiated(recorded):
    recording, analysis = recorded
    connections = analysis["connections"]
    assert len(connections) == len(CLIENTS) and set(connections["kind"]) == {"tls"}
    assert analysis["findings"].empty
    for client_port, negotiated in recording.expected.items():
        row = connection_row(analysis, client_port)
        assert row["tls_version"] == negotiated["version"].replace("TLSv", "TLS ")
        assert row["tls_cipher"] == OPENSSL_NAMES[negotiated["cipher"]]
        assert row["tls_sni"] == negotiated["sni"]
        assert row["tls_alpn_offered"] == negotiated["alpn_offered"]
        # TLS 1.3 chooses ALPN in its encrypted EncryptedExtensions: not seen without keys.
        assert row["tls_alpn"] == ("" if negotiated["version"] == "TLSv1.3" else negotiated["alpn"])
        assert row["unparsed_bytes"] == 0 and row["tls_encrypted_bytes"] > 40_000 * 2
        assert row["setup_bytes"] > row["tls_handshake_bytes"]


def check_against_tshark(path, analysis, server_port: int) -> int:
    """Every connection tshark reads as TLS on `server_port` is a TLS connection (kind tls, or
    decrypted into rest or websocket) with the same records per direction (content type and
    length, in order), hellos and byte counts; and every TLS connection to that port is one
    tshark reads.  Returns how many were compared."""
    tshark = oracle.tls_connections(path, server_port)
    connections = analysis["connections"]
    ours = connections[(connections["tls_records"] > 0) & (connections["server_port"] == server_port)]
    assert set(tshark) == set(ours["client_port"])
    records = analysis["tls_records"]
    frame_bytes = oracle.tcp_frame_bytes_by_endpoints(path)
    for client_port, seen in tshark.items():
        row = connection_row(analysis, client_port)
        mine = records[records["conn_id"] == row["conn_id"]]
        for direction in ("client", "server"):
            sent = mine[mine["direction"] == direction].sort_values("offset")
            assert list(zip(sent["content_type"], sent["length"])) == [tuple(r) for r in seen.records[direction]], (client_port, direction)
        assert row["tls_records"] == len(mine)
        assert row["tls_sni"] == (seen.server_name or "")
        assert row["tls_alpn_offered"] == ",".join(seen.alpn_offered)
        # Decrypted TLS 1.3 shows the ALPN of its EncryptedExtensions, which tshark reads only with keys.
        decrypted_choice = row["tls_aead_overhead_bytes"] > 0 and seen.alpn_chosen is None and row["tls_alpn"] in seen.alpn_offered
        assert row["tls_alpn"] == (seen.alpn_chosen or "") or decrypted_choice
        assert row["tls_cipher"] == ("" if seen.cipher_suite is None else cipher_suite_name(seen.cipher_suite))
        assert row["tls_version"] == {None: "", 0x0303: "TLS 1.2", 0x0304: "TLS 1.3"}[seen.version]
        # Bytes: the categories add up to tshark's frame.len sum; the TLS ones are its records.
        endpoints = tuple(sorted([(row["client_ip"], int(row["client_port"])), (row["server_ip"], int(row["server_port"]))]))
        assert row["wire_bytes"] == frame_bytes[endpoints]
        assert sum(int(row[name]) for name in BYTE_CATEGORIES) == row["wire_bytes"]
        all_records = seen.records["client"] + seen.records["server"]
        assert row["tls_record_header_bytes"] == 5 * len(all_records)
        assert (row["tls_handshake_bytes"] + row["tls_encrypted_bytes"] + row["tls_aead_overhead_bytes"] + mine["plaintext_bytes"].sum()
                + mine["missing_bytes"].sum()) == sum(r.length for r in all_records)
        assert Counter(mine["content_name"]) == Counter(
            {20: "change_cipher_spec", 21: "alert", 22: "handshake", 23: "application_data"}[r.content_type] for r in all_records)
    return len(tshark)


@needs_tshark
def test_records_hellos_and_bytes_against_tshark(recorded):
    recording, analysis = recorded
    assert check_against_tshark(recording.path, analysis, recording.server_port) == len(CLIENTS)
    for client_port, negotiated in recording.expected.items():
        assert connection_row(analysis, client_port)["tls_cipher"] in CIPHER_SUITES.values()


@needs_tshark
@pytest.mark.parametrize("path", corpus_params())
def test_corpus_tls_against_tshark(path):
    """The public captures: real TLS (browsers, Android apps) on 443 and wherever we find it."""
    analysis = analyze_cached(str(path))
    connections = analysis["connections"]
    for port in sorted({443} | set(connections.loc[connections["kind"] == "tls", "server_port"])):
        check_against_tshark(path, analysis, int(port))


def test_message_costs_add_up_and_handshake_is_setup(recorded):
    _recording, analysis = recorded
    costs = analysis["message_costs"]
    for _, row in analysis["connections"].iterrows():
        mine = costs[costs["conn_id"] == row["conn_id"]]
        assert mine["wire_bytes"].sum() == pytest.approx(row["wire_bytes"], abs=1e-6)
        setup = mine[mine["item"] == "setup"]
        assert setup["app_header_bytes"].sum() == row["tls_handshake_bytes"] + 5 * ((analysis["tls_records"]["conn_id"] == row["conn_id"])
                                                                                    & (analysis["tls_records"]["counted_as"] == "handshake")).sum()


def test_tls13_encrypted_handshake_is_told_by_its_place(recorded):
    recording, analysis = recorded
    port = next(p for p, n in recording.expected.items() if n["version"] == "TLSv1.3")
    records = analysis["tls_records"]
    mine = records[records["conn_id"] == connection_row(analysis, port)["conn_id"]]
    client = mine[mine["direction"] == "client"].sort_values("offset")
    # ClientHello, ChangeCipherSpec (compatibility), Finished (encrypted): handshake; then data.
    assert list(client["counted_as"])[:4] == ["handshake", "handshake", "handshake", "encrypted"]
    assert list(client["messages"])[0] == "ClientHello"
    server = mine[mine["direction"] == "server"].sort_values("offset")
    assert list(server["messages"])[0] == "ServerHello"
    flight = server[server["counted_as"] == "handshake"]
    assert list(flight["content_type"]) == [22, 20, 23, 23, 23, 23]  # EncryptedExtensions, Certificate, CertificateVerify, Finished


def test_same_tables_whatever_the_jobs(recorded):
    recording, analysis = recorded
    again = analyze_captures([recording.path], jobs=2)
    for name in ("connections", "tls_records", "message_costs"):
        assert again[name].equals(analysis[name]), name
