"""HAR 1.2 (HTTP Archive) of a capture's HTTP exchanges, with the sizes measured on the wire.

One entry per HTTP exchange (HTTP/1.1 and HTTP/2), read from the analysis's tables with SQL
(any `source` with `batches(query, params, rows)`, as inspector.store.Store and the dashboard's
catalog have) and written as it is read: a capture's entries never are all in memory, nor a
WebSocket connection's messages.

Sizes are the analysis's, measured from the stream, never re-serialised: headersSize is the
message's header_bytes (HTTP/1.1: start line, header lines and the blank line; HTTP/2: the HPACK
header blocks as sent), bodySize its body_wire_bytes (HTTP/1.1: the body as sent, chunk framing
included; HTTP/2: its DATA frames whole), content.size the decoded body (decompressed_bytes, else
body_bytes), content.compression what the content coding saved.  Chrome's `response._transferSize` is the
exchange's wire bytes in message_costs (link to TCP and TLS included); a WebSocket upgrade's
exchange is part of its connection's setup there, so its entry's is the setup's (TCP handshake
included).  `_webSocketMessages` (Chrome's) lists the upgraded connection's data messages on its
101 entry.

Texts are previews: content.text and postData.text are the body's first PREVIEW_TEXT_CHARS
characters when the body is text and not content-encoded; a WebSocket message's data its first
PREVIEW_TEXT_CHARS characters (text) or bytes (binary, base64).  Header values are the stored
ones (cut to texts.MAX_HEADER_VALUE_CHARS); their bytes are read as UTF-8 when they are UTF-8,
else one character a byte (latin-1).  Everything is written with json.dumps (ASCII, control
characters escaped), so hostile text still makes valid JSON.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Protocol, TextIO
from urllib.parse import parse_qsl, quote

import pyarrow as pa

from inspector.analysis.export import write_files
from inspector.analysis.texts import PREVIEW_TEXT_CHARS

HAR_VERSION = "1.2"
# Rows fetched at a time: entries, and a WebSocket connection's messages.
BATCH_ROWS = 4096
# What a URL's authority, and its path and query, may hold as they are (RFC 3986 3.2, 3.3, 3.4,
# besides letters, digits and -._~; '%' only before two hex digits); anything else (spaces,
# control characters, non-ASCII) is percent-encoded, so a hostile target or Host header still
# gives a URI.
AUTHORITY_SAFE = "!$&'()*+,;=:@%"
PATH_SAFE = "!$&'()*+,;=:@%/?"
HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
IP_LITERAL_CHARACTERS = HEX_DIGITS | frozenset(":.")
DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
ABSOLUTE_FORMS = tuple(f"{scheme}://" for scheme in DEFAULT_PORTS)
# Codings that leave a body as it is: its preview is its text.
NO_CODING = ("", "identity")
TEXT_TYPES = ("text/", "application/json", "application/javascript", "application/xml", "application/x-www-form-urlencoded",
              "application/graphql", "+json", "+xml")
UNKNOWN_MIME = "x-unknown"  # Chrome's mimeType when there is no Content-Type
WS_TYPES = {"client": "send", "server": "receive"}
# Suffixes a capture's file name loses in its HAR's name (x.pcap.gz -> x.har).
CAPTURE_SUFFIXES = (".gz", ".pcapng", ".pcap", ".cap")


class Source(Protocol):
    def batches(self, query: str, params: list | None = None, rows: int = BATCH_ROWS) -> Iterator[pa.RecordBatch]: ...


# One row per exchange with a request: the request, its final response (the last one that is
# not interim, 1xx but 101), the exchange's wire bytes, and its connection's addresses.
ENTRIES_QUERY = """
WITH conns AS (SELECT conn_id, server_ip, server_port, kind, tls_version <> '' AS secure FROM connections WHERE capture = ?),
messages AS (SELECT * FROM http_messages WHERE conn_id IN (SELECT conn_id FROM conns)),
requests AS (SELECT * FROM messages WHERE direction = 'client'),
responses AS (SELECT * FROM messages WHERE direction = 'server'
              QUALIFY row_number() OVER (PARTITION BY conn_id, exchange_id
                                         ORDER BY coalesce(status BETWEEN 100 AND 199 AND status <> 101, false), "offset" DESC) = 1),
costs AS (SELECT conn_id, item_index AS exchange_id, sum(wire_bytes) AS wire_bytes FROM message_costs
          WHERE item = 'exchange' AND conn_id IN (SELECT conn_id FROM conns) GROUP BY ALL),
setups AS (SELECT conn_id, sum(wire_bytes) AS wire_bytes FROM message_costs
           WHERE item = 'setup' AND conn_id IN (SELECT conn_id FROM conns) GROUP BY ALL)
SELECT q.conn_id, q.exchange_id, c.server_ip, c.server_port, c.kind, c.secure,
       q.ts, q.end_ts, q.method, q.target, q.version, q.header_bytes, q.body_bytes, q.body_wire_bytes,
       q.content_encoding, q.decompressed_bytes, q.body_text, q.headers,
       r.ts AS response_ts, r.end_ts AS response_end_ts, r.status, r.reason, r.version AS response_version,
       r.header_bytes AS response_header_bytes, r.body_bytes AS response_body_bytes, r.body_wire_bytes AS response_body_wire_bytes,
       r.content_encoding AS response_content_encoding, r.decompressed_bytes AS response_decompressed_bytes,
       r.body_text AS response_body_text, r.headers AS response_headers,
       coalesce(k.wire_bytes, CASE WHEN r.status = 101 AND c.kind = 'websocket' THEN s.wire_bytes END) AS transfer_size
FROM requests q JOIN conns c USING (conn_id)
LEFT JOIN responses r USING (conn_id, exchange_id)
LEFT JOIN costs k USING (conn_id, exchange_id)
LEFT JOIN setups s USING (conn_id)
ORDER BY q.ts, q.conn_id, q.exchange_id
"""

WS_MESSAGES_QUERY = """
SELECT direction, ts, opcode, payload_text, payload_hex FROM ws_messages WHERE conn_id = ? ORDER BY message_id
"""


def write_hars(source: Source, captures: list[str], directory: Path, creator_version: str) -> list[Path]:
    """One HAR per capture, DIRECTORY/<file name without suffixes>.har (see har_file_names), all or
    nothing as the tables' export; return the files written."""
    names = har_file_names(captures)
    return write_files({name: partial(_write_har_file, source, capture, creator_version) for capture, name in zip(captures, names)},
                       directory)


def _write_har_file(source: Source, capture: str, creator_version: str, path: Path) -> None:
    with open(path, "w", encoding="ascii", newline="\n") as out:
        write_har(source, capture, out, creator_version)


def har_file_names(captures: list[str]) -> list[str]:
    """Each capture's HAR file name: its file name without CAPTURE_SUFFIXES, characters other than
    letters, digits, '.', '_' and '-' made '_' (names come from files: hostile), then `.har`; a name
    already taken gets -2, -3, ... (two folders' chat.pcap: chat.har, chat-2.har)."""
    names: list[str] = []
    for capture in captures:
        stem = capture.replace("\\", "/").rsplit("/", 1)[-1]
        while stem.lower().endswith(CAPTURE_SUFFIXES):
            stem = stem[:stem.rindex(".")]
        stem = re.sub(r"[^A-Za-z0-9._-]", "_", stem).lstrip(".") or "capture"
        name, number = f"{stem}.har", 1
        while name in names:
            number += 1
            name = f"{stem}-{number}.har"
        names.append(name)
    return names


def write_har(source: Source, capture: str, out: TextIO, creator_version: str) -> int:
    """The HAR of `capture` (its name in the tables' capture column) to `out`; return its entries."""
    out.write('{"log": {"version": "%s", "creator": %s, "entries": [' % (HAR_VERSION, _json({"name": "wire-inspector", "version": creator_version})))
    count = 0
    upgraded: set[int] = set()  # connections whose messages an entry has listed
    for batch in source.batches(ENTRIES_QUERY, [capture], BATCH_ROWS):
        for row in batch.to_pylist():
            out.write(",\n" if count else "\n")
            count += 1
            text = _json(har_entry(row))
            if row["status"] == 101 and row["kind"] == "websocket" and row["conn_id"] not in upgraded:
                upgraded.add(row["conn_id"])
                out.write(text[:-1] + ', "_webSocketMessages": [')
                _write_ws_messages(source, row["conn_id"], out)
                out.write("]}")
            else:
                out.write(text)
    out.write("\n]}}\n")
    return count


def _write_ws_messages(source: Source, conn_id: int, out: TextIO) -> None:
    separator = ""
    for batch in source.batches(WS_MESSAGES_QUERY, [conn_id], BATCH_ROWS):
        for message in batch.to_pylist():
            out.write(separator + _json(ws_message(message)))
            separator = ", "


def _json(value) -> str:
    # ASCII only: every control character and non-ASCII one escaped, whatever the traffic held.
    return json.dumps(value, ensure_ascii=True, allow_nan=False)


def ws_message(row: dict) -> dict:
    """A `_webSocketMessages` item: Chrome's type, time (epoch seconds), opcode and data (a preview)."""
    if row["opcode"] == 2:
        data = base64.b64encode(bytes.fromhex(row["payload_hex"] or "")).decode("ascii")
    else:
        data = row["payload_text"] or ""
    return {"type": WS_TYPES.get(row["direction"], row["direction"]), "time": row["ts"], "opcode": row["opcode"], "data": data}


def har_entry(row: dict) -> dict:
    """The HAR entry of one exchange (a row of ENTRIES_QUERY)."""
    request_headers = header_fields(row["headers"] or "")
    scheme = ("wss" if row["secure"] else "ws") if row["status"] == 101 and row["kind"] == "websocket" else ("https" if row["secure"] else "http")
    url = request_url(scheme, _header(request_headers, "host"), row["server_ip"], row["server_port"], row["method"] or "", row["target"] or "")
    timings = _timings(row)
    entry = {
        "startedDateTime": iso_time(row["ts"]),
        "time": round(timings["send"] + timings["wait"] + timings["receive"], 3),
        "request": {
            "method": row["method"] or "",
            "url": url,
            "httpVersion": row["version"] or "",
            "cookies": request_cookies(request_headers),
            "headers": request_headers,
            "queryString": [{"name": name, "value": value} for name, value in parse_qsl(url.partition("?")[2].partition("#")[0],
                                                                                          keep_blank_values=True)],
            "headersSize": row["header_bytes"],
            "bodySize": row["body_wire_bytes"],
        },
        "response": _response(row),
        "cache": {},
        "timings": timings,
        "serverIPAddress": row["server_ip"],
        "connection": str(row["conn_id"]),
    }
    if row["body_bytes"]:
        content_type = _header(request_headers, "content-type")
        post = {"mimeType": content_type or "", "text": _preview(content_type, row["content_encoding"], row["body_text"]) or "", "params": []}
        entry["request"]["postData"] = post
    if row["transfer_size"] is not None:  # where Chrome puts it (and readers such as haralyzer look)
        entry["response"]["_transferSize"] = _number(row["transfer_size"])
    return entry


def _response(row: dict) -> dict:
    if row["response_ts"] is None:
        return {"status": 0, "statusText": "", "httpVersion": "", "cookies": [], "headers": [], "content": {"size": 0, "mimeType": UNKNOWN_MIME},
                "redirectURL": "", "headersSize": -1, "bodySize": -1, "comment": "no response in the capture"}
    headers = header_fields(row["response_headers"] or "")
    content_type = _header(headers, "content-type")
    encoding = row["response_content_encoding"] or ""
    decoded = row["response_decompressed_bytes"]
    content = {"size": decoded if decoded is not None else row["response_body_bytes"], "mimeType": content_type or UNKNOWN_MIME}
    if encoding not in NO_CODING and decoded is not None:
        content["compression"] = decoded - row["response_body_wire_bytes"]
    text = _preview(content_type, encoding, row["response_body_text"]) if row["response_body_bytes"] else None
    if text is not None:
        content["text"] = text
        if len(text.encode()) < content["size"]:
            content["comment"] = f"text is a preview: the body's first {PREVIEW_TEXT_CHARS} characters"
    status = row["status"] if row["status"] is not None else 0
    return {
        "status": status,
        "statusText": row["reason"] or "",
        "httpVersion": row["response_version"] or "",
        "cookies": response_cookies(headers),
        "headers": headers,
        "content": content,
        "redirectURL": (_header(headers, "location") or "") if 300 <= status < 400 else "",
        "headersSize": row["response_header_bytes"],
        "bodySize": row["response_body_wire_bytes"],
    }


def _timings(row: dict) -> dict:
    """send: the request's first to last byte; wait: its last to the response's first; receive:
    the response's first to last (ms; never negative, as HAR requires: an HTTP/2 response may
    start before its request ends)."""
    send = _ms(row["end_ts"] - row["ts"])
    if row["response_ts"] is None:
        return {"blocked": -1, "dns": -1, "connect": -1, "ssl": -1, "send": send, "wait": 0, "receive": 0}
    wait = _ms(row["response_ts"] - row["end_ts"])
    receive = _ms(row["response_end_ts"] - row["response_ts"])
    return {"blocked": -1, "dns": -1, "connect": -1, "ssl": -1, "send": send, "wait": wait, "receive": receive}


def _ms(seconds: float) -> float:
    return max(round(seconds * 1000, 3), 0.0)


def _number(value: float) -> int | float:
    """A whole number as an integer (most are; an HTTP/2 exchange's share of shared packets need not be)."""
    return int(value) if float(value).is_integer() else value


def iso_time(ts: float) -> str:
    """ISO 8601 in UTC with microseconds: 2026-11-25T21:22:42.123456Z.  A capture's clock may say
    anything (a pcapng's 64-bit timestamps reach past year 9999): outside years 1 to 9999, the
    nearest time ISO 8601 can write."""
    try:
        moment = datetime.fromtimestamp(ts, tz=timezone.utc)
    except (OverflowError, ValueError, OSError):
        moment = (datetime.max if ts > 0 else datetime.min).replace(tzinfo=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def header_fields(lines: str) -> list[dict]:
    """HAR headers of a message's stored header lines (http_messages.headers), in order: a line's
    name before its first colon and its value after, spaces around both trimmed; a line that starts
    with a space or a tab continues the value before it (obs-fold, RFC 9112 5.2)."""
    fields: list[list[str]] = []
    for line in lines.split("\n"):
        line = line.removesuffix("\r")
        if not line:
            continue
        if line[0] in " \t" and fields:
            fields[-1][1] += " " + line.strip(" \t")
            continue
        name, _colon, value = line.partition(":")
        fields.append([name.strip(" \t"), value.strip(" \t")])
    return [{"name": wire_text(name), "value": wire_text(value)} for name, value in fields]


def wire_text(text: str) -> str:
    """Header text stored one character a byte (latin-1), read as UTF-8 when its bytes are UTF-8."""
    try:
        return text.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return text


def _header(fields: list[dict], name: str) -> str | None:
    for field in fields:
        if field["name"].lower() == name:
            return field["value"]
    return None


def request_url(scheme: str, host: str | None, server_ip: str, server_port: int, method: str, target: str) -> str:
    """The request's absolute URL: the target itself in absolute form, else the scheme, the Host
    header (the server's address and port without one) and the target; a URI (RFC 3986) whatever
    those hold (see `uri`)."""
    if target.lower().startswith(ABSOLUTE_FORMS):
        given_scheme, _, rest = target.partition("://")
        cut = min((rest.find(mark) for mark in "/?#" if mark in rest), default=len(rest))
        return uri(given_scheme, rest[:cut], rest[cut:])
    if method.upper() == "CONNECT":  # authority form: the target is the host and port
        return uri(scheme, target, "/")
    if not host:
        address = f"[{server_ip}]" if ":" in server_ip else server_ip
        host = address if DEFAULT_PORTS[scheme] == server_port else f"{address}:{server_port}"
    return uri(scheme, host, target if target.startswith("/") else "/" + target)


def uri(scheme: str, authority: str, rest: str) -> str:
    """scheme://authority + rest, percent-encoded where RFC 3986 does not allow a character: the
    brackets of an authority that is not an IP literal, brackets and a second '#' after it, a '%'
    that starts no escape, spaces, control characters and non-ASCII (as UTF-8)."""
    if not _ip_literal(authority):
        authority = quote(_lone_percents(authority), safe=AUTHORITY_SAFE)
    path, hash_mark, fragment = rest.partition("#")
    rest = quote(_lone_percents(path), safe=PATH_SAFE) + hash_mark + quote(_lone_percents(fragment), safe=PATH_SAFE)
    return f"{scheme}://{authority}{rest}"


def _ip_literal(authority: str) -> bool:
    """[IPv6 address] with an optional :port, as a URI's host may be one."""
    inside, bracket, port = authority[1:].partition("]")
    return (authority.startswith("[") and bool(bracket) and bool(inside) and all(c in IP_LITERAL_CHARACTERS for c in inside)
            and (not port or (port[0] == ":" and (port[1:].isdigit() or port == ":"))))


def _lone_percents(text: str) -> str:
    """`text` with every '%' that is not followed by two hex digits written %25."""
    first, *parts = text.split("%")
    return first + "".join(("%" if len(part) >= 2 and part[0] in HEX_DIGITS and part[1] in HEX_DIGITS else "%25") + part for part in parts)


def request_cookies(fields: list[dict]) -> list[dict]:
    """The Cookie headers' name=value pairs."""
    cookies = []
    for field in fields:
        if field["name"].lower() == "cookie":
            for pair in field["value"].split(";"):
                name, _equals, value = pair.strip().partition("=")
                if name:
                    cookies.append({"name": name, "value": value})
    return cookies


def response_cookies(fields: list[dict]) -> list[dict]:
    """Each Set-Cookie header's name=value (its attributes are in the header itself)."""
    cookies = []
    for field in fields:
        if field["name"].lower() == "set-cookie":
            name, _equals, value = field["value"].split(";", 1)[0].strip().partition("=")
            cookies.append({"name": name, "value": value})
    return cookies


def _preview(content_type: str | None, encoding: str, text: str | None) -> str | None:
    """The body's preview when it is text as sent: a textual type, no content coding."""
    if text is None or encoding not in NO_CODING or not content_type:
        return None
    mime = content_type.split(";", 1)[0].strip().lower()
    return text if any(mime.startswith(kind) if kind.endswith("/") else (mime == kind or mime.endswith(kind)) for kind in TEXT_TYPES) else None
