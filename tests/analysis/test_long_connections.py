"""A long connection's packet records, stream spans and items go to disk as it grows
(inspector/analysis/long_connections.py) and its header bytes are attributed from there: the
tables are exactly those of the attribution in memory, floats too.

The threshold is forced to nothing here (every connection is a long one), connections are looked
at every 16 packets and read back 3 records at a time, rows made into chunks one by one, so
that every capture of the reference
(the bundled ones, the corpus, and the generated conversations with retransmitted and swapped
segments) goes through many spills and chunks: records out of order, spans kept for a range
that may grow, items kept for open exchanges and renumbered, ws_frames rows whose message_id is
set after their chunk was made.
"""

from __future__ import annotations

import types
from array import array
from pathlib import Path

import numpy as np
import pandas.testing as pdt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inspector.analysis import long_connections, pipeline, rows
from inspector.analysis.accounting import CONTROL_ACK, CONTROL_FIN, CONTROL_RST, CONTROL_SYN
from inspector.analysis.long_connections import SortedRecords, SpilledConnection
from inspector.analysis.overhead import ITEM_UNATTRIBUTED, Spans, _Segments, _segment_chunks, attribute_packets, attribute_spilled
from inspector.analysis.pipeline import analyze_captures
from inspector.analysis.tables import TABLE_NAMES
from inspector.parse.connection import ParserOptions
from inspector.store import open_store, store_inputs
from inspector.store.build import analyze_into_store
from inspector.analysis.tables import BYTE_CATEGORIES
from tests import long_connection, tshark_oracle
from tests import reference_tables as ref
from tests.analysis.test_reference_tables import REFERENCES, check
from tests.conftest import bundled_files


@pytest.fixture
def every_connection_long(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Force the long-connection path on every connection; return a list that counts the
    connections that went to disk."""
    monkeypatch.setattr(long_connections, "LONG_CONNECTION_RECORDS", 0)
    monkeypatch.setattr(long_connections, "READ_RECORDS", 3)
    monkeypatch.setattr(pipeline, "SWEEP_EVERY_PACKETS", 16)
    monkeypatch.setattr(pipeline, "LONG_CHECK_SWEEPS", 1)
    monkeypatch.setattr(rows, "CHUNK_ROWS", 1)  # a chunk a row, made after every event: frames left before their message
    monkeypatch.setattr(rows, "CHECK_FULL_EVENTS", 1)
    spilled: list[int] = []
    made = SpilledConnection.__init__

    def counted(self, *args, **kwargs):
        spilled.append(1)
        made(self, *args, **kwargs)

    monkeypatch.setattr(SpilledConnection, "__init__", counted)
    return spilled


@pytest.mark.parametrize("reference", [pytest.param(r, id=r.id) for r in REFERENCES])
def test_every_connection_attributed_from_disk_gives_the_reference_tables(reference: ref.Reference, tmp_path: Path,
                                                                         every_connection_long: list[int]):
    check(reference, tmp_path)


def test_the_bundled_captures_went_to_disk_connection_by_connection(tmp_path: Path, every_connection_long: list[int]):
    tables = analyze_captures([str(path) for path in bundled_files()]).tables
    assert len(every_connection_long) == len(tables["connections"])


def test_streamed_into_a_store_with_every_connection_long_are_the_in_memory_tables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                                  every_connection_long: list[int]):
    paths = [str(path) for path in bundled_files()]
    monkeypatch.setattr(long_connections, "LONG_CONNECTION_RECORDS", 1 << 62)
    expected = analyze_captures(paths, jobs=2)
    assert not every_connection_long
    monkeypatch.setattr(long_connections, "LONG_CONNECTION_RECORDS", 0)
    monkeypatch.setattr(pipeline, "SPILL_ROWS", 1)
    store, _warnings = analyze_into_store(paths, tmp_path / "store", store_inputs(paths, ParserOptions()), jobs=2)
    with open_store(store) as opened:
        for name in TABLE_NAMES:
            pdt.assert_frame_equal(opened.table(name), expected.tables[name], check_exact=True, obj=name)
    assert sorted(path.name for path in store.iterdir()) == sorted([*TABLE_NAMES, "store.json"])  # no spilled file left


def test_a_long_websocket_connection_gone_to_disk_as_it_went_gives_the_tables_held_in_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # chat.pcap's WebSocket connection made 3,000 messages long: past 1,000 records, looked at
    # every 256 packets, so it goes to disk several times on its way, as a long one does.
    path = tmp_path / "long-ws.pcap"
    made = long_connection.build(path, 3000)
    expected = analyze_captures([path]).tables  # below the threshold: in memory
    monkeypatch.setattr(long_connections, "LONG_CONNECTION_RECORDS", 1000)
    monkeypatch.setattr(pipeline, "SWEEP_EVERY_PACKETS", 256)
    monkeypatch.setattr(pipeline, "LONG_CHECK_SWEEPS", 1)
    took = []
    take = SpilledConnection.take_records
    monkeypatch.setattr(SpilledConnection, "take_records", lambda self, account: (took.append(1), take(self, account)))
    tables = analyze_captures([path]).tables
    assert len(took) > 2  # several times on its way, and at its end
    for name in TABLE_NAMES:
        pdt.assert_frame_equal(tables[name], expected[name], check_exact=True, obj=name)
    connection = tables["connections"].iloc[0]
    assert len(tables["connections"]) == 1 and connection["ws_messages"] == made["messages"] == 3000
    assert connection[list(BYTE_CATEGORIES)].sum() == connection["wire_bytes"]
    assert tables["message_costs"]["wire_bytes"].sum() == pytest.approx(connection["wire_bytes"], rel=1e-12)
    if not tshark_oracle.tshark_available():
        pytest.skip("tshark not installed")
    assert connection["wire_bytes"] == tshark_oracle.total_frame_bytes(path)
    assert len(tables["ws_frames"]) == sum(tshark_oracle.websocket_frames(path, decode_as_ports=(long_connection.server_port(),)).values())


# -- the parts ---------------------------------------------------------------------

records = st.lists(st.tuples(st.integers(-5, 60), st.integers(0, 9), st.integers(0, 3)), max_size=80)


@settings(max_examples=300, deadline=None)
@given(records, st.integers(1, 7), st.integers(1, 9), st.booleans())
def test_sorted_records_come_back_sorted_whatever_their_order_and_chunks(given_records, read, batch, keep_order):
    long_connections.READ_RECORDS, saved = read, long_connections.READ_RECORDS
    try:
        sorted_records = SortedRecords(3, None, keep_order)
        added = np.array(given_records, np.int64).reshape(-1, 3)
        for start in range(0, len(added), batch):
            sorted_records.add(added[start:start + batch])
        back = list(sorted_records.chunks())
        sorted_records.close()
    finally:
        long_connections.READ_RECORDS = saved
    got = np.concatenate(back).tolist() if back else []
    keys = [key for key, *_rest in given_records]
    if keep_order and keys == sorted(keys):
        assert got == list(map(list, given_records))  # as they came, ties too
    else:
        assert got == sorted(map(list, given_records))


spans = st.lists(st.tuples(st.integers(-3, 50), st.integers(0, 12), st.integers(0, 9)), max_size=40)


@settings(max_examples=200, deadline=None)
@given(spans, st.integers(1, 5))
def test_segments_made_a_chunk_at_a_time_are_those_of_the_whole_spans(given_spans, read):
    side = Spans()
    for start, length, item in given_spans:
        side.add(start, start + length, item)
    whole = _Segments(side)
    ranges = np.array(list(side.in_order()), np.int64).reshape(-1, 3)
    made = list(_segment_chunks(iter([ranges[start:start + read] for start in range(0, len(ranges), read)])))
    starts = np.concatenate([chunk[0] for chunk in made])
    owners = np.concatenate([chunk[1] for chunk in made])
    assert owners[-1] == ITEM_UNATTRIBUTED
    for point in range(-3, 70):  # the same owner everywhere (a segment of no bytes owns nothing)
        at = max(int(np.searchsorted(starts, point, "right")) - 1, 0)
        assert owners[at] == whole.owner_at(max(point, 0)), point


packets = st.lists(st.tuples(st.integers(0, 1), st.integers(0, 60), st.integers(1, 20), st.integers(0, 90)), max_size=60)
controls = st.lists(st.tuples(st.integers(0, 1), st.sampled_from([CONTROL_SYN, CONTROL_FIN, CONTROL_RST, CONTROL_ACK]),
                              st.integers(-1, 85), st.integers(40, 80)), max_size=30)


@settings(max_examples=300, deadline=None)
@given(packets, controls, spans, spans, st.one_of(st.none(), st.integers(0, 80)), st.integers(1, 6))
def test_attribution_from_disk_is_the_attribution_in_memory_to_the_bit(data, control, spans0, spans1, fin, read):
    item_count = 10
    account = types.SimpleNamespace(data_packets=array("q", [n for record in data for n in record]) if data else None,
                                    control_packets=array("q", [n for record in control for n in record]) if control else None)
    account.connection = types.SimpleNamespace(streams=(types.SimpleNamespace(fin_offset=fin), types.SimpleNamespace(fin_offset=None)))
    sides = (Spans(), Spans())
    for side, given_spans in zip(sides, (spans0, spans1)):
        for start, length, item in given_spans:
            side.add(start, start + length, item)
    transport, acks = attribute_packets(account, sides, item_count)

    long_connections.READ_RECORDS, saved = read, long_connections.READ_RECORDS
    spilled = SpilledConnection(None, 1)
    try:
        spilled.take_records(account)
        for side, spans_of_side in enumerate(sides):
            spilled.spans[side].add(spans_of_side.take())
        from_disk = attribute_spilled(spilled, (fin, None), item_count)
        assert np.array(transport).tobytes() == from_disk[0].values.tobytes()
        assert np.array(acks).tobytes() == from_disk[1].values.tobytes()
    finally:
        long_connections.READ_RECORDS = saved
        spilled.close()
