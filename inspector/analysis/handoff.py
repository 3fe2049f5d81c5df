"""A worker's result handed to its parent through a file, its arrays not copied on the way.

Pickle protocol 5 lets numpy, pandas and pyarrow keep the buffers of their
arrays out of band: the worker writes them into a temporary file its parent
opened before forking it, and returns through the process pool only the small
pickle that refers to them.  The parent maps the file and unpickles the arrays
as read-only views of the mapping, which the tables are then assembled from
(`chunked.assemble_table`); the mapping goes when the last view does.

Pickled through the pool's pipe instead (protocol 4), a worker's tables were
copied four times: into bytes, into the pickle, out of the pipe and into new
arrays, each a fresh allocation the size of the tables.
"""

from __future__ import annotations

import mmap
import os
import pickle
from dataclasses import dataclass
from typing import IO

# Buffers start at multiples of this in the file, so the arrays viewing them are aligned.
ALIGNMENT = 64


@dataclass
class HandedOff:
    """What goes through the pipe: the pickle, and where its buffers are in the file."""

    pickled: bytes
    spans: list[tuple[int, int]]  # (offset, length) of each out-of-band buffer, in order


def hand_off(value: object, file: IO[bytes]) -> HandedOff | object:
    """Write `value`'s buffers into `file` (empty) and return what `take_over` needs to
    rebuild it; `value` itself when the file cannot be written (it then goes through
    the pipe as before)."""
    buffers: list[pickle.PickleBuffer] = []
    pickled = pickle.dumps(value, protocol=5, buffer_callback=buffers.append)
    spans = []
    offset = 0
    try:
        for buffer in buffers:
            data = buffer.raw()
            offset += -offset % ALIGNMENT
            write_at(file.fileno(), data, offset)
            spans.append((offset, data.nbytes))
            offset += data.nbytes
    except OSError:  # e.g. a full temporary folder
        return value
    return HandedOff(pickled, spans)


def take_over(handed: HandedOff | object, file: IO[bytes]) -> object:
    """The value `hand_off` wrote into `file`, its arrays viewing the file's bytes."""
    if not isinstance(handed, HandedOff):
        return handed
    if not any(length for _offset, length in handed.spans):  # (an empty file cannot be mapped)
        return pickle.loads(handed.pickled, buffers=[memoryview(b"")] * len(handed.spans))
    mapped = memoryview(mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ))
    return pickle.loads(handed.pickled, buffers=[mapped[offset:offset + length] for offset, length in handed.spans])


def write_at(fd: int, data: memoryview, offset: int) -> None:
    """Write all of `data` at `offset` of the file `fd` (a write may take only part of it)."""
    data = data.cast("B")
    while data:
        written = os.pwrite(fd, data, offset)
        data = data[written:]
        offset += written
