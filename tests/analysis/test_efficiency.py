"""Efficiency is application payload (decoded) over wire bytes, never the payload as sent.

The expected numbers never come from the analysis itself: on the bundled recordings the
application payload is the recording sidecar's ledger (what the clients and servers handed
their libraries, before any compression), cross-checked with what tshark decompresses, and
the wire bytes are tshark's frame lengths; on the captures built here they are the sizes of
the documents the test compressed and of the frames it wrote.
"""

from __future__ import annotations

import gzip
import json
import zlib

import pytest

from inspector.analysis.pipeline import analyze_captures
from inspector.report import format_summary
from tests import factories
from tests import tshark_oracle as oracle
from tests.conftest import BUNDLED, analyze_cached

needs_tshark = pytest.mark.skipif(not oracle.tshark_available(), reason="tshark not installed (the README's test command installs it)")

RECORDINGS = ("chat", "feed", "bulk")
DOCUMENT = b"".join(b"%d,sensor-%d,%d.%02d,ok\n" % (i, i % 7, i * 3, i % 100) for i in range(200))  # compressible CSV


def variant_connections(variant: dict, endpoints: dict) -> dict:
    """tshark's {endpoints: frame bytes} of the connections the sidecar says are the variant's."""
    def ours(pair) -> bool:
        ports = {port for _ip, port in pair}
        return variant["server_port"] in ports and bool(ports & set(variant["client_ports"]))

    return {pair: size for pair, size in endpoints.items() if ours(pair)}


# --- the bundled recordings -----------------------------------------------------------


@needs_tshark
@pytest.mark.parametrize("stem", RECORDINGS)
def test_efficiency_is_the_ledgers_payload_over_tsharks_wire_bytes(stem):
    path = BUNDLED / f"{stem}.pcap"
    sidecar = json.loads(path.with_suffix(".json").read_text())
    overhead = analyze_cached(str(path))["overhead"].set_index("variant")
    endpoints = oracle.tcp_frame_bytes_by_endpoints(path)
    frames = oracle.websocket_frames(path)
    for variant in sidecar["variants"]:
        name = variant["name"]
        app = sum(variant["payload_bytes"].values())  # before compression, as the sender handed it over
        wire = sum(variant_connections(variant, endpoints).values())
        row = overhead.loc[name]
        assert (row["app_payload_bytes"], row["wire_bytes"], row["undecoded_payload_bytes"]) == (app, wire, 0), name
        assert row["efficiency"] == pytest.approx(app / wire, rel=1e-12), name
        if variant["protocol"] != "websocket":
            continue
        # tshark decompresses permessage-deflate too: the same application payload
        assert oracle.websocket_decoded_payload_bytes(path, variant["server_port"]) == app, name
        ports = {variant["server_port"], *variant["client_ports"]}
        sent = sum(f.payload_length * n for f, n in frames.items() if f.src_port in ports and f.opcode in (0, 1, 2))
        assert row["wire_payload_bytes"] == sent, name
        assert row["wire_payload_efficiency"] == pytest.approx(sent / wire, rel=1e-12), name
        assert (row["compression_saved_bytes"], row["compression_ratio"]) == (app - sent, pytest.approx(app / sent)), name


@pytest.mark.parametrize("stem", RECORDINGS)
def test_compression_shows_as_saving_not_waste(stem):
    """The same application payload in fewer wire bytes: ws-deflate is the more efficient."""
    overhead = analyze_cached(str(BUNDLED / f"{stem}.pcap"))["overhead"].set_index("variant")
    ws, deflate = overhead.loc["ws"], overhead.loc["ws-deflate"]
    assert deflate["app_payload_bytes"] == ws["app_payload_bytes"]
    assert deflate["wire_bytes"] < ws["wire_bytes"]
    assert deflate["efficiency"] > ws["efficiency"]
    # as sent, the compressed payload is smaller than the wire bytes it saves would suggest
    assert deflate["wire_payload_efficiency"] < deflate["efficiency"]
    assert deflate["compression_saved_bytes"] > 0 and ws["compression_saved_bytes"] == 0


def test_chat_summary_prints_the_application_payload_efficiency():
    analysis = analyze_cached(str(BUNDLED / "chat.pcap"))
    sidecar = json.loads((BUNDLED / "chat.json").read_text())
    text = format_summary(analysis)
    for variant in sidecar["variants"]:
        row = analysis["overhead"].set_index("variant").loc[variant["name"]]
        app = sum(variant["payload_bytes"].values())
        (line,) = [line for line in text.splitlines() if line.startswith(variant["name"] + " ")]
        assert line.split()[-2:] == [f"{row['wire_bytes_per_payload_message']:,.0f}", f"{app / row['wire_bytes']:.1%}"], line
    assert "payload as sent and what compression saved" in text


# --- HTTP bodies with a content coding, built here ------------------------------------------


def http_exchange(target: str, body: bytes = b"", encoding: str | None = None, chunk: int | None = None) -> list[tuple[str, bytes]]:
    headers = {"Host": "10.0.0.2:8080"}
    response_headers = {} if encoding is None else {"Content-Encoding": encoding}
    if chunk is not None:
        response = factories.http_response(200, headers={**response_headers, "Transfer-Encoding": "chunked"},
                                           chunked=factories.chunks(body, chunk))
    else:
        response = factories.http_response(200, headers=response_headers, body=body)
    return [("client", factories.http_request("GET", target, headers=headers)), ("server", response)]


def raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-15)
    return compressor.compress(data) + compressor.flush()


# (target, body as sent, Content-Encoding, chunk size, application payload, of it undecoded)
BODIES = [
    ("/gzip", gzip.compress(DOCUMENT), "gzip", None, len(DOCUMENT), 0),
    ("/gzip-chunked", gzip.compress(DOCUMENT), "gzip", 100, len(DOCUMENT), 0),
    ("/deflate", zlib.compress(DOCUMENT), "deflate", None, len(DOCUMENT), 0),
    ("/raw-deflate", raw_deflate(DOCUMENT), "deflate", None, len(DOCUMENT), 0),
    ("/plain", DOCUMENT, None, None, len(DOCUMENT), 0),
    ("/empty-gzip", gzip.compress(b""), "gzip", None, 0, 0),
    # decoded size unknown: counted as sent, and said so
    ("/br", b"\x1b\x03\x00\xf8" + bytes(range(60)), "br", None, 64, 64),
    ("/corrupt-gzip", gzip.compress(DOCUMENT)[:10] + b"\xff" * 40, "gzip", None, 50, 50),
]


@pytest.fixture(scope="module")
def encoded_http(tmp_path_factory):
    assert raw_deflate(DOCUMENT)[:1] != b"\x78"  # really raw: no zlib header
    talk = [part for target, body, encoding, chunk, _, _ in BODIES for part in http_exchange(target, body, encoding, chunk)]
    frames = factories.tcp_connection(40100, talk, 1_700_000_000 * 10**9)
    path = tmp_path_factory.mktemp("efficiency") / "encoded-http.pcap"
    path.write_bytes(factories.pcap_file(frames))
    return analyze_captures([path]), sum(len(frame) for _, frame in frames)


def test_http_bodies_count_decoded(encoded_http):
    analysis, wire = encoded_http
    costs = analysis["message_costs"].query("item == 'exchange'").sort_values("item_index")
    assert list(costs["app_payload_bytes"]) == [app for *_, app, _ in BODIES]
    assert list(costs["undecoded_payload_bytes"]) == [undecoded for *_, undecoded in BODIES]
    assert list(costs["wire_payload_bytes"]) == [len(body) for _, body, *_ in BODIES]
    # an empty document, even gzip-encoded (20 bytes as sent), is not work done
    assert list(costs["payload_messages"]) == [int(app > 0) for *_, app, _ in BODIES]
    (conn,) = analysis["connections"].itertuples()
    app = sum(app for *_, app, _ in BODIES)
    sent = sum(len(body) for _, body, *_ in BODIES)
    assert conn.wire_bytes == wire
    assert (conn.app_payload_bytes, conn.wire_payload_bytes, conn.undecoded_payload_bytes) == (app, sent, 64 + 50)
    assert conn.efficiency == pytest.approx(app / wire)
    assert conn.wire_payload_efficiency == pytest.approx(sent / wire)
    assert conn.compression_saved_bytes == app - sent > 0


def test_undecoded_payload_makes_the_summary_efficiency_a_lower_bound(encoded_http):
    analysis, wire = encoded_http
    text = format_summary(analysis)
    app = sum(app for *_, app, _ in BODIES)
    (line,) = [line for line in text.splitlines() if line.startswith("rest ")]
    assert line.split()[-1] == f">={app / wire:.1%}", line
    assert "counted as sent: efficiency marked >= is a lower bound" in text


# --- WebSocket permessage-deflate, built here ------------------------------------------------


def ws_upgrade(extensions: str) -> list[tuple[str, bytes]]:
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    request = factories.http_request("GET", "/feed", headers={
        "Host": "10.0.0.2:8080", "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Key": key,
        "Sec-WebSocket-Version": "13", "Sec-WebSocket-Extensions": "permessage-deflate"})
    response = factories.http_response(101, "Switching Protocols", content_length=False, headers={
        "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Accept": factories.ws_accept(key),
        "Sec-WebSocket-Extensions": extensions})
    return [("client", request), ("server", response)]


def test_websocket_messages_count_decompressed_and_unknown_ones_as_sent(tmp_path):
    compressed = factories.deflate_message(DOCUMENT)
    corrupt = b"\xff" * 30  # BTYPE 11: a reserved block type, never decodes
    cut = factories.deflate_message(DOCUMENT[:1000])[:50]  # the first fragment of a message never finished
    plain = b'{"plain": true}'
    talk = ws_upgrade("permessage-deflate; server_no_context_takeover; client_no_context_takeover") + [
        ("server", factories.ws_frame(compressed, rsv1=True)),
        ("server", factories.ws_frame(plain)),  # not compressed, on a deflate connection
        ("server", factories.ws_frame(corrupt, rsv1=True)),
        ("server", factories.ws_frame(factories.deflate_message(b""), rsv1=True)),  # an empty message
        ("client", factories.ws_frame(compressed, rsv1=True, masked=True)),
        ("server", factories.ws_frame(cut, rsv1=True, fin=False)),
    ]
    frames = factories.tcp_connection(40200, talk, 1_700_000_000 * 10**9)
    path = tmp_path / "deflate.pcap"
    path.write_bytes(factories.pcap_file(frames))
    analysis = analyze_captures([path])
    (conn,) = analysis["connections"].itertuples()
    app = 2 * len(DOCUMENT) + len(plain) + len(corrupt) + len(cut)
    undecoded = len(corrupt) + len(cut)
    sent = 2 * len(compressed) + len(plain) + len(corrupt) + len(factories.deflate_message(b"")) + len(cut)
    assert conn.kind == "websocket" and conn.ws_deflate
    assert (conn.app_payload_bytes, conn.wire_payload_bytes, conn.undecoded_payload_bytes) == (app, sent, undecoded)
    assert conn.efficiency == pytest.approx(app / sum(len(frame) for _, frame in frames))
    assert "ws-decompression-failed" in set(analysis["findings"]["rule"])
    # work done: the document both ways, the plain message, the corrupt and the cut one (sizes unknown); not the empty one
    assert analysis["message_costs"]["payload_messages"].sum() == 5
    costs = analysis["message_costs"]
    assert costs["app_payload_bytes"].sum() == app and costs["undecoded_payload_bytes"].sum() == undecoded
