"""Upload: drop (or pick) a pcap or pcapng capture, gzip-compressed or not; it is written to the
store's temporary folder, analysed through the store (cached by content: the same bytes twice
are analysed once) and added to every page.  The file name is the user's and hostile: it is only
ever shown as plain text."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from pathlib import Path

import dash
from dash import Input, Output, State, dcc, html

from dashboard import aggregate, ids
from dashboard.components import small_table
from dashboard.context import current_views
from dashboard.pages.overview import FORMATS as OVERVIEW_FORMATS
from inspector.errors import InspectorError

dash.register_page(__name__, path="/upload", name="Upload", order=5)

MAX_UPLOAD_BYTES = 64 * 1024 * 1024  # the browser refuses bigger files; the server checks again
MiB = 1024 * 1024
NAME_BYTES = 200  # a file name on disk stays well under the usual 255-byte limit

# dcc.Upload drops a file over max_size without telling anyone: this listener, installed once
# per page, sees the file first and says why nothing happens (as text, through set_props).
SIZE_GUARD_JS = """
function(maxSize) {
    const uploadId = __UPLOAD__, statusId = __STATUS__;
    const install = (tries) => {
        const root = document.getElementById(uploadId);
        if (!root) { if (tries > 0) { setTimeout(() => install(tries - 1), 100); } return; }
        if (root.dataset.sizeGuard) { return; }
        root.dataset.sizeGuard = "1";
        const check = (files) => {
            for (const f of Array.from(files || [])) {
                if (maxSize > 0 && f.size > maxSize) {
                    const mib = (n) => (n / 1048576).toFixed(1);
                    window.dash_clientside.set_props(statusId, {children:
                        f.name + ": not uploaded: " + mib(f.size) + " MiB is over the upload limit of " + mib(maxSize) + " MiB."});
                }
            }
        };
        root.addEventListener("change", (e) => check(e.target && e.target.files), true);
        root.addEventListener("drop", (e) => check(e.dataTransfer && e.dataTransfer.files), true);
    };
    install(100);
    return "";
}
"""


def layout(**_query):
    return build_layout(current_views())


def build_layout(_views=None):
    limit = MAX_UPLOAD_BYTES
    return html.Div([
        html.H3("Upload a capture"),
        html.P(f"A pcap or pcapng file, gzip-compressed or not, up to {limit / MiB:g} MiB. "
               "It is analysed on the server and added to every page."),
        dcc.Upload(id=ids.UPLOAD, children=html.Div(["Drag and drop a capture here, or ", html.A("click to choose one")]),
                   max_size=limit, multiple=False,
                   style={"width": "100%", "height": "80px", "lineHeight": "80px", "borderWidth": "1px",
                          "borderStyle": "dashed", "borderRadius": "5px", "textAlign": "center"}),
        html.P(id=ids.UPLOAD_STATUS, children="No capture uploaded yet.", style={"fontWeight": "bold"}),
        html.Div(id=ids.UPLOAD_RESULT),
        html.Span(id=ids.UPLOAD_GUARD, hidden=True),
    ])


def display_name(filename) -> str:
    """The user's file name as shown (and as stored on disk): its last path part, no control
    characters, at most NAME_BYTES bytes of UTF-8; "upload" when nothing usable is left."""
    name = re.split(r"[/\\]", str(filename or ""))[-1]
    name = re.sub(r"[\x00-\x1f\x7f]", "", name).strip()
    name = name.encode()[:NAME_BYTES].decode(errors="ignore")
    return name if name not in ("", ".", "..") else "upload"


def decoded_size(data: str) -> int:
    """Bytes that base64 text decodes to, without decoding it."""
    return len(data) * 3 // 4 - data[-2:].count("=")


def handle_upload(store, contents: str | None, filename, max_bytes: int | None = None):
    """The upload callback as a plain function: (status line, result components).

    `contents` is dcc.Upload's data URL ("data:...;base64,...").  Valid captures are added to
    `store` (TableStore.add_file); anything the inspector refuses gives its one-line message.
    """
    if contents is None:
        return "No capture uploaded yet.", []
    limit = MAX_UPLOAD_BYTES if max_bytes is None else max_bytes
    name = display_name(filename)
    _, _, data = str(contents).partition(",")
    size = decoded_size(data)
    if size > limit:
        return f"{name}: not uploaded: {size / MiB:.1f} MiB is over the upload limit of {limit / MiB:.1f} MiB.", []
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return f"{name}: not added: the upload did not arrive as base64 data.", []
    if not raw:
        return f"{name}: not added: the file is empty.", []
    folder = store.upload_dir / hashlib.sha256(raw).hexdigest()[:16]
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_bytes(raw)
    try:
        analysis, added = store.add_file(path, name)
    except InspectorError as exc:
        _discard(path)
        return f"Not added: {exc}", []
    overview = aggregate.capture_overview(analysis.tables)
    overview["capture"] = overview["capture"].map(aggregate._short)
    shown = overview.iloc[0] if len(overview) else None
    counts = "" if shown is None else (
        f"{int(shown['packets']):,} packets, {int(shown['connections']):,} connections, "
        f"{int(shown['rest_exchanges']):,} REST exchanges, {int(shown['ws_messages']):,} WebSocket messages, "
        f"{int(shown['wire_bytes']):,} wire bytes")
    if added:
        status = f"{name}: added: {counts}."
    else:
        if Path(analysis.tables["captures"]["capture"].iloc[0]) != path:
            _discard(path)
        status = f"{name}: already loaded (same bytes as {overview['capture'].iloc[0]}); nothing added: {counts}."
    return status, [small_table(overview, OVERVIEW_FORMATS, id=ids.UPLOAD_TABLE),
                    dcc.Link("See it on the overview", href="/")]


def _discard(path: Path) -> None:
    path.unlink(missing_ok=True)
    try:
        path.parent.rmdir()  # only if empty
    except OSError:
        pass


def register_callbacks(app, store):
    @app.callback(Output(ids.UPLOAD_STATUS, "children"), Output(ids.UPLOAD_RESULT, "children"),
                  Input(ids.UPLOAD, "contents"), State(ids.UPLOAD, "filename"), prevent_initial_call=True)
    def _upload(contents, filename):
        return handle_upload(store, contents, filename)

    guard = SIZE_GUARD_JS.replace("__UPLOAD__", json.dumps(ids.UPLOAD)).replace("__STATUS__", json.dumps(ids.UPLOAD_STATUS))
    app.clientside_callback(guard, Output(ids.UPLOAD_GUARD, "children"), Input(ids.UPLOAD, "max_size"))
