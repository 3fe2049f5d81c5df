"""A long connection's packet records, stream spans and items, moved to disk as it goes.

What splits a connection's header bytes among its messages at its end (overhead.py) grows
with the connection: a record per packet (accounting.py), a stream range per message
(overhead.Spans) and an item per message (rows.py), about 160 bytes a message.  Past
LONG_CONNECTION_RECORDS of them, the worker moves them here (rows.ShardRows.spill_long), into
files of its temporary folder (deleted when closed), and the attribution reads them back
(overhead.attribute_spilled), a chunk at a time, in the order it needs:

- packet records, stream spans and the offsets ACKs acknowledge are needed sorted.  They
  come nearly sorted (a stream grows), so each goes to a `SortedRecords`: a record not below
  any earlier one is appended to its file, the few others (retransmissions, reordering, a
  WebSocket control frame inside a fragmented message) are kept in memory and merged in, sorted,
  as the file is read back;
- items are written in their order, the finished ones only (rows.py decides which).
"""

from __future__ import annotations

import mmap
import os
import tempfile
from collections.abc import Callable, Iterator
from typing import IO

import numpy as np

from inspector.analysis.accounting import CONTROL_ACK, CONTROL_FIN, CONTROL_RST, RECORD_FIELDS
from inspector.analysis.handoff import write_at

# Records (packet records, spans, items) a connection holds in memory before they are moved here.
LONG_CONNECTION_RECORDS = 65_536
# Records read back at a time.
READ_RECORDS = 65_536
# Below every key: before the first record, nothing was added.
_NO_KEY = np.iinfo(np.int64).min
_NUMBER = np.dtype(np.int64).itemsize


class RecordFile:
    """Records of `fields` int64 numbers appended to a temporary file, read back in order."""

    def __init__(self, fields: int, folder: str | None) -> None:
        self.fields = fields
        self.folder = folder
        self.count = 0
        self._file: IO[bytes] | None = None

    def append(self, records: np.ndarray) -> None:
        if not len(records):
            return
        if self._file is None:
            self._file = tempfile.TemporaryFile(dir=self.folder)
        write_at(self._file.fileno(), memoryview(np.ascontiguousarray(records, np.int64)), self.count * self.fields * _NUMBER)
        self.count += len(records)

    def chunks(self, rows: int = 0) -> Iterator[np.ndarray]:
        """The records in order, `rows` (default READ_RECORDS) at a time, as (n, fields) arrays."""
        rows = rows or READ_RECORDS
        for start in range(0, self.count, rows):
            size = min(rows, self.count - start) * self.fields * _NUMBER
            data = os.pread(self._file.fileno(), size, start * self.fields * _NUMBER)
            yield np.frombuffer(data, np.int64).reshape(-1, self.fields)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class SortedRecords:
    """Records of `fields` int64 numbers, read back sorted (by the first number, then the next...).

    A record whose first number is not below any earlier record's goes to the file, in order;
    the others wait in memory until they are merged in.  keep_order: when no record came out of
    order, they come back in the order they came, ties too (as overhead.Spans.in_order)."""

    def __init__(self, fields: int, folder: str | None, keep_order: bool = False) -> None:
        self.keep_order = keep_order
        self._ordered = RecordFile(fields, folder)
        self._unordered: list[np.ndarray] = []
        self._top = _NO_KEY  # the highest first number so far

    def add(self, records: np.ndarray) -> None:
        """Records as an (n, fields) int64 array, in the order they came."""
        if not len(records):
            return
        keys = records[:, 0]
        ordered = keys >= np.maximum.accumulate(np.concatenate(([self._top], keys[:-1])))
        self._ordered.append(records[ordered])
        if not ordered.all():
            self._unordered.append(records[~ordered].copy())
        self._top = max(self._top, int(keys.max()))

    def change(self, change: Callable[[np.ndarray], None]) -> None:
        """Change every record added so far with change(records), in place; it must leave their
        first numbers as they are (the file is written again: done once in a connection)."""
        for records in self._unordered:
            change(records)
        changed = RecordFile(self._ordered.fields, self._ordered.folder)
        for chunk in self._ordered.chunks():
            chunk = chunk.copy()
            change(chunk)
            changed.append(chunk)
        self._ordered.close()
        self._ordered = changed

    def chunks(self) -> Iterator[np.ndarray]:
        """Every record, sorted, a chunk at a time."""
        if self.keep_order and not self._unordered:
            yield from self._ordered.chunks()
            return
        fields = self._ordered.fields
        waiting = _sorted(np.concatenate(self._unordered)) if self._unordered else np.empty((0, fields), np.int64)
        taken = 0
        carried = np.empty((0, fields), np.int64)
        for chunk in self._ordered.chunks():
            # The records of the chunk's last key may go on in the next chunk: they wait for it.
            chunk = np.concatenate((carried, chunk))
            cut = int(np.searchsorted(chunk[:, 0], chunk[-1, 0], "left"))
            chunk, carried = chunk[:cut], chunk[cut:]
            if not len(chunk):
                continue
            # The waiting records up to the chunk's last key sort in with it.
            upto = int(np.searchsorted(waiting[:, 0], chunk[-1, 0], "right"))
            yield _sorted(np.concatenate((chunk, waiting[taken:upto])))
            taken = upto
        rest = np.concatenate((carried, waiting[taken:]))
        if len(rest):
            yield _sorted(rest)

    def close(self) -> None:
        self._ordered.close()
        self._unordered = []


def _sorted(records: np.ndarray) -> np.ndarray:
    return records[np.lexsort(records.T[::-1])]


class FloatTotals:
    """`count` float totals, 0.0 to start with, in a temporary file mapped into memory: added to
    with `add_at` (np.add.at: in order, each from the total so far, as np.bincount adds from
    0.0), its pages let go of now and then so that they do not stay in memory."""

    def __init__(self, count: int, folder: str | None) -> None:
        self._file = tempfile.TemporaryFile(dir=folder)
        size = max(count, 1) * _NUMBER
        self._file.truncate(size)  # zeros: 0.0
        self._map = mmap.mmap(self._file.fileno(), size)
        self.values = np.frombuffer(self._map, np.float64)[:count]
        self._added = 0

    def add_at(self, index: np.ndarray, amounts: np.ndarray) -> None:
        np.add.at(self.values, index, amounts)
        self._added += len(index)
        if self._added >= READ_RECORDS * 16:
            self.release()

    def release(self) -> None:
        """Let go of the pages in memory (they stay in the file)."""
        self._map.madvise(mmap.MADV_DONTNEED)
        self._added = 0

    def close(self) -> None:
        self.values = None
        try:
            self._map.close()
        except BufferError:  # a view of it is still held: the mapping goes with it
            pass
        self._file.close()


class SpilledConnection:
    """What a long connection moved to disk so far (see the module's docstring)."""

    def __init__(self, folder: str | None, item_fields: int) -> None:
        self.folder = folder
        # By side: its packets with payload, as (start, end, overhead bytes) of its stream.
        self.packets = (SortedRecords(3, folder), SortedRecords(3, folder))
        # By the side acknowledged: ACKs of its stream, as (offset acknowledged, bytes).
        self.acks = (SortedRecords(2, folder), SortedRecords(2, folder))
        # Packets without payload whose item is known as they come: SYNs, the handshake's last
        # ACK (setup); FINs and RSTs (teardown).
        self.setup_control_bytes = 0
        self.teardown_control_bytes = 0
        # By side: the stream ranges of its items, as (start, end, item), items numbered from
        # the connection's start (rows.py numbers the items it still holds from the last spilled).
        self.spans = (SortedRecords(3, folder, keep_order=True), SortedRecords(3, folder, keep_order=True))
        # Items from the first message's on (the first four, setup to unattributed, stay with
        # the connection), and the sum of each of their fields.
        self.items = RecordFile(item_fields, folder)
        self.item_sums = np.zeros(item_fields, np.int64)

    def take_records(self, account) -> None:
        """Move the packet records of `account` (accounting.ConnectionAccount) here."""
        if account.data_packets:
            records = np.array(account.data_packets, np.int64).reshape(-1, RECORD_FIELDS)  # (a copy: the array can shrink)
            side, start, length, overhead = records.T
            for sent_by in (0, 1):
                sent = side == sent_by
                self.packets[sent_by].add(np.column_stack((start[sent], start[sent] + length[sent], overhead[sent])))
            del account.data_packets[:]
        if account.control_packets:
            records = np.array(account.control_packets, np.int64).reshape(-1, RECORD_FIELDS)
            side, kind, acked, size = records.T
            acking = (kind == CONTROL_ACK) & (acked > 0)  # as overhead._assign_control tells them
            for sent_by in (0, 1):
                sent = acking & (side == sent_by)
                self.acks[1 - sent_by].add(np.column_stack((acked[sent], size[sent])))
            ending = ~acking & ((kind == CONTROL_FIN) | (kind == CONTROL_RST))
            self.teardown_control_bytes += int(size[ending].sum())
            self.setup_control_bytes += int(size[~acking & ~ending].sum())
            del account.control_packets[:]

    def add_items(self, items: np.ndarray) -> None:
        self.items.append(items)
        self.item_sums += items.sum(axis=0)

    def relabel(self, item: int, new_item: int) -> None:
        """The spans of `item` spilled so far are `new_item`'s (as overhead.Spans.relabel)."""

        def relabelled(spans: np.ndarray) -> None:
            spans[spans[:, 2] == item, 2] = new_item

        for side in self.spans:
            side.change(relabelled)

    def close(self) -> None:
        for records in (*self.packets, *self.acks, *self.spans, self.items):
            records.close()
