"""Uploads: a capture the Upload page sends is written to the store's upload folder block by
block as it arrives (never held whole in memory, never base64), then waits in a queue for the
one worker thread that analyses uploads; the page polls the job's status by its id.

Limits, each refused with one line and an HTTP status before anything is analysed:
- MAX_UPLOAD_BYTES per file: a declared Content-Length over it is refused before the body is
  read (the WSGI server and Flask refuse it even earlier, see dashboard.serve); a body without
  one is read until it passes the limit.
- MAX_WAITING_UPLOADS uploads waiting for the worker (each holds its file on disk): one more is
  refused with 503 until the queue drains.
- MAX_KEPT_JOBS statuses are remembered; the oldest finished ones are forgotten.

The analysis runs in the worker, not in the request: a slow capture (a gzip bomb) keeps only
the worker busy, and goes on, with its status kept, if the browser leaves.  A failed analysis
removes its file.  The file name is the user's and hostile: it is cleaned (display_name) and
only ever shown as plain text.
"""

from __future__ import annotations

import queue
import re
import secrets
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from dashboard.analysing import failure_line

MiB = 1024 * 1024
MAX_UPLOAD_BYTES = 64 * MiB  # the page's size guard refuses bigger files in the browser; the server again
UPLOAD_BLOCK_BYTES = 1 * MiB  # read and written at a time
MAX_WAITING_UPLOADS = 8
MAX_KEPT_JOBS = 256
NAME_BYTES = 200  # a file name on disk stays well under the usual 255-byte limit

QUEUED, ANALYSING, ADDED, LOADED, FAILED = "queued", "analysing", "added", "already loaded", "failed"
FINISHED = (ADDED, LOADED, FAILED)


class UploadRefused(Exception):
    """An upload not taken: `line` says why (one line, naming the file), `status` is the HTTP status."""

    def __init__(self, status: int, line: str) -> None:
        super().__init__(line)
        self.status = status
        self.line = line


@dataclass(frozen=True)
class UploadJob:
    """One upload's progress; a new object at each change (readers get a consistent snapshot)."""

    id: str
    name: str
    state: str = QUEUED
    fraction: float = 0.0  # of the capture's bytes read, while analysing
    detail: str = ""  # when finished: the counts, or the reason it failed
    overview: pd.DataFrame | None = None  # the capture's row of aggregate.capture_overview, once added or loaded

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    @property
    def line(self) -> str:
        """What the page shows about this upload."""
        if self.state == QUEUED:
            return f"{self.name}: queued for analysis."
        if self.state == ANALYSING:
            return f"{self.name}: analysing: {self.fraction:.0%}."
        if self.state == FAILED:
            return f"Not added: {self.detail}"
        return f"{self.name}: {self.detail}."


def display_name(filename) -> str:
    """The user's file name as shown (and as stored on disk): its last path part, no control
    characters, at most NAME_BYTES bytes of UTF-8; "upload" when nothing usable is left."""
    name = re.split(r"[/\\]", str(filename or ""))[-1]
    name = re.sub(r"[\x00-\x1f\x7f]", "", name).strip()
    name = name.encode()[:NAME_BYTES].decode(errors="ignore")
    return name if name not in ("", ".", "..") else "upload"


def over_limit_line(name: str, size: int | None, limit: int) -> str:
    """Why an upload of `size` bytes (None: more than could be read) was refused."""
    what = "the file" if size is None else f"{size / MiB:.1f} MiB"
    return f"{name}: not uploaded: {what} is over the upload limit of {limit / MiB:.1f} MiB."


def counts_text(overview: pd.DataFrame) -> str:
    if not len(overview):
        return ""
    row = overview.iloc[0]
    return (f"{int(row['packets']):,} packets, {int(row['connections']):,} connections, "
            f"{int(row['rest_exchanges']):,} REST exchanges, {int(row['ws_messages']):,} WebSocket messages, "
            f"{int(row['wire_bytes']):,} wire bytes")


class UploadQueue:
    """The uploads of one TableStore: received into its upload folder, analysed by one worker."""

    def __init__(self, store) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._jobs: OrderedDict[str, UploadJob] = OrderedDict()
        self._waiting: queue.Queue = queue.Queue()
        self._worker: threading.Thread | None = None
        self._closed = False

    def receive(self, stream, filename, length: int | None, limit: int | None = None) -> UploadJob:
        """Write the body `stream` (`length` bytes when the request said so) to a folder of its
        own in the upload folder and queue it for analysis; raises UploadRefused."""
        limit = MAX_UPLOAD_BYTES if limit is None else limit
        name = display_name(filename)
        if length is not None and length > limit:
            raise UploadRefused(413, over_limit_line(name, length, limit))
        with self._lock:
            if self._closed:
                raise UploadRefused(503, f"{name}: not uploaded: the dashboard is shutting down.")
            if self._waiting.qsize() >= MAX_WAITING_UPLOADS:
                raise UploadRefused(503, f"{name}: not uploaded: {MAX_WAITING_UPLOADS} uploads are waiting for "
                                         "analysis; try again when one is done.")
        folder = Path(tempfile.mkdtemp(dir=self._store.upload_dir))  # one per upload: same names never clash
        try:
            size = _copy(stream, folder / name, length, limit)
            if size > limit:  # the copy stopped there
                raise UploadRefused(413, over_limit_line(name, None, limit))
            if length is not None and size < length:
                raise UploadRefused(400, f"{name}: not uploaded: the upload was cut short ({size:,} of {length:,} bytes).")
            if size == 0:
                raise UploadRefused(400, f"{name}: not added: the file is empty.")
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        job = UploadJob(secrets.token_hex(8), name)
        with self._lock:
            self._keep(job)
            self._waiting.put((job.id, folder / name))
            if self._worker is None:
                self._worker = threading.Thread(target=self._work, name="inspector-uploads", daemon=True)
                self._worker.start()
        return job

    def job(self, job_id) -> UploadJob | None:
        with self._lock:
            return self._jobs.get(str(job_id))

    def close(self) -> None:
        """Take no more uploads; the worker stops after the analysis it is doing."""
        with self._lock:
            self._closed = True
        self._waiting.put(None)

    def wait(self, job_id: str, timeout: float) -> UploadJob | None:
        """The job once finished (or as it is after `timeout` seconds): for tests and scripts."""
        deadline = time.monotonic() + timeout
        while (job := self.job(job_id)) is not None and not job.finished and time.monotonic() < deadline:
            time.sleep(0.02)
        return job

    def _keep(self, job: UploadJob) -> None:
        """Store `job` (caller holds _lock), forgetting the oldest finished jobs past MAX_KEPT_JOBS."""
        self._jobs[job.id] = job
        for old in [j for j in self._jobs.values() if j.finished][: max(0, len(self._jobs) - MAX_KEPT_JOBS)]:
            del self._jobs[old.id]

    def _update(self, job_id: str, **changes) -> UploadJob:
        with self._lock:
            job = self._jobs[job_id] = replace(self._jobs[job_id], **changes)
            return job

    def _work(self) -> None:
        while (item := self._waiting.get()) is not None:
            self._analyse(*item)

    def _analyse(self, job_id: str, path: Path) -> None:
        job = self._update(job_id, state=ANALYSING)
        try:
            added = self._store.add_file(path, job.name,
                                         progress=lambda _path, fraction: self._update(job_id, fraction=fraction))
        except Exception as exc:  # whatever the capture does to the analysis, the worker goes on
            shutil.rmtree(path.parent, ignore_errors=True)
            self._update(job_id, state=FAILED, detail=failure_line(exc, path, job.name))
            return
        overview = added.overview
        if added.added:
            self._update(job_id, state=ADDED, fraction=1.0, overview=overview, detail=f"added: {counts_text(overview)}")
        else:
            shutil.rmtree(path.parent, ignore_errors=True)  # the same bytes are loaded already
            self._update(job_id, state=LOADED, fraction=1.0, overview=overview,
                         detail=f"already loaded (same bytes as {added.name}); nothing added: {counts_text(overview)}")


def _copy(stream, path: Path, length: int | None, limit: int) -> int:
    """Copy at most limit + 1 bytes of `stream` (at most `length` when given) to `path` in
    blocks; the number of bytes copied (over `limit`: the copy stopped there)."""
    want = limit + 1 if length is None else min(length, limit + 1)
    size = 0
    with open(path, "wb") as out:
        while size < want:
            block = stream.read(min(UPLOAD_BLOCK_BYTES, want - size))
            if not block:
                break
            out.write(block)
            size += len(block)
    return size
