"""Verify tests/tshark_oracle.py against the corpus README (tshark 4.0 counts).

The README table in ../shared/corpus/README.md gives, per capture, tshark
4.0's WebSocket opcode counts and HTTP method / status counts (default
options).  Every row is checked against the oracle run with default options;
the per-file options in ``CORPUS_OPTIONS`` are checked separately, against
what the captures really contain.
"""

from __future__ import annotations

import collections
import re
import struct
from pathlib import Path

import pytest

from tests import tshark_oracle as oracle

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"

if not CORPUS.is_dir():
    pytest.skip("corpus folder ../shared/corpus not present", allow_module_level=True)
if not oracle.tshark_available():
    pytest.skip("tshark not installed", allow_module_level=True)

README = CORPUS / "README.md"
_OPCODES = {name: code for code, name in oracle.WS_OPCODE_NAMES.items()}
# The README's numbers are tshark 4.0's; other versions may legitimately differ.
_IS_TSHARK_40 = oracle.tshark_version()[:2] == (4, 0)
needs_tshark_40 = pytest.mark.skipif(
    not _IS_TSHARK_40,
    reason=f"README counts are tshark 4.0's; found tshark {oracle.tshark_version()}",
)


# --------------------------------------------------------------------------
# README table parsing
# --------------------------------------------------------------------------


class Row:
    def __init__(self, cells: list[str]):
        self.file = cells[0].strip().strip("`")
        self.packets = int(cells[4])
        self.ws_cell = cells[5].strip()
        self.http_cell = cells[6].strip()
        self.tcp_cell = cells[7].strip()
        self.notes = cells[8].strip()

    @property
    def path(self) -> Path:
        return CORPUS / self.file

    def ws_opcodes(self) -> collections.Counter:
        """'cont 4, bin 2, close 2; masked 3, ...' -> Counter({0: 4, 2: 2, 8: 2})."""
        out: collections.Counter = collections.Counter()
        if self.ws_cell == "-":
            return out
        for item in self.ws_cell.split(";")[0].split(","):
            name, n = item.split()
            out[_OPCODES[name]] += int(n)
        return out

    def ws_fin0(self) -> int:
        m = re.search(r"FIN=0 (\d+)", self.ws_cell)
        return int(m.group(1)) if m else 0

    def _http_part(self, prefix: str) -> collections.Counter:
        out: collections.Counter = collections.Counter()
        if self.http_cell == "-":
            return out
        for part in self.http_cell.split(";"):
            part = part.strip()
            if not part.startswith(prefix + " "):
                continue
            body = part[len(prefix) + 1:].strip()
            if body == "0":
                continue
            for item in body.split(","):
                key, n = item.split()
                out[int(key) if prefix == "resp" else key] += int(n)
        return out

    def http_methods(self) -> collections.Counter:
        return self._http_part("req")

    def http_codes(self) -> collections.Counter:
        return self._http_part("resp")

    def tcp_conns(self) -> int | None:
        m = re.search(r"(\d+) conn\b", self.tcp_cell)
        return int(m.group(1)) if m else None

    def __repr__(self) -> str:
        return self.file


def _readme_rows() -> list[Row]:
    rows = []
    for line in README.read_text(encoding="utf-8").splitlines():
        if not line.startswith("| `"):
            continue
        cells = line.strip().strip("|").split("|")
        if len(cells) > 9:  # a '|' inside the notes
            cells = cells[:8] + ["|".join(cells[8:])]
        assert len(cells) == 9, f"unexpected README row: {line[:80]}"
        rows.append(Row(cells))
    return rows


ROWS = _readme_rows()
ROW_IDS = [r.file for r in ROWS]


def test_readme_table_parses_and_lists_every_capture():
    assert ROWS, "no table rows found in README"
    on_disk = {p.name for p in CORPUS.iterdir() if p.suffix in (".pcap", ".pcapng")}
    assert {r.file for r in ROWS} == on_disk
    # parser sanity on two known rows
    by = {r.file: r for r in ROWS}
    r = by["zeek-websocket-fragmented-messages.pcap"]
    assert r.ws_opcodes() == {0: 4, 2: 2, 8: 2, 9: 1, 10: 1}
    assert r.ws_fin0() == 4
    r = by["enough-rest-plus-websocket-2conns.pcapng"]
    assert r.http_methods() == {"POST": 22, "GET": 7, "PUT": 16}
    assert r.http_codes() == {101: 2, 200: 16, 201: 10, 202: 11, 204: 6}
    assert by["suricata-http-get-linux-sll2.pcap"].http_codes() == {}


def test_tshark_version_shape():
    v = oracle.tshark_version()
    assert len(v) == 3 and all(isinstance(x, int) for x in v)


# --------------------------------------------------------------------------
# README counts (default tshark options)
# --------------------------------------------------------------------------


@needs_tshark_40
@pytest.mark.parametrize("row", ROWS, ids=ROW_IDS)
def test_http_counts_match_readme(row: Row):
    assert oracle.http_request_methods(row.path) == row.http_methods()
    assert oracle.http_response_codes(row.path) == row.http_codes()


@needs_tshark_40
@pytest.mark.parametrize("row", ROWS, ids=ROW_IDS)
def test_websocket_counts_match_readme(row: Row):
    frames = oracle.websocket_frames(row.path)
    assert oracle.websocket_opcode_counts(row.path) == row.ws_opcodes()
    assert sum(n for f, n in frames.items() if not f.fin) == row.ws_fin0()


@needs_tshark_40
@pytest.mark.parametrize("row", ROWS, ids=ROW_IDS)
def test_packets_and_connections_match_readme(row: Row):
    assert oracle.frame_count(row.path) == row.packets
    if row.tcp_conns() is not None:
        assert oracle.tcp_connections(row.path) == row.tcp_conns()


# --------------------------------------------------------------------------
# Frame bytes: cross-check against an independent reading of the file
# --------------------------------------------------------------------------


def _orig_lens(path: Path) -> list[int]:
    """Record original lengths read straight from a pcap / pcapng file."""
    data = path.read_bytes()
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1",
                 b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        bo = "<" if magic[0] in (0xD4, 0x4D) else ">"
        off, out = 24, []
        while off + 16 <= len(data):
            _, _, incl, orig = struct.unpack_from(bo + "IIII", data, off)
            out.append(orig)
            off += 16 + incl
        return out
    assert magic == b"\x0a\x0d\x0d\x0a", f"unknown capture format {path}"
    bo = "<" if data[8:12] == b"\x4d\x3c\x2b\x1a" else ">"
    off, out = 0, []
    while off + 12 <= len(data):
        btype, blen = struct.unpack_from(bo + "II", data, off)
        if btype == 6:  # Enhanced Packet Block
            out.append(struct.unpack_from(bo + "I", data, off + 24)[0])
        elif btype == 3:  # Simple Packet Block
            out.append(struct.unpack_from(bo + "I", data, off + 8)[0])
        off += blen
    return out


@pytest.mark.parametrize("row", ROWS, ids=ROW_IDS)
def test_total_frame_bytes_is_sum_of_orig_len(row: Row):
    lens = _orig_lens(row.path)
    assert oracle.frame_count(row.path) == len(lens)
    assert oracle.total_frame_bytes(row.path) == sum(lens)
    streams = oracle.tcp_frame_bytes_by_stream(row.path)
    assert sum(s.bytes for s in streams.values()) <= sum(lens)
    assert sum(oracle.tcp_frame_bytes_by_endpoints(row.path).values()) == \
        sum(s.bytes for s in streams.values())


def test_tcp_bytes_by_stream_single_connection():
    p = CORPUS / "zeek-websocket-jupyter-binary-len16.pcap"
    assert oracle.tcp_frame_bytes_by_stream(p) == {
        0: oracle.TcpStreamBytes((("127.0.0.1", 40492), ("127.0.0.1", 51185)),
                                 oracle.total_frame_bytes(p), 20)}


# --------------------------------------------------------------------------
# WebSocket details
# --------------------------------------------------------------------------


def test_websocket_len64_is_real_length():
    p = CORPUS / "zeek-websocket-oversized-close-len64.pcapng"
    assert oracle.websocket_frames(p) == {
        oracle.WsFrame("10.0.0.2", 80, 8, True, 258): 1}


def test_websocket_nine_frames_in_one_segment_stay_aligned():
    p = CORPUS / "zeek-websocket-jupyter-binary-len16.pcap"
    server = [(f.payload_length, n) for f, n in oracle.websocket_frames(p).items()
              if f.src_port == 51185 and f.opcode == 2]
    lengths = sorted(length for length, n in server for _ in range(n))
    # 1 + 9 (one segment) + 1 server Binary frames, all with 16-bit lengths
    assert lengths == sorted([539, 527, 1647, 540, 540, 515, 515, 540, 540, 540, 540])


def test_websocket_by_direction_fragmented():
    p = CORPUS / "zeek-websocket-fragmented-messages.pcap"
    got = oracle.websocket_frames_by_direction(p, {("127.0.0.1", 41600)})
    assert got == collections.Counter({
        ("server", 9, True, 4): 1, ("client", 10, True, 4): 1,
        ("client", 2, True, 35): 1,
        # Binary(FIN=0) + 4 Continuation frames in one segment
        ("server", 2, False, 1): 1, ("server", 0, False, 7): 1,
        ("server", 0, False, 9): 1, ("server", 0, False, 18): 1,
        ("server", 0, True, 21): 1,
        ("client", 8, True, 2): 1, ("server", 8, True, 2): 1,
    })


# --------------------------------------------------------------------------
# Per-file options (CORPUS_OPTIONS): what the captures really contain
# --------------------------------------------------------------------------


def test_corpus_options_only_name_existing_files():
    assert set(oracle.CORPUS_OPTIONS) <= set(ROW_IDS)


def _kw(name: str) -> dict:
    return oracle.corpus_options(CORPUS / name).kwargs()


def test_midstream_websocket_needs_forced_decode():
    name = "ndpi-websocket-midstream-no-handshake.pcap"
    assert oracle.websocket_frames(CORPUS / name) == {}
    W = oracle.WsFrame
    assert oracle.websocket_frames(CORPUS / name, **_kw(name)) == collections.Counter({
        W("192.168.43.1", 50999, 1, True, 12): 1, W("192.168.43.1", 50999, 1, True, 15): 1,
        W("192.168.43.135", 12345, 1, True, 23): 1, W("192.168.43.135", 12345, 1, True, 50): 1,
        W("192.168.43.135", 12345, 1, True, 53): 1,
    })


def test_rest_ws_upload_hidden_close_frames():
    name = "enough-rest-ws-2mb-multipart-upload.pcapng"
    p = CORPUS / name
    # 8 Text on the handshaked connection, 3 Text + Ping + Pong on the
    # mid-stream one (55237), Close both ways on the tail (54322).
    assert oracle.websocket_opcode_counts(p, **_kw(name)) == {1: 11, 8: 2, 9: 1, 10: 1}
    closes = {f: n for f, n in oracle.websocket_frames(p, **_kw(name)).items() if f.opcode == 8}
    assert closes == {oracle.WsFrame("194.145.124.68", 8089, 8, True, 30): 1,
                      oracle.WsFrame("192.168.2.78", 54322, 8, True, 2): 1}
    # forcing only the port, without out-of-order reassembly, misses the
    # server Close (recorded after the FIN, flagged out-of-order)
    assert oracle.websocket_opcode_counts(p, decode_as_websocket_ports=(54322,)) == {1: 8, 8: 1}
    # HTTP is unaffected by these options
    assert oracle.http_request_methods(p, **_kw(name)) == oracle.http_request_methods(p)
    assert oracle.http_response_codes(p, **_kw(name)) == oracle.http_response_codes(p)


def test_arkime_retransmissions_double_counted_by_default():
    name = "arkime-http-post-chunked-retransmissions.pcap"
    p = CORPUS / name
    assert oracle.http_response_codes(p) == {200: 6}          # README / default
    assert oracle.http_response_codes(p, **_kw(name)) == {200: 4}  # truth
    assert oracle.http_request_methods(p, **_kw(name)) == {"POST": 4}
    pairs = oracle.http_pairs(p)
    # the two extra "responses" are retransmissions with no request
    assert [(x.request_frame, x.response_frame) for x in pairs
            if x.request_frame is None] == [(None, 42), (None, 86)]
    assert [(x.request_frame, x.response_frame, x.status)
            for x in oracle.http_pairs(p, **_kw(name))] == [
        (21, 25, 200), (39, 41, 200), (61, 65, 200), (80, 85, 200)]


def test_incomplete_body_response_visible_without_body_desegmentation():
    name = "suricata-http-ooo-lost-segments-bad-origlen.pcap"
    p = CORPUS / name
    assert oracle.http_response_codes(p) == {}
    assert oracle.http_response_codes(p, **_kw(name)) == {200: 1}
    assert oracle.http_response_codes(p, reassemble_out_of_order=True) == {}


@pytest.mark.parametrize("name,default,with_ooo", [
    ("zeek-http-keepalive-1000req-ipv6-dropped-resp.pcap",
     ({"GET": 1000}, {200: 999}), ({"GET": 1000}, {})),
    ("zeek-http-keepalive-with-drops.pcap",
     ({"GET": 7}, {200: 6, 302: 2}), ({"GET": 3}, {200: 1, 302: 2})),
])
def test_out_of_order_reassembly_hurts_lossy_captures(name, default, with_ooo):
    """Why CORPUS_OPTIONS does not enable out-of-order reassembly globally."""
    p = CORPUS / name
    assert name not in oracle.CORPUS_OPTIONS
    assert (oracle.http_request_methods(p), oracle.http_response_codes(p)) == default
    assert (oracle.http_request_methods(p, reassemble_out_of_order=True),
            oracle.http_response_codes(p, reassemble_out_of_order=True)) == with_ooo


# --------------------------------------------------------------------------
# tshark's pairing of pipelined HTTP (documented in oracle.http_pairs)
# --------------------------------------------------------------------------


@needs_tshark_40
def test_http_pairs_pipelined_two_requests_one_segment():
    P = oracle.HttpPair
    assert oracle.http_pairs(CORPUS / "suricata-http-pipelined-2req-1segment.pcap") == [
        P(4, 6, "GET", "/bar/", 200),
        P(4, 6, "GET", "/foo/", 200),   # truth: /foo/ -> frame 8
        P(None, 8, None, None, 200),    # second response unpaired
    ]


@needs_tshark_40
def test_http_pairs_pipelined_forty_requests():
    pairs = oracle.http_pairs(CORPUS / "suricata-http-pipelined-40req-retrans.pcap")
    reqs = [x for x in pairs if x.request_frame is not None]
    orphans = [x for x in pairs if x.request_frame is None]
    assert len(reqs) == 40 and len(orphans) == 37
    assert collections.Counter((x.request_frame, x.response_frame, x.status) for x in reqs) == {
        (4, 6, 404): 7, (8, 9, 404): 9, (11, None, None): 8,
        (12, None, None): 8, (13, 15, 404): 8}
    assert collections.Counter(x.response_frame for x in orphans) == {
        7: 4, 9: 4, 10: 5, 15: 4, 16: 5, 17: 5, 18: 5, 19: 5}
    # counts are still right: every message is seen exactly once
    p = CORPUS / "suricata-http-pipelined-40req-retrans.pcap"
    assert oracle.http_request_methods(p) == {"GET": 40}
    assert oracle.http_response_codes(p) == {404: 40}
