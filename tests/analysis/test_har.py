"""HAR export (`inspector analyze CAPTURE --export DIR --format har`, inspector/analysis/har.py).

Every HAR written here is checked by third parties:

- the HAR 1.2 JSON Schema of the har-schema project (what har-validator validates with; the
  files in tests/har_schema.json) with `jsonschema`, formats checked (date-time, IP addresses,
  URIs);
- haralyzer reads it back (HarParser, its page of entries without a pageref, HarEntry): the same
  entries, requests, statuses and WebSocket messages, and its own sum of Chrome's
  `response._transferSize` (get_total_size_trans) is the exchanges' wire bytes in message_costs.
  Not mitmproxy, the brief's first choice: mitmproxy 11 pins cryptography < 44.1, h11 < 0.15,
  Flask <= 3.1.0 and others older than the ones this project runs with (installing it would
  downgrade the TLS decryption's cryptography and httpx's h11), and its HAR import
  (mitmproxy/io/har.py) reads no `_webSocketMessages`, so it could not see the messages anyway;
- tshark on the same capture: request methods, response statuses, Content-Length values (the
  bodySize of every HTTP/1.1 message that has one) and header lines (the headers of the entries).

And against the analysis's own tables, derived again here in pandas: one entry per request,
paired with its final response, sizes from http_messages, `_transferSize` from message_costs,
the WebSocket messages of the upgraded connection from ws_messages.  On the bundled captures
(tls.pcap decrypted with its key log, h2.pcap's HTTP/2), on conversations built from bytes (chunked
and gzip bodies, hostile header bytes), and on a fresh real capture of REST and WebSocket traffic
with text and binary messages whose payloads are known.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
from collections import Counter
from pathlib import Path

import aiohttp
import pandas as pd
import pytest
from haralyzer import HarParser
from jsonschema import Draft6Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT6
from websockets.asyncio.client import connect as ws_connect

from inspector.analysis.har import har_file_names, header_fields, iso_time, request_url, wire_text, ws_message
from inspector.analysis.texts import MAX_HEADER_VALUE_CHARS, PREVIEW_TEXT_CHARS
from inspector.cli import main
from inspector.store import open_store
from tests import conversations
from tests.conftest import REPO, bundled_files
from tests.factories import http_request, http_response, ws_accept, ws_frame
from tests.traffic import HOST, servers, tcpdump_capture
from tests.tshark_oracle import capture_options, http1_headers, http_request_methods, http_response_codes, tshark_available

SCHEMA_FILE = REPO / "tests" / "har_schema.json"
SCHEMA_BASE = "https://har-schema.invalid/"  # the schemas' relative $ids ("log.json#") resolve against it
BUNDLED = sorted(path for path in bundled_files() if path.suffix == ".pcap")


def har_validator() -> Draft6Validator:
    schemas = json.loads(SCHEMA_FILE.read_text())["schemas"]
    registry = Registry().with_resources([(SCHEMA_BASE + name, Resource.from_contents(schema, default_specification=DRAFT6))
                                          for name, schema in schemas.items()])
    return Draft6Validator({"$ref": SCHEMA_BASE + "har.json"}, registry=registry, format_checker=FormatChecker())


VALIDATOR = har_validator()


def assert_valid_har(har: dict) -> None:
    """The schema, and what its `min` keywords mean but do not check: HAR 1.2's timings are
    non-negative (send, wait, receive) or -1 (the others), and time is their sum."""
    errors = [f"{'/'.join(map(str, error.absolute_path))}: {error.message}" for error in VALIDATOR.iter_errors(har)]
    assert not errors, errors[:5]
    for entry in har["log"]["entries"]:
        timings = entry["timings"]
        assert all(timings[name] >= 0 for name in ("send", "wait", "receive")), timings
        assert all(value >= -1 for value in timings.values()), timings
        assert entry["time"] == pytest.approx(timings["send"] + timings["wait"] + timings["receive"], abs=0.002)


def export_har(capture: Path, folder: Path, *extra: str) -> tuple[Path, dict[str, pd.DataFrame]]:
    """`inspector analyze CAPTURE --store S --export D --format har`: the HAR file and the store's tables."""
    store, out = folder / "store", folder / "har"
    assert main(["analyze", str(capture), "--store", str(store), "--export", str(out), "--format", "har", *extra]) == 0
    (path,) = out.iterdir()
    assert path.name == har_file_names([str(capture)])[0]
    with open_store(store) as opened:
        tables = {name: opened.table(name) for name in ("connections", "http_messages", "ws_messages", "message_costs")}
    return path, tables


def load_har(path: Path) -> dict:
    text = path.read_bytes()
    assert text.isascii()  # every non-ASCII and control character escaped
    return json.loads(text)


# -- the HAR against the tables ----------------------------------------------------------------

def expected_exchanges(tables: dict[str, pd.DataFrame]) -> list[tuple[dict, dict | None]]:
    """(request, final response or None) rows, in the HAR's order: by the request's time."""
    messages = tables["http_messages"]
    requests = messages[messages["direction"] == "client"].sort_values(["ts", "conn_id", "exchange_id"], kind="stable")
    responses = messages[messages["direction"] == "server"]
    interim = responses["status"].between(100, 199).fillna(False) & (responses["status"] != 101).fillna(True)
    finals = responses[~interim].sort_values("offset").groupby(["conn_id", "exchange_id"]).last()
    pairs = []
    for request in requests.to_dict("records"):
        key = (request["conn_id"], request["exchange_id"])
        pairs.append((request, finals.loc[key].to_dict() if key in finals.index else None))
    return pairs


def nullable(value):
    return None if value is pd.NA or value != value else value


def check_entries(har: dict, tables: dict[str, pd.DataFrame]) -> None:
    """Every exchange with a request is an entry with the tables' sizes; `_transferSize` is its
    message_costs row's wire bytes (a WebSocket upgrade's: its connection's setup row's)."""
    entries = har["log"]["entries"]
    pairs = expected_exchanges(tables)
    assert len(entries) == len(pairs)
    assert [e["startedDateTime"] for e in entries] == sorted(e["startedDateTime"] for e in entries)
    costs = tables["message_costs"]
    exchange_costs = costs[costs["item"] == "exchange"].set_index(["conn_id", "item_index"])["wire_bytes"]
    setup_costs = costs[costs["item"] == "setup"].set_index("conn_id")["wire_bytes"]
    kinds = tables["connections"].set_index("conn_id")["kind"]
    for entry, (request, response) in zip(entries, pairs):
        assert entry["connection"] == str(request["conn_id"])
        assert entry["startedDateTime"] == iso_time(request["ts"])
        assert (entry["request"]["method"], entry["request"]["httpVersion"]) == (request["method"], request["version"])
        assert (entry["request"]["headersSize"], entry["request"]["bodySize"]) == (request["header_bytes"], request["body_wire_bytes"])
        assert entry["request"]["headers"] == header_fields(request["headers"])
        got = entry["response"]
        if response is None:
            assert (got["status"], got["headersSize"], got["bodySize"]) == (0, -1, -1)
        else:
            assert (got["status"], got["headersSize"], got["bodySize"]) == (nullable(response["status"]) or 0, response["header_bytes"],
                                                                            response["body_wire_bytes"])
            decoded = nullable(response["decompressed_bytes"])
            assert got["content"]["size"] == (decoded if decoded is not None else response["body_bytes"])
            if response["content_encoding"] not in ("", "identity") and decoded is not None:
                assert got["content"]["compression"] == decoded - response["body_wire_bytes"]
            assert got["headers"] == header_fields(response["headers"])
        key = (request["conn_id"], request["exchange_id"])
        upgraded = response is not None and response["status"] == 101 and kinds[request["conn_id"]] == "websocket"
        expected = exchange_costs.get(key, setup_costs[request["conn_id"]] if upgraded else None)
        assert got.get("_transferSize") == (None if expected is None else pytest.approx(expected))


def check_ws_messages(har: dict, tables: dict[str, pd.DataFrame]) -> None:
    """Each upgraded connection's data messages, on its 101 entry, as ws_messages has them."""
    listed = {entry["connection"]: entry["_webSocketMessages"] for entry in har["log"]["entries"] if "_webSocketMessages" in entry}
    connections = tables["connections"]
    upgraded = {str(c) for c in connections.loc[connections["kind"] == "websocket", "conn_id"]}
    messages = tables["http_messages"]
    with_101 = {str(c) for c in messages.loc[(messages["status"] == 101).fillna(False), "conn_id"]}
    assert set(listed) == upgraded & with_101
    ws = tables["ws_messages"]
    for conn_id, items in listed.items():
        rows = ws[ws["conn_id"] == int(conn_id)].sort_values("message_id")
        assert [item["type"] for item in items] == [{"client": "send", "server": "receive"}[d] for d in rows["direction"]]
        assert [item["opcode"] for item in items] == list(rows["opcode"])
        assert [item["time"] for item in items] == list(rows["ts"])
        for item, row in zip(items, rows.to_dict("records")):
            if row["opcode"] == 2:
                assert base64.b64decode(item["data"]) == bytes.fromhex(row["payload_hex"])
            else:
                assert item["data"] == (nullable(row["payload_text"]) or "")


def check_with_haralyzer(path: Path, har: dict) -> None:
    """haralyzer reads the same entries (it sorts them by their start: ours are already), their
    requests, responses and extension fields, and sums `response._transferSize`."""
    entries = har["log"]["entries"]
    (page,) = HarParser.from_file(path).pages
    read = page.entries
    assert len(read) == len(entries)
    assert [(e.request.method, e.request.url, e.response.status) for e in read] == [
        (e["request"]["method"], e["request"]["url"], e["response"]["status"]) for e in entries]
    assert [(e.request.headersSize, e.request.bodySize, e.response.headersSize, e.response.bodySize) for e in read] == [
        (e["request"]["headersSize"], e["request"]["bodySize"], e["response"]["headersSize"], e["response"]["bodySize"]) for e in entries]
    assert [e.request.get_header_value("host") for e in read] == [
        next((h["value"] for h in e["request"]["headers"] if h["name"].lower() == "host"), None) for e in entries]
    assert [e.get("_webSocketMessages") for e in read] == [e.get("_webSocketMessages") for e in entries]
    transferred = sum(e["response"].get("_transferSize", 0) for e in entries)
    assert page.get_total_size_trans([e for e in read if "_transferSize" in e.response.raw_entry]) == pytest.approx(transferred)


def check_with_tshark(capture: Path, har: dict, **options) -> None:
    """Methods and statuses as tshark counts them (HTTP/1.1 and HTTP/2), Content-Length values as the
    bodySize of the HTTP/1.1 messages that have the header, and as many header lines."""
    entries = har["log"]["entries"]
    assert Counter(e["request"]["method"] for e in entries) == http_request_methods(capture, **options)
    statuses = http_response_codes(capture, **options)
    assert Counter(e["response"]["status"] for e in entries if e["response"]["status"]) == Counter(
        {code: n for code, n in statuses.items() if not 100 <= code < 200 or code == 101})
    http1 = [(e[side], side) for e in entries for side in ("request", "response") if e[side]["httpVersion"].startswith("HTTP/1")]
    seen = http1_headers(capture, **options)
    declared = [(message, int(h["value"])) for message, _side in http1 for h in message["headers"] if h["name"].lower() == "content-length"]
    assert Counter(length for _message, length in declared) == seen.content_lengths
    # The body of a message its Content-Length frames (not a HEAD's response, a 304's) is what it says.
    framed = [(e[side], side) for e in entries for side in ("request", "response")
              if side == "request" or (e["request"]["method"] != "HEAD" and e["response"]["status"] not in (204, 304))]
    assert all(message["bodySize"] == length for message, length in declared if any(message is m for m, _side in framed))
    assert sum(len(message["headers"]) for message, side in http1 if side == "request") == seen.request_lines
    assert sum(len(message["headers"]) for message, side in http1 if side == "response") == seen.response_lines


def check_all(capture: Path, folder: Path, tshark_options: dict | None) -> dict:
    path, tables = export_har(capture, folder)
    har = load_har(path)
    assert_valid_har(har)
    check_entries(har, tables)
    check_ws_messages(har, tables)
    check_with_haralyzer(path, har)
    if tshark_options is not None and tshark_available():
        check_with_tshark(capture, har, **tshark_options)
    return har


@pytest.mark.parametrize("capture", BUNDLED, ids=lambda path: path.name)
def test_har_of_bundled_capture(capture, tmp_path):
    har = check_all(capture, tmp_path, capture_options(capture).kwargs())
    entries = har["log"]["entries"]
    assert entries and all(e["response"]["status"] for e in entries)  # every exchange answered
    versions = {e["request"]["httpVersion"] for e in entries}
    if capture.name == "h2.pcap":
        assert versions == {"HTTP/1.1", "HTTP/2"}
        h2 = [e for e in entries if e["request"]["httpVersion"] == "HTTP/2"]
        assert all(e["request"]["headersSize"] < 50 for e in h2[1:])  # HPACK blocks, not header text
    if capture.name == "tls.pcap":
        assert {e["request"]["url"].split(":")[0] for e in entries} == {"https", "wss"}


# -- built from bytes ---------------------------------------------------------------------------

# Header bytes a peer may send: control characters, an escape sequence, bytes that are not UTF-8,
# a quote and a backslash, UTF-8 text, a folded line, a value over the cap.
EVIL_VALUE = b"\x01\x1b[31mred\x7f \xff\xfe\"}\\ \x00end"
HOSTILE_REQUEST = (b"GET /x?q=\xff%20y&k HTTP/1.1\r\nHost: ex\x00ample\r\nX-Evil: " + EVIL_VALUE + b"\r\nX-Utf8: caf\xc3\xa9\r\n"
                   b"X-Folded: one\r\n  two\r\nX-Long: " + b"L" * (MAX_HEADER_VALUE_CHARS + 100) + b"\r\n"
                   b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + conversations.WS_KEY.encode() + b"\r\n"
                   b"Sec-WebSocket-Version: 13\r\n\r\n")
HOSTILE_RESPONSE = (b"HTTP/1.1 101 Switching \xff\x1b\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "
                    + ws_accept(conversations.WS_KEY).encode() + b"\r\nSet-Cookie: s=\x01\xff; Path=/\r\nX-Evil: " + EVIL_VALUE + b"\r\n\r\n")
BINARY = bytes(range(256)) * 2


def hostile_turns() -> list[tuple[int, bytes]]:
    return [(0, HOSTILE_REQUEST), (1, HOSTILE_RESPONSE),
            (0, ws_frame(BINARY, opcode=2, masked=True)), (1, ws_frame("\u00e9\x00\x1b]0;title\x07".encode())),
            (1, ws_frame(b"\xff\xfe not utf-8"))]


def test_hostile_header_bytes_give_valid_json(tmp_path):
    """Control characters, bytes that are not UTF-8 and values past the cap: valid JSON (ASCII, escaped),
    valid HAR, and the values as sent (UTF-8 read as UTF-8, other bytes one character each)."""
    capture = tmp_path / "hostile.pcap"
    capture.write_bytes(conversations.capture_of(hostile_turns()))
    har = check_all(capture, tmp_path, None)
    (entry,) = har["log"]["entries"]
    request, response = entry["request"], entry["response"]
    headers = {h["name"]: h["value"] for h in request["headers"]}
    assert headers["X-Evil"] == EVIL_VALUE.decode("latin-1").strip()
    assert headers["X-Utf8"] == "caf\u00e9"
    assert headers["X-Folded"] == "one two"
    assert headers["X-Long"] == "L" * (MAX_HEADER_VALUE_CHARS - 1)  # the value's first characters, its leading space included
    assert request["url"] == "ws://ex%00ample/x?q=%C3%BF%20y&k"  # a URI: bytes percent-encoded
    assert request["queryString"] == [{"name": "q", "value": "\u00ff y"}, {"name": "k", "value": ""}]
    assert response["statusText"] == "Switching \u00ff\x1b"
    assert response["cookies"] == [{"name": "s", "value": "\x01\u00ff"}]
    messages = entry["_webSocketMessages"]
    assert [(m["type"], m["opcode"]) for m in messages] == [("send", 2), ("receive", 1), ("receive", 1)]
    assert base64.b64decode(messages[0]["data"]) == BINARY[:PREVIEW_TEXT_CHARS]
    assert messages[1]["data"] == "\u00e9\x00\x1b]0;title\x07"
    assert messages[2]["data"] == "\ufffd\ufffd not utf-8"


def test_hostile_targets_and_hosts_give_uris(tmp_path):
    """An absolute target that no URL parser takes, a Host that is no host: a string with its bytes
    percent-encoded, never a traceback."""
    capture = tmp_path / "targets.pcap"
    capture.write_bytes(conversations.capture_of([
        (0, b"GET http://[bad/\xff HTTP/1.1\r\nHost: [x\r\n\r\n"), (1, http_response(200, body=b"a")),
        (0, b"GET /p?%zz=1&&=&a=b=c HTTP/1.1\r\nHost: [x\r\n\r\n"), (1, http_response(200, body=b"b"))]))
    har = check_all(capture, tmp_path, None)
    first, second = (entry["request"] for entry in har["log"]["entries"])
    assert first["url"] == "http://%5Bbad/%C3%BF"
    assert (second["url"], second["queryString"]) == ("http://%5Bx/p?%25zz=1&&=&a=b=c", [{"name": "%zz", "value": "1"}, {"name": "", "value": ""},
                                                                                    {"name": "a", "value": "b=c"}])


@pytest.mark.parametrize("name", ["http_keepalive", "http_pipelined", "ws_session", "ws_deflate"])
def test_har_of_conversation(name, tmp_path):
    """Chunked and gzip bodies (content.compression), pipelining, WebSocket with deflate."""
    capture = tmp_path / f"{name}.pcap"
    capture.write_bytes(conversations.capture_of(getattr(conversations, name)()))
    har = check_all(capture, tmp_path, None)
    if name == "http_keepalive":
        contents = [e["response"]["content"] for e in har["log"]["entries"]]
        gzipped = [c for c in contents if "compression" in c]
        assert gzipped and all(c["compression"] > 0 and "text" not in c for c in gzipped)  # a preview of gzip bytes is no text
        assert any(c.get("text", "").startswith("hello world") for c in contents)  # the chunked body, unchunked


def test_an_exchange_without_response_is_status_0(tmp_path):
    capture = tmp_path / "unanswered.pcap"
    capture.write_bytes(conversations.capture_of([(0, http_request("POST", "/a", headers={"Host": "h", "Content-Type": "text/plain"},
                                                                   body=b"hi")), (1, http_response(200, body=b"ok")),
                                                  (0, http_request("GET", "/b", headers={"Host": "h"}))]))
    har = check_all(capture, tmp_path, None)
    first, second = har["log"]["entries"]
    assert first["request"]["postData"] == {"mimeType": "text/plain", "text": "hi", "params": []}
    assert (second["request"]["url"], second["response"]["status"], second["timings"]["wait"]) == ("http://h/b", 0, 0)


# -- pieces -------------------------------------------------------------------------------------

def test_header_lines_read_as_har_headers():
    assert header_fields("A: b\r\nC:d \r\n\te\r\nnocolon\r\n\r\n") == [{"name": "A", "value": "b"}, {"name": "C", "value": "d e"},
                                                                       {"name": "nocolon", "value": ""}]
    assert wire_text("caf\u00c3\u00a9") == "caf\u00e9" and wire_text("\u00ff") == "\u00ff"


def test_request_urls():
    assert request_url("http", "h:8", "1.2.3.4", 8, "GET", "/p?q") == "http://h:8/p?q"
    assert request_url("http", None, "::1", 8080, "GET", "/") == "http://[::1]:8080/"
    assert request_url("https", None, "10.0.0.1", 443, "GET", "/") == "https://10.0.0.1/"
    assert request_url("http", "h", "1.2.3.4", 80, "GET", "http://other/x y") == "http://other/x%20y"
    assert request_url("http", "h", "1.2.3.4", 80, "CONNECT", "dest:443") == "http://dest:443/"
    assert request_url("http", "h", "1.2.3.4", 80, "OPTIONS", "*") == "http://h/*"
    assert request_url("http", "[x", "1.2.3.4", 80, "GET", "HTTP://[y/\x00") == "HTTP://%5By/%00"  # hostile: still a URI
    assert request_url("http", "[::1]:81", "::1", 81, "GET", "/a[1]#f#g %41%4") == "http://[::1]:81/a%5B1%5D#f%23g%20%41%254"


def test_times_past_what_iso_8601_writes():
    assert iso_time(0) == "1970-01-01T00:00:00.000000Z"
    assert iso_time(1e15) == "9999-12-31T23:59:59.999999Z"


def test_har_file_names_are_safe_and_distinct():
    assert har_file_names(["captures/chat.pcap", "/x/chat.pcap.gz", "a/b\x1b[31m.pcapng", "/dev/stdin", "..pcap"]) == [
        "chat.har", "chat-2.har", "b__31m.har", "stdin.har", "capture.har"]


def test_ws_message_items():
    assert ws_message({"direction": "client", "ts": 1.5, "opcode": 2, "payload_text": "x", "payload_hex": "00ff"}) == {
        "type": "send", "time": 1.5, "opcode": 2, "data": "AP8="}
    assert ws_message({"direction": "server", "ts": 2.0, "opcode": 1, "payload_text": None, "payload_hex": None})["data"] == ""


# -- a fresh real capture -------------------------------------------------------------------------

SENT = ["hello", "x" * 300, bytes(range(256)) * 4, b"\x00\xff" * 10, "caf\u00e9 \u20ac"]


@pytest.mark.skipif(shutil.which("tcpdump") is None or os.geteuid() != 0, reason="needs tcpdump, as root")
def test_har_of_a_real_capture(tmp_path):
    """aiohttp REST requests (JSON, a 404, a HEAD) and a websockets connection sending text and binary
    messages it gets echoed, captured with tcpdump: the HAR's messages are the payloads' first bytes."""
    capture = tmp_path / "real.pcap"
    with servers(rest=True, ws=[{"compression": None}]) as (loop, rest, (ws_server,)):
        async def client() -> None:
            async with aiohttp.ClientSession(f"http://{HOST}:{rest.port}") as session:
                for method, url, body in (("GET", "/api/items", None), ("POST", "/api/echo", {"a": 1}), ("HEAD", "/api/items", None),
                                          ("GET", "/api/items/999", None)):
                    async with session.request(method, url, json=body) as reply:
                        await reply.read()
            async with ws_connect(f"ws://{HOST}:{ws_server.port}/", compression=None, ping_interval=None) as ws:
                for message in SENT:
                    await ws.send(message)
                    assert await ws.recv() == message

        with tcpdump_capture(capture, [rest.port, ws_server.port]):
            loop.run(client())
    har = check_all(capture, tmp_path, {"decode_as_ports": (rest.port, ws_server.port)})
    entries = har["log"]["entries"]
    assert [(e["request"]["method"], e["response"]["status"]) for e in entries] == [("GET", 200), ("POST", 200), ("HEAD", 200),
                                                                                    ("GET", 404), ("GET", 101)]
    messages = entries[-1]["_webSocketMessages"]
    data = [base64.b64decode(m["data"]) if m["opcode"] == 2 else m["data"] for m in messages]
    previews = [m[:PREVIEW_TEXT_CHARS] for m in SENT]
    assert data == [preview for preview in previews for _echo in (0, 1)]
    assert [m["type"] for m in messages] == ["send", "receive"] * len(SENT)
