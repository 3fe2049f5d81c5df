"""Column sinks make exactly the tables make_table makes from the same rows."""

from array import array

import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from inspector.analysis.rows import DIRECTIONS
from inspector.analysis.sinks import MISSING, Codes, Seconds, TableSink, columns_of, provisional
from inspector.analysis.tables import make_table
from inspector.analysis.texts import payload_text

MESSAGES = [
    # conn_id, message_id, direction, ts_ns, payload_bytes, text_valid, payload_text
    (0, 0, 0, 1_700_000_000_123_456_789, 5, True, "hello"),
    (0, 1, 1, 1_700_000_000_223_456_789, None, None, None),
    (3, 0, 1, 1_700_000_001_000_000_001, 0, False, ""),
    (3, 1, 0, 1_700_000_002_999_999_999, 123456, True, "\ufffd\u00e9"),
    (7, 0, 0, 0, None, False, "x" * 200),
]


def message_row(conn_id, message_id, direction, ts_ns, payload_bytes, text_valid, text) -> dict:
    """A ws_messages row as the table has it (what make_table is given)."""
    return {"conn_id": conn_id, "message_id": message_id, "direction": DIRECTIONS[direction], "ts": ts_ns * 1e-9,
            "end_ts": ts_ns * 1e-9, "opcode": 1, "frames": 1, "header_bytes": 2, "wire_payload_bytes": 5,
            "payload_bytes": payload_bytes, "compressed": bool(message_id % 2), "text_valid": text_valid,
            "complete": True, "payload_text": text, "payload_hex": None}


def written_row(conn_id, message_id, direction, ts_ns, payload_bytes, text_valid, text) -> dict:
    """The same row as a sink is given it: codes, nanoseconds, MISSING."""
    row = message_row(conn_id, message_id, direction, ts_ns, payload_bytes, text_valid, text)
    return {**row, "direction": direction, "ts": ts_ns, "end_ts": ts_ns,
            "payload_bytes": MISSING if payload_bytes is None else payload_bytes,
            "text_valid": MISSING if text_valid is None else text_valid}


def message_sink(**options) -> TableSink:
    return TableSink("ws_messages", columns_of("ws_messages", direction=Codes(DIRECTIONS), ts=Seconds(), end_ts=Seconds()), **options)


def test_sink_chunks_make_the_table_make_table_makes():
    for chunk_rows in (1, 2, 3, 100):
        sink = message_sink(chunk_rows=chunk_rows)
        for message in MESSAGES:
            sink.append_row(written_row(*message))
            if sink.full():
                sink.flush()
        assert len(sink) == len(MESSAGES)
        pd.testing.assert_frame_equal(sink.table(), make_table("ws_messages", [message_row(*m) for m in MESSAGES]), check_exact=True)
        assert len(sink) == 0


def test_an_empty_sink_makes_an_empty_table():
    pd.testing.assert_frame_equal(message_sink().table(), make_table("ws_messages"), check_exact=True)


def test_late_values_are_set_after_their_rows_left_in_chunks():
    sink = TableSink("ws_messages", columns_of("ws_messages", direction=Codes(DIRECTIONS), ts=Seconds(), end_ts=Seconds()),
                     late=("payload_bytes",), chunk_rows=2)
    for row, message in enumerate(MESSAGES):
        written = written_row(*message)
        if row < 3:
            written["payload_bytes"] = provisional(row)
        sink.append_row(written)
        if sink.full():
            sink.flush()
    assert sink.chunks, "rows left in chunks before the column was set"
    sink.set_late("payload_bytes", 1, 42)  # in a chunk already: kept aside
    sink.set_late("payload_bytes", 0, MISSING)
    # Row 2 is never set: missing.
    assert sink.late_values["payload_bytes"] == {1: 42, 0: MISSING}
    expected = [message_row(*m) for m in MESSAGES]
    expected[1]["payload_bytes"], expected[0]["payload_bytes"], expected[2]["payload_bytes"] = 42, None, None
    pd.testing.assert_frame_equal(sink.table(), make_table("ws_messages", expected), check_exact=True)


def test_a_late_value_set_while_its_row_is_held_is_not_kept_aside():
    sink = TableSink("ws_messages", columns_of("ws_messages", direction=Codes(DIRECTIONS), ts=Seconds(), end_ts=Seconds()),
                     late=("payload_bytes",), chunk_rows=len(MESSAGES) + 1)
    for row, message in enumerate(MESSAGES):
        sink.append_row({**written_row(*message), "payload_bytes": provisional(row)})
    for row in range(len(MESSAGES)):
        sink.set_late("payload_bytes", row, 10 * row)
    assert sink.late_values["payload_bytes"] == {}
    expected = [{**message_row(*m), "payload_bytes": 10 * row} for row, m in enumerate(MESSAGES)]
    pd.testing.assert_frame_equal(sink.table(), make_table("ws_messages", expected), check_exact=True)


def test_rows_not_kept_leave_with_their_chunk():
    sink = message_sink(chunk_rows=2, keep=lambda built, held: built["conn_id"] != 3)
    for message in MESSAGES:
        sink.append_row(written_row(*message))
        if sink.full():
            sink.flush()
    kept = [message_row(*m) for m in MESSAGES if m[0] != 3]
    pd.testing.assert_frame_equal(sink.table(), make_table("ws_messages", kept), check_exact=True)


@given(st.binary(max_size=900), st.integers(min_value=0, max_value=250))
def test_payload_text_is_the_utf8_text_cut_to_its_limit(data, limit):
    assert payload_text(data, limit) == data[: limit * 4].decode("utf-8", errors="replace")[:limit]


@given(st.text(max_size=300), st.integers(min_value=0, max_value=250))
def test_payload_text_of_text_is_its_prefix(text, limit):
    assert payload_text(text.encode(), limit) == text[:limit]


def test_packed_columns_make_the_same_table():
    """Numbers written with one struct call per row give the table make_table gives."""
    packed = ("conn_id", "message_id", "direction", "ts", "end_ts", "opcode", "frames", "header_bytes", "wire_payload_bytes",
              "payload_bytes", "compressed", "text_valid", "complete")
    for chunk_rows in (1, 3, 100):
        sink = message_sink(chunk_rows=chunk_rows, packed=packed)
        for message in MESSAGES:
            sink.append_row(written_row(*message))
            if sink.full():
                sink.flush()
        assert sink.held_rows() < chunk_rows and len(sink) == len(MESSAGES)
        pd.testing.assert_frame_equal(sink.table(), make_table("ws_messages", [message_row(*m) for m in MESSAGES]), check_exact=True)


def test_blocks_of_rows_make_the_same_table():
    """Rows written a block at a time (a group of columns as one array of records, a
    column as an array of its values, conn_id once per block) make the table make_table
    makes, across chunks and with rows not kept."""
    records = ("message_id", "direction", "opcode", "frames", "header_bytes", "wire_payload_bytes", "payload_bytes",
               "compressed", "text_valid", "complete")
    blocks = ((records, "q"), (("ts",), "q"), (("end_ts",), "q"))
    same_text = {"payload_text": lambda built, held: pd.array(["x"] * len(built["conn_id"]), dtype="str"),
                 "payload_hex": lambda built, held: pd.array([None] * len(built["conn_id"]), dtype="str")}
    for chunk_rows in (1, 2, 100):
        sink = TableSink("ws_messages", columns_of("ws_messages", exclude=tuple(same_text), direction=Codes(DIRECTIONS),
                                                   ts=Seconds(), end_ts=Seconds()),
                         derived=same_text, blocks=blocks, keep=lambda built, held: held["ts"] != MESSAGES[2][3], chunk_rows=chunk_rows)
        expected = []
        for conn_id in sorted({message[0] for message in MESSAGES}):
            block = [message for message in MESSAGES if message[0] == conn_id]
            written = [written_row(*message) for message in block]
            sink.write_block(len(block), (conn_id,), *(array("q", [int(row[column]) for row in written for column in columns])
                                                       for columns, _typecode in blocks))
            expected += [{**message_row(*message), "payload_text": "x"} for message in block if message != MESSAGES[2]]
            if sink.full():
                sink.flush()
        assert len(sink) == len(MESSAGES)
        pd.testing.assert_frame_equal(sink.table(), make_table("ws_messages", expected), check_exact=True)
