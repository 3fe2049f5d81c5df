"""TLS 1.3 with each cipher suite and key updates both ways, made by OpenSSL's s_server and
s_client (tests/openssl_traffic.py), decrypted with s_client's key log and checked against
tshark reading it with the same key log."""

from __future__ import annotations

import shutil
from collections import Counter

import pytest

from inspector.analysis.pipeline import analyze_captures
from inspector.analysis.tables import BYTE_CATEGORIES
from inspector.parse.connection import ParserOptions
from inspector.parse.keylog import KeyLog
from tests import tshark_oracle as oracle
from tests.analysis.test_tls_traffic import check_against_tshark
from tests.conftest import live_traffic_unavailable
from tests.openssl_traffic import record_openssl

SUITES = ("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256")
KEY_UPDATES = 2


@pytest.fixture(scope="module", params=SUITES)
def recorded(request, tmp_path_factory):
    reason = live_traffic_unavailable() or (None if shutil.which("openssl") else "the openssl program is not installed")
    if reason:
        pytest.skip(reason)
    recording = record_openssl(tmp_path_factory.mktemp("openssl"), request.param, KEY_UPDATES)
    keylog = KeyLog.from_text(recording.keylog.read_bytes())
    return request.param, recording, analyze_captures([recording.path], ParserOptions(keylog=keylog), jobs=1)


def test_every_record_decrypts_through_the_key_updates(recorded):
    suite, _recording, analysis = recorded
    (row,) = analysis["connections"].to_dict("records")
    assert analysis["findings"].empty, analysis["findings"].to_dict("records")
    assert (row["kind"], row["tls_cipher"], row["tls_version"]) == ("rest", suite, "TLS 1.3")
    assert (row["http_requests"], row["http_responses"], row["unparsed_bytes"], row["tls_encrypted_bytes"]) == (1, 1, 0, 0)
    records = analysis["tls_records"]
    assert records.loc[records["encrypted"], "decrypted"].all()
    # The client's K: a KeyUpdate asking for one back, each time; the server's answer is one too.
    assert Counter(records.loc[records["messages"] == "KeyUpdate", "direction"]) == {"client": KEY_UPDATES, "server": KEY_UPDATES}
    http = analysis["http_messages"]
    assert list(http["method"].fillna("")) == ["GET", ""] and http["status"].iloc[1] == 200 and http["body_bytes"].iloc[1] > 1000
    assert sum(row[name] for name in BYTE_CATEGORIES) == row["wire_bytes"]
    assert analysis["message_costs"]["wire_bytes"].sum() == pytest.approx(row["wire_bytes"], abs=1e-6)


@pytest.mark.skipif(not oracle.tshark_available(), reason="tshark not installed (the README's test command installs it)")
def test_against_tshark_with_the_key_log(recorded):
    _suite, recording, analysis = recorded
    # s_server -www's HTTP/1.0 response ends with the connection (no Content-Length): tshark shows
    # such a response only without body reassembly.
    keys = {"extra_args": ("-o", f"tls.keylog_file:{recording.keylog}", "-o", "http.desegment_body:FALSE")}
    assert oracle.http_request_methods(recording.path, **keys) == Counter({"GET": 1})
    assert oracle.http_response_codes(recording.path, **keys) == Counter({200: 1})
    assert check_against_tshark(recording.path, analysis, recording.server_port) == 1
