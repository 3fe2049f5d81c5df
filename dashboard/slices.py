"""A connection taken to Wireshark from the dashboard: its display filter, shown in the
connection's detail, and its packets as a capture file to download (`/slice/<conn_id>`),
written by inspector.slicing from the capture the connection was analysed from.

The download is a plain HTTP answer, streamed from a temporary file, not a Dash callback: a
long connection's packets can be hundreds of megabytes, which a callback would carry as
base64 in JSON.  Its URL names a connection by number only, never a file: which file is read
is the dashboard's own knowledge (the store the connection came from), and that file is
checked to be the one analysed (its sha256) before a byte of it is sent.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import flask

from dashboard.exports import _slug
from inspector.capture.files import is_regular_file
from inspector.errors import InspectorError
from inspector.slicing import connection_rows, packets_of, row_filter, write_slice
from inspector.store.cache import digest_index
from inspector.store.inputs import fingerprint

SLICE_ROUTE = "/slice/<int:conn_id>"
PCAP_TYPE = "application/vnd.tcpdump.pcap"
PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"  # a section header block


def slice_url(conn_id: int) -> str:
    return f"/slice/{int(conn_id)}"


@dataclass(frozen=True)
class ConnectionSource:
    """A connection of the dashboard's catalog and the capture file it came from."""

    row: tuple  # slicing.connection_rows' row, ids as the dashboard shows them
    capture_file: str  # as the capture was analysed (a path, relative to the dashboard's folder or not)
    expected_sha256: str | None  # the analysed capture's, from its store (None: a pipe's, unknown)

    @property
    def display_filter(self) -> str:
        return row_filter(self.row)

    def download_name(self, pcapng: bool) -> str:
        stem = Path(str(self.row.capture)).name.split(".")[0]
        return f"{_slug(stem)}-conn{int(self.row.conn_id)}.{'pcapng' if pcapng else 'pcap'}"

    def problem_without_reading(self) -> str | None:
        """Why its packets cannot be taken from the capture file, as far as is known without reading it."""
        if self.expected_sha256 is None:
            return "it was read from a pipe or a device, which cannot be read again"
        if not is_regular_file(self.capture_file):
            return f"the capture file is no longer at {self.capture_file}"
        return None

    def problem(self) -> str | None:
        """Why its packets cannot be taken from the capture file (None: they can)."""
        problem = self.problem_without_reading()
        if problem is not None:
            return f"{self.row.capture}: {problem}"
        if fingerprint(self.capture_file, known=digest_index()).sha256 != self.expected_sha256:
            return f"{self.row.capture}: {self.capture_file} has changed since it was analysed"
        return None


def connection_source(catalog, conn_id: int) -> ConnectionSource | None:
    """Connection `conn_id` of the catalog (dashboard.catalog.Catalog) and its capture file (None: no such connection)."""
    rows = connection_rows(catalog.sql, [conn_id])
    if not len(rows):
        return None
    row = next(rows.itertuples(index=False))
    store_index = int(catalog.sql("SELECT _store FROM connections WHERE conn_id = ?", [int(conn_id)])["_store"].iloc[0])
    loaded = catalog.loaded[store_index]
    original = next((name for name, shown in loaded.names.items() if shown == row.capture), str(row.capture))
    analysed = next((capture for capture in loaded.store.meta.get("captures", []) if capture.get("name") == original), {})
    return ConnectionSource(row, original, analysed.get("sha256"))


def register_slice_route(server: flask.Flask, store) -> None:
    """`/slice/<conn_id>`: the packets of that connection of `store` (a TableStore) as a capture
    file to download; a plain one-line text answer when it cannot be made."""

    @server.route(SLICE_ROUTE)
    def _slice(conn_id: int):
        source = connection_source(store.views().catalog, conn_id)
        if source is None:
            return _refused(404, f"no connection {conn_id}")
        problem = source.problem()
        if problem is not None:
            return _refused(409, problem)
        handle, path = tempfile.mkstemp(prefix="inspector-slice-")
        os.close(handle)
        try:
            write_slice(source.capture_file, [packets_of(source.row)], path)
            with open(path, "rb") as written:
                pcapng = written.read(4) == PCAPNG_MAGIC  # the capture's own format (write_slice)
        except (InspectorError, OSError) as exc:
            Path(path).unlink(missing_ok=True)
            return _refused(409, str(exc) if isinstance(exc, InspectorError) else f"cannot write the slice: {exc.strerror}")
        response = flask.send_file(path, mimetype=PCAP_TYPE, as_attachment=True, download_name=source.download_name(pcapng))
        response.call_on_close(lambda: Path(path).unlink(missing_ok=True))
        return response


def _refused(status: int, text: str) -> flask.Response:
    return flask.Response(text.replace("\n", " ") + "\n", status=status, mimetype="text/plain")
