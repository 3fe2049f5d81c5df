"""Tables put together from chunks, and chunks handed from a worker to its parent through a file."""

from __future__ import annotations

import tempfile

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from inspector.analysis.chunked import assemble_table
from inspector.analysis.handoff import HandedOff, hand_off, take_over
from inspector.analysis.tables import SCHEMAS, make_table

ORDER = ["conn_id", "message_id", "ts"]

messages = st.fixed_dictionaries({
    "conn_id": st.integers(0, 3),
    "message_id": st.integers(0, 2),
    "direction": st.sampled_from(["client", "server"]),
    "ts": st.sampled_from([0.5, 1.0, 1.5]),
    "opcode": st.integers(0, 10),
    "payload_bytes": st.none() | st.integers(0, 1000),  # Int64: missing or not
    "compressed": st.booleans(),
    "text_valid": st.none() | st.booleans(),  # boolean: missing or not
    "payload_text": st.none() | st.text(max_size=5),
})


DEFAULTS = {"int64": 0, "float64": 0.0, "bool": False, "Int64": None, "boolean": None, "str": ""}


def chunks_of(rows: list[dict], sizes: list[int]) -> list[pd.DataFrame]:
    """ws_messages chunks of the given sizes (the last one takes the rest); columns not given are 0, missing or empty."""
    rows = [{**{column: DEFAULTS[dtype] for column, dtype in SCHEMAS["ws_messages"].items()}, **row} for row in rows]
    chunks, start = [], 0
    for size in [*sizes, len(rows)]:
        chunks.append(make_table("ws_messages", rows[start:start + size]))
        start += size
    return chunks


def concat_then_sort(chunks: list[pd.DataFrame], conn_ids: list[np.ndarray], order: list[str]) -> pd.DataFrame:
    """What the tables were made by before chunks were put together once."""
    renumbered = []
    for chunk, ids in zip(chunks, conn_ids):
        chunk = chunk.copy()
        chunk["conn_id"] = ids[chunk["conn_id"].to_numpy()]
        renumbered.append(chunk)
    return pd.concat(renumbered, ignore_index=True).sort_values(order, kind="stable").reset_index(drop=True)


@settings(max_examples=60, deadline=None)
@given(st.lists(messages, max_size=30), st.lists(st.integers(0, 8), max_size=4), st.permutations(range(4)), st.permutations(range(4)),
       st.sampled_from([ORDER, ["conn_id"], [], ["conn_id", "payload_bytes"]]))  # payload_bytes: a key with missing values
def test_a_table_from_chunks_is_the_chunks_renumbered_concatenated_and_sorted(rows, sizes, first_ids, second_ids, order):
    chunks = chunks_of(rows, sizes)
    # two workers' numbering: chunks alternate between them
    conn_ids = [np.array(first_ids if i % 2 else second_ids) for i in range(len(chunks))]
    expected = concat_then_sort(chunks, conn_ids, order) if rows else make_table("ws_messages")
    given_chunks = list(chunks)
    table = assemble_table("ws_messages", given_chunks, conn_ids, order)
    pd.testing.assert_frame_equal(table, expected, check_exact=True)
    assert given_chunks == []


def test_rows_already_in_order_are_put_together_as_they_are():
    rows = [{"conn_id": c, "message_id": m, "ts": 1.0, "payload_bytes": None if m else 5} for c in range(3) for m in range(2)]
    chunks = chunks_of(rows, [2, 3])
    expected = pd.concat(chunks, ignore_index=True)
    pd.testing.assert_frame_equal(assemble_table("ws_messages", chunks, order=["conn_id", "message_id"]), expected, check_exact=True)


def test_a_table_from_chunks_can_be_changed():
    table = assemble_table("ws_messages", chunks_of([{"conn_id": 1, "message_id": 0, "payload_text": "a"}] * 3, [1]), order=ORDER)
    table.loc[0, "conn_id"] = 7
    table.loc[1, "payload_bytes"] = 3
    assert list(table["conn_id"]) == [7, 1, 1] and table["payload_bytes"].tolist() == [pd.NA, 3, pd.NA]


def test_chunks_handed_off_through_a_file_come_back_identical_and_viewing_it():
    rows = [{"conn_id": i % 3, "message_id": i, "ts": i / 2, "payload_bytes": i or None, "text_valid": bool(i % 2),
             "payload_text": "x" * (i % 50)} for i in range(3000)]
    chunks = chunks_of(rows, [1000, 1000])
    with tempfile.TemporaryFile() as file:
        handed = hand_off({"ws_messages": chunks}, file)
        assert isinstance(handed, HandedOff) and handed.spans
        assert len(handed.pickled) < sum(length for _offset, length in handed.spans) / 20  # the arrays are in the file
        back = take_over(handed, file)["ws_messages"]
    for chunk, came_back in zip(chunks, back, strict=True):
        pd.testing.assert_frame_equal(came_back, chunk, check_exact=True)
        assert not came_back["message_id"].to_numpy().flags.writeable  # a view of the mapped file
    table = assemble_table("ws_messages", back, order=ORDER)
    pd.testing.assert_frame_equal(table, concat_then_sort(chunks, [np.arange(3)] * 3, ORDER), check_exact=True)


def test_a_result_that_cannot_be_written_goes_through_the_pipe_as_it_is(tmp_path):
    value = {"ws_messages": chunks_of([{"conn_id": 1}], [])}
    path = tmp_path / "result"
    path.write_bytes(b"")
    with open(path, "rb") as read_only:
        handed = hand_off(value, read_only)
        assert handed is value
        assert take_over(handed, read_only) is value
