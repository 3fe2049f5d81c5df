"""Where things are in a store folder, and the names of the folders a write goes through.

    DIR/store.json                          written last: what the store holds (inspector.store.reader)
    DIR/<table>/part-<writer>-<seq>.parquet one folder per table, any number of parts each

A store is written into a temporary sibling `.<name>.tmp-<pid>-<random>` and renamed to
DIR at the end; a store it replaces is first renamed away to `.<name>.old-<pid>-<random>`
and then deleted.  A part is written as `.<part>.partial` and renamed, so a folder never
holds half a part under a part's name (a writer killed mid-part leaves only a .partial).
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

STORE_FORMAT = "wire-inspector-store"
# The arrangement of files and of store.json; the tables' own version is
# inspector.analysis.tables.SCHEMA_VERSION.
LAYOUT_VERSION = 1
META_FILE = "store.json"
PART_SUFFIX = ".parquet"
# Writer ids name part files (and so end up in DuckDB globs): letters, digits and _ only.
WRITER_ID = re.compile(r"[A-Za-z0-9_]{1,64}")
# `.NAME.tmp-PID-HEX` (a write under way or interrupted), `.NAME.old-PID-HEX` (a store being replaced).
TRANSIENT_FOLDER = re.compile(r"\.(?P<name>.+)\.(?P<role>tmp|old)-(?P<pid>\d+)-[0-9a-f]+")


def transient_folder(target: Path, role: str) -> Path:
    """A new name beside `target` for the store being written (role "tmp") or the one it replaces ("old")."""
    return target.with_name(f".{target.name}.{role}-{os.getpid()}-{secrets.token_hex(4)}")


def is_transient(folder: Path) -> bool:
    return TRANSIENT_FOLDER.fullmatch(folder.name) is not None


def transient_owner(folder: Path) -> int | None:
    """The process id in a transient folder's name, or None if it is not one."""
    match = TRANSIENT_FOLDER.fullmatch(folder.name)
    return int(match["pid"]) if match else None


def part_name(writer: str, seq: int) -> str:
    # Zero-padded so that the parts of a writer sort in the order they were written.
    return f"part-{writer}-{seq:08d}{PART_SUFFIX}"


def part_files(folder: Path, table: str) -> list[Path]:
    """The parts of `table` in a store folder, sorted by name."""
    try:
        names = os.listdir(folder / table)
    except FileNotFoundError:
        return []
    return sorted(folder / table / name for name in names if name.startswith("part-") and name.endswith(PART_SUFFIX))


def duckdb_paths(files: list[Path]) -> list[str]:
    """`files` as DuckDB file arguments, which it reads as patterns when they hold * ? or [: each of
    those is put in a [] class, so it only matches itself.  In a pattern DuckDB also reads \\ as a
    folder separator, so a path holding both cannot be named to it: ValueError."""
    paths = []
    for path in map(str, files):
        if _PATTERN_CHARACTER.search(path):
            if "\\" in path:
                raise ValueError("DuckDB cannot read a path holding both \\ and one of * ? [")
            path = _PATTERN_CHARACTER.sub(r"[\g<0>]", path)
        paths.append(path)
    return paths


_PATTERN_CHARACTER = re.compile(r"[*?\[]")
