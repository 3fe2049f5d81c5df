"""Per-message attribution of link/IP/TCP bytes, on a capture built packet by packet."""

from __future__ import annotations

from array import array

import pandas as pd
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from inspector.analysis.overhead import Spans, _Segments, _spread, _spread_arrays
from inspector.analysis.pipeline import analyze_captures
from tests.conversations import ws_upgrade
from tests.factories import http_request, http_response, pcap_file, ws_frame
from tests.hostile import FIRST_TS_NS, Flow

CLIENT, SERVER = ("10.0.0.1", 40000), ("10.0.0.2", 8080)
C_ISN, S_ISN = 1000, 5000


def frame(sender, seq, ack, flags, payload=b""):
    src, dst = (CLIENT, SERVER) if sender == "c" else (SERVER, CLIENT)
    return bytes(Ether() / IP(src=src[0], dst=dst[0]) / TCP(sport=src[1], dport=dst[1], seq=seq, ack=ack, flags=flags) / payload)


@pytest.fixture(scope="module")
def conversation(tmp_path_factory):
    req1 = http_request("GET", "/one")
    req2, req3 = http_request("GET", "/two"), http_request("POST", "/three", body=b"x" * 40)
    resp1 = http_response(200, body=b"a" * 100)
    resp2, resp3 = http_response(200, body=b"b" * 10), http_response(201, "Created", body=b"c" * 300)
    c, s = C_ISN + 1, S_ISN + 1
    frames = [
        frame("c", C_ISN, 0, "S"),
        frame("s", S_ISN, c, "SA"),
        frame("c", c, s, "A"),
        frame("c", c, s, "PA", req1),
        frame("s", s, c + len(req1), "A"),
        frame("s", s, c + len(req1), "PA", resp1),
        frame("c", c + len(req1), s + len(resp1), "PA", req2 + req3),
        frame("s", s + len(resp1), c + len(req1 + req2 + req3), "PA", resp2 + resp3),
        frame("c", c + len(req1 + req2 + req3), s + len(resp1 + resp2 + resp3), "A"),
        frame("c", c + len(req1 + req2 + req3), s + len(resp1 + resp2 + resp3), "FA"),
        frame("s", s + len(resp1 + resp2 + resp3), c + len(req1 + req2 + req3) + 1, "FA"),
        frame("c", c + len(req1 + req2 + req3) + 1, s + len(resp1 + resp2 + resp3) + 1, "A"),
    ]
    path = tmp_path_factory.mktemp("overhead") / "conversation.pcap"
    path.write_bytes(pcap_file([(1_700_000_000_000_000_000 + i * 1_000_000, f) for i, f in enumerate(frames)]))
    sizes = [len(f) for f in frames]
    messages = {"req": [req1, req2, req3], "resp": [resp1, resp2, resp3]}
    return analyze_captures([path]), sizes, messages


def costs(analysis):
    return analysis["message_costs"].set_index(["item", "item_index"])["wire_bytes"]


def test_setup_and_teardown_are_the_control_packets(conversation):
    analysis, sizes, _ = conversation
    wire = costs(analysis)
    assert wire[("setup", -1)] == sum(sizes[0:3])
    assert wire[("teardown", -1)] == sum(sizes[9:12])


def test_single_exchange_owns_its_packets_and_the_ack(conversation):
    analysis, sizes, _ = conversation
    assert costs(analysis)[("exchange", 0)] == sum(sizes[3:6])


def test_shared_packets_split_in_proportion(conversation):
    analysis, sizes, messages = conversation
    req2, req3 = (len(m) for m in messages["req"][1:])
    resp2, resp3 = (len(m) for m in messages["resp"][1:])
    headers7, headers8 = sizes[6] - req2 - req3, sizes[7] - resp2 - resp3
    expected2 = req2 + headers7 * req2 / (req2 + req3) + resp2 + headers8 * resp2 / (resp2 + resp3)
    expected3 = req3 + headers7 * req3 / (req2 + req3) + resp3 + headers8 * resp3 / (resp2 + resp3) + sizes[8]
    wire = costs(analysis)
    assert wire[("exchange", 1)] == pytest.approx(expected2)
    assert wire[("exchange", 2)] == pytest.approx(expected3)


def test_rows_add_up_and_app_bytes_match_messages(conversation):
    analysis, sizes, messages = conversation
    table = analysis["message_costs"]
    assert table["wire_bytes"].sum() == pytest.approx(sum(sizes))
    exchanges = table[table["item"] == "exchange"].sort_values("item_index")
    app = exchanges["app_header_bytes"] + exchanges["wire_payload_bytes"]
    assert app.tolist() == [len(q) + len(r) for q, r in zip(messages["req"], messages["resp"])]
    assert exchanges["wire_payload_bytes"].tolist() == [100, 10, 40 + 300]
    assert exchanges["app_payload_bytes"].tolist() == [100, 10, 40 + 300]  # nothing content-encoded
    connection = analysis["connections"].iloc[0]
    assert connection["tcp_control_bytes"] == sum(sizes[i] for i in (0, 1, 2, 4, 8, 9, 10, 11))
    assert connection["link_header_bytes"] == 14 * 4 and connection["ip_header_bytes"] == 20 * 4 and connection["tcp_header_bytes"] == 20 * 4


def test_payload_messages_count_requests_and_responses_with_a_body(conversation):
    # GET /one -> 100 B, GET /two -> 10 B, POST /three (40 B) -> 300 B: 1 + 1 + 2 with a body
    conversation = conversation[0]
    exchanges = conversation["message_costs"].query("item == 'exchange'").sort_values("item_index")
    assert list(exchanges["payload_messages"]) == [1, 1, 2]
    assert conversation["message_costs"].query("item != 'exchange'")["payload_messages"].eq(0).all()
    overhead = conversation["overhead"].iloc[0]
    assert (overhead["messages"], overhead["payload_messages"]) == (3, 4)
    assert overhead["wire_bytes_per_payload_message"] == overhead["wire_bytes"] / 4


def test_payload_messages_on_recorded_traffic_follow_the_message_tables():
    from tests.conftest import bundled_files

    tables = analyze_captures(bundled_files()).tables
    costs, http, ws = tables["message_costs"], tables["http_messages"], tables["ws_messages"]
    # An event stream's body is its events' (sse_event items), not its exchange's.
    streams = tables["sse_events"][["conn_id", "exchange_id"]].drop_duplicates()
    http = http.merge(streams, how="left", indicator=True).query("_merge == 'left_only'")
    assert len(streams) and len(http) < len(tables["http_messages"])
    with_body = http[http["body_bytes"] > 0].groupby(["conn_id", "exchange_id"]).size()
    for row in costs[costs["item"] == "exchange"].itertuples():
        assert row.payload_messages == with_body.get((row.conn_id, row.item_index), 0), row
    carrying = ws.set_index(["conn_id", "message_id"])["payload_bytes"] > 0
    for row in costs[costs["item"] == "ws_message"].itertuples():
        assert row.payload_messages == int(carrying[(row.conn_id, row.item_index)]), row
    assert (costs["payload_messages"] > 0).any() and (costs.query("item == 'exchange'")["payload_messages"] == 0).any()  # feed's empty polls
    events = costs[costs["item"] == "sse_event"]
    assert len(events) and (events["payload_messages"] == 1).all()  # each event carries its data


# Packets of a side: offset, length, overhead bytes; retransmitted, overlapping,
# reordered and empty ones included.
_packets = st.lists(st.tuples(st.integers(0, 400), st.integers(0, 120), st.integers(0, 200)), max_size=40)
# A side's spans: gaps, ranges of no bytes, overlaps and ranges out of order included.
_spans = st.lists(st.tuples(st.integers(0, 500), st.integers(0, 80), st.integers(0, 7)), max_size=12)


def _spread_both_ways(packets0, packets1, spans0, spans1) -> None:
    """_spread_arrays gives exactly (bit for bit) the floats _spread gives."""
    segments = []
    for side_spans in (spans0, spans1):
        spans = Spans()
        for start, length, item in side_spans:
            spans.add(start, start + length, item)
        segments.append(_Segments(spans))
    item_count = 8
    expected = array("d", [0.0]) * item_count
    records = array("q")
    for side, packets in enumerate((packets0, packets1)):
        if packets:
            _spread(expected, segments[side], [(offset, offset + length, weight) for offset, length, weight in packets])
        for packet in packets:
            records.extend((side, *packet))
    assume(records)
    assert _spread_arrays(records, tuple(segments), item_count).tobytes() == expected.tobytes()


@given(_packets, _packets, _spans, _spans)
def test_packets_spread_with_arrays_add_the_same_floats(packets0, packets1, spans0, spans1):
    """The numpy spreading of a big connection's packets gives exactly the floats plain
    Python gives: the same pieces, added in the same order."""
    _spread_both_ways(packets0, packets1, spans0, spans1)


@given(st.lists(st.integers(1, 90), min_size=1, max_size=40), st.lists(st.integers(0, 7), max_size=40),
       st.lists(st.integers(0, 3000), max_size=5))
def test_in_order_packets_spread_with_arrays_add_the_same_floats(lengths, items, cuts):
    """The same for the common case, packets one after the other, spans mostly ending
    where a packet ends (then every packet lies in one span), sometimes within one."""
    packets, offset = [], 0
    for index, length in enumerate(lengths):
        packets.append((offset, length, 40 + index))
        offset += length
    ends = sorted({offset for offset, _length, _weight in packets[1:len(items) + 1]} | {offset} | {cut for cut in cuts if cut < offset})
    spans = [(start, end - start, item) for start, end, item in zip([0] + ends, ends, items + [7] * len(ends))]
    _spread_both_ways(packets, packets[::2], spans, spans[1:])


def _websocket_with_retransmission(tmp_path, sizes: list[int], first: int, late: bool):
    """A WebSocket connection whose server sends 40 times three messages of `sizes` (cycled)
    in MSS segments, each batch ACKed; the second segment of batch `first` is sent again,
    right after the original or after 30 more batches (long after it was acknowledged), with
    the time of the packet before it (the other packets' times do not change)."""
    flow = Flow()
    upgrade = ws_upgrade()
    frames = flow.handshake() + flow.exchange(upgrade[0][1], upgrade[1][1])
    retransmitted = None
    for batch in range(40):
        data = b"".join(ws_frame(bytes([97 + (batch + j) % 26]) * sizes[(batch + j) % len(sizes)]) for j in range(3))
        segments = flow.send(1, data)
        frames += segments
        if batch == first:
            retransmitted = bytes(bytearray(segments[1]))  # a copy: told apart from the original by identity
            if not late:
                frames.append(retransmitted)
        frames.append(flow.frame(0, "A"))
        if late and batch == 30:
            frames.append(retransmitted)
    frames += flow.close()
    stamped, ts = [], FIRST_TS_NS
    for frame in frames:
        ts += 0 if frame is retransmitted and stamped else 10_000
        stamped.append((ts, frame))
    path = tmp_path / f"{'late' if late else 'at-once'}.pcap"
    path.write_bytes(pcap_file(stamped))
    return analyze_captures([path])["message_costs"]


@pytest.mark.parametrize(("sizes", "first"), [([554, 2949, 367, 2730], 0), ([2149, 1762, 1139, 2724], 2), ([1250, 784, 465, 2480], 2)])
def test_a_late_retransmission_is_attributed_as_if_it_came_at_once(tmp_path, sizes, first):
    """Attribution does not depend on when a packet came: a retransmission of bytes acknowledged
    long ago adds its bytes at its place among the packets sorted by stream offset, so every
    float is the one it would be had it come right after the original.  (This is why a
    connection's packet records are kept until its end: with these layouts, a message whose
    share had been summed before the late packet came and then got the packet's bytes added
    would differ in the last bit, e.g. 1622.8721493169567 instead of 1622.872149316957.)"""
    late = _websocket_with_retransmission(tmp_path, sizes, first, late=True)
    at_once = _websocket_with_retransmission(tmp_path, sizes, first, late=False)
    pd.testing.assert_frame_equal(late, at_once, check_exact=True)
    assert (late["transport_bytes"] % 1 != 0).any()  # shares split between messages: not whole bytes
