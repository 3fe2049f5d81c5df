"""Writing a store: Parquet parts into a temporary folder, store.json, one rename.

A store is all or nothing.  Parts go into a temporary sibling of the target folder; only
`commit` writes store.json and renames the folder into place, so Ctrl-C, a full disk or a
crash before it leaves the target as it was, and the temporary folder is removed on any
exception.  Several processes may write parts into one temporary folder at once, each
under its own writer id (a shard, a Dask task): `PartWriter(folder, writer_id)`.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from inspector.analysis.tables import SCHEMA_VERSION, TABLE_NAMES, make_table
from inspector.errors import StoreError
from inspector.store.inputs import StoreInputs
from inspector.store.layout import LAYOUT_VERSION, META_FILE, STORE_FORMAT, WRITER_ID, part_files, part_name, transient_folder
from inspector.store.reader import is_store_folder, read_meta
from inspector.store.schema import ARROW_SCHEMAS, to_arrow

# Rows per part when a whole table is at hand (write_analysis): big enough that DuckDB
# reads few files, small enough that one part's Arrow copy stays a small share of memory.
PART_ROWS = 1 << 17
PARQUET_COMPRESSION = "zstd"
# Tries at putting a store in place while other writers put theirs at the same moment.
MAX_RENAME_TRIES = 10
_TARGET_TAKEN = (errno.ENOTEMPTY, errno.EEXIST)
_TEXT_COLUMNS = {name: [field.name for field in schema if pa.types.is_large_string(field.type)] for name, schema in ARROW_SCHEMAS.items()}


class PartWriter:
    """Writes parts of tables into a store folder under one writer id: `part-<id>-<seq>.parquet`.

    Each part is written under a temporary name, synced and renamed, so a writer that dies
    mid-part leaves no file that looks like a part; a writer run again with the same id (a
    retried task) writes the same names over its earlier parts."""

    def __init__(self, folder: str | os.PathLike, writer: str = "main") -> None:
        if not WRITER_ID.fullmatch(writer):
            raise ValueError(f"writer id {writer!r}: letters, digits and _ only, at most 64")
        self.folder = Path(folder)
        self.writer = writer
        self._seq = 0

    def add_part(self, table: str, frame: pd.DataFrame) -> Path:
        """Write `frame`, rows of `table` with exactly its columns and dtypes, as the next part."""
        return self.add_arrow(table, to_arrow(table, frame))

    def reserve(self) -> int:
        """The place of a part written later (`add_arrow(..., place=)`): the parts added after it
        come after it."""
        self._seq += 1
        return self._seq - 1

    def add_arrow(self, table: str, arrow: pa.Table, place: int | None = None) -> Path:
        """Write `arrow`, rows of `table` with exactly its Arrow schema (schema.ARROW_SCHEMAS), as the
        next part (or as the part of a place reserved)."""
        if not arrow.schema.equals(ARROW_SCHEMAS[table]):
            raise ValueError(f"table {table}: schema {arrow.schema} is not the table's {ARROW_SCHEMAS[table]}")
        folder = self.folder / table
        folder.mkdir(exist_ok=True)
        path = folder / part_name(self.writer, self._seq if place is None else place)
        partial = folder / f".{path.name}.partial"
        try:
            with open(partial, "wb") as out:
                # Dictionaries for the text columns only: for numbers (ids, sizes, times, mostly
                # distinct) they cost a third of the writing time and saved no space (measured).
                pq.write_table(arrow, out, compression=PARQUET_COMPRESSION, use_dictionary=_TEXT_COLUMNS[table])
                out.flush()
                os.fsync(out.fileno())
            os.replace(partial, path)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        if place is None:
            self._seq += 1
        return path


class StoreWriter:
    """A store being written at `target`: parts with `add_part`, then `commit(meta)`.

        with StoreWriter(path) as writer:
            writer.add_part("connections", frame)
            writer.commit({"captures": [...], ...})

    Leaving the `with` block without a commit (an exception, Ctrl-C) removes the temporary
    folder and leaves `target` as it was.  keep_existing (the cache): when a valid current
    store with the same "key" is found at `target` at commit, keep it and drop this one
    (another process wrote the same analysis first); anything else there is replaced.
    Without it, an existing store or empty folder is replaced, and any other folder refused
    (it may be someone's files), when the writer is made and again at commit.
    Errors (a full disk, no permission) are StoreError naming `target`.
    """

    def __init__(self, target: str | os.PathLike, *, keep_existing: bool = False) -> None:
        self.target = Path(os.path.abspath(target))
        self.keep_existing = keep_existing
        if not keep_existing:
            check_target(self.target)
        self.folder = transient_folder(self.target, "tmp")
        self._parts = PartWriter(self.folder)
        self._done = False
        with self._errors():
            self.target.parent.mkdir(parents=True, exist_ok=True)
            self.folder.mkdir()

    def __enter__(self) -> "StoreWriter":
        return self

    def __exit__(self, *exc_info) -> None:
        if not self._done:
            self.discard()

    def add_part(self, table: str, frame: pd.DataFrame) -> None:
        with self._errors():
            self._parts.add_part(table, frame)

    def part_writer(self, writer: str) -> PartWriter:
        """Another writer of parts into this store, under its own id (one per thread or process);
        its errors go through `errors()`."""
        return PartWriter(self.folder, writer)

    def errors(self):
        """A context in which OSError becomes StoreError naming the target, and any exception
        removes the temporary folder."""
        return self._errors()

    def commit(self, meta: dict) -> Path:
        """Write store.json (format, versions, rows per table, creation time, then `meta`) and
        put the store in place at `target`, which it returns."""
        with self._errors():
            for table in TABLE_NAMES:
                if not part_files(self.folder, table):
                    # An empty table still has its columns: DuckDB takes them from a zero-row part.
                    self._parts.add_part(table, make_table(table))
            document = {
                "format": STORE_FORMAT,
                "layout_version": LAYOUT_VERSION,
                "schema_version": SCHEMA_VERSION,
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                **meta,
                "rows": {table: sum(pq.read_metadata(part).num_rows for part in part_files(self.folder, table)) for table in TABLE_NAMES},
            }
            _write_synced(self.folder / META_FILE, json.dumps(document, indent=1).encode())
            _sync_folder(self.folder)
            self._move_into_place(meta.get("key"))
        self._done = True
        return self.target

    def discard(self) -> None:
        """Remove the temporary folder and all written so far."""
        shutil.rmtree(self.folder, ignore_errors=True)
        self._done = True

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """OSError -> StoreError naming the target; on any exception the temporary folder goes."""
        try:
            yield
        except OSError as exc:
            self.discard()
            raise StoreError(f"{self.target}: cannot write the store: {exc.strerror or exc}") from None
        except BaseException:
            self.discard()
            raise

    def _move_into_place(self, key: str | None) -> None:
        for _ in range(MAX_RENAME_TRIES):
            try:
                os.rename(self.folder, self.target)  # also onto an empty folder
            except OSError as exc:
                if exc.errno not in _TARGET_TAKEN:
                    raise
            else:
                _sync_folder(self.target.parent)
                return
            if self.keep_existing and _is_current_store(self.target, key):
                self.discard()  # the same analysis, written by another process first
                return
            if not self.keep_existing:
                check_target(self.target)
            if _replace(self.target, self.folder):
                return
        raise StoreError(f"{self.target}: cannot write the store: other processes keep writing there")


def _replace(target: Path, folder: Path) -> bool:
    """Put `folder` in place of the store at `target`: rename the old away, the new in, delete
    the old.  False when another writer took `target` in between (try again)."""
    old = transient_folder(target, "old")
    try:
        os.rename(target, old)
    except FileNotFoundError:
        return False
    try:
        os.rename(folder, target)
    except OSError as exc:
        if exc.errno not in _TARGET_TAKEN:
            os.rename(old, target)  # put the old store back rather than leave nothing
            raise
        shutil.rmtree(old, ignore_errors=True)  # another writer's store is there now
        return False
    _sync_folder(target.parent)
    shutil.rmtree(old, ignore_errors=True)
    return True


def check_target(target: str | os.PathLike) -> None:
    """Raise StoreError if `target` is there and is neither a store (of any version) nor an empty
    folder: a store is never written over someone's files (checked before an analysis, too)."""
    target = Path(target)
    if not os.path.lexists(target):
        return
    if not target.is_dir() or target.is_symlink():
        raise StoreError(f"{target}: is not a folder; name a new folder or an existing store for --store")
    if is_store_folder(target) or not any(target.iterdir()):
        return
    raise StoreError(f"{target}: is a folder that is not a store, left as it is; name a new folder or an existing store for --store")


def _is_current_store(target: Path, key: str | None) -> bool:
    try:
        meta = read_meta(target)
    except StoreError:
        return False
    return key is not None and meta.get("key") == key


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())


def _sync_folder(folder: Path) -> None:
    """Make the names in `folder` (a rename, new files) durable, where the system allows it."""
    try:
        descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def write_analysis(analysis, target: str | os.PathLike, inputs: StoreInputs, *, keep_existing: bool = False,
                   part_rows: int = PART_ROWS) -> Path:
    """Write an in-memory Analysis (inspector.analysis.pipeline) as a store at `target`, each table
    in parts of at most `part_rows` rows; return the store's folder.  See StoreWriter."""
    with StoreWriter(target, keep_existing=keep_existing) as writer:
        for name in TABLE_NAMES:
            table = analysis.tables[name]
            for start in range(0, len(table), part_rows):
                writer.add_part(name, table.iloc[start:start + part_rows])
        return writer.commit({**inputs.meta(), "warnings": list(analysis.warnings)})
