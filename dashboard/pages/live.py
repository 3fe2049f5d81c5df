"""Live: follow a capture file while `inspector capture -o FILE` writes it (pcap or pcapng).

Every LIVE_INTERVAL_MS the page asks the store's LiveFollower about the path; the file is
analysed again, whole, only when its size or mtime changed (see dashboard.live).  The browser
keeps the followed path and last size only (a small dcc.Store); the tables stay on the server.
The path is the user's text and hostile: only files whose real path lies inside the store's
allowed folders are followed (see LiveFollower), only regular files are read, errors are one
line of text.  The page names no server path but the one typed: the allowed folders are
described, and printed by `inspector dashboard` where it was started.
"""

from __future__ import annotations

import dash
from dash import Input, Output, State, dcc, html

from dashboard import figures, ids
from dashboard.components import graph
from dashboard.live import ALLOWED_FOLDERS, clean_path, mix_frame, summary_text

dash.register_page(__name__, path="/live", name="Live", title="Live · wire-inspector", order=6)

LIVE_INTERVAL_MS = 1500
HINT = "Enter the path of a capture being written by `inspector capture -o FILE`."
ROOTS_TEXT = (f"Only files inside these folders can be followed: {ALLOWED_FOLDERS} (inspector dashboard "
              "prints them when it starts). A relative path starts at the working directory.")
FIGURE_TITLE = "Wire bytes over time by kind"


def layout(**_query):
    return build_layout()


def build_layout(_tables=None):
    return html.Div([
        html.H3("Follow a live capture"),
        html.P("The file is analysed again, whole, each time it grows (fine for small live captures; "
               f"a long capture costs a full analysis per change). Checked every {LIVE_INTERVAL_MS / 1000:g} s."),
        html.P(ROOTS_TEXT, id=ids.LIVE_ROOTS),
        dcc.Input(id=ids.LIVE_PATH, type="text", value="", debounce=True,
                  placeholder="/path/to/capture.pcap", style={"width": "60%", "fontFamily": "monospace"}),
        html.P(id=ids.LIVE_STATUS, children=HINT, style={"fontWeight": "bold"}),
        html.Div(id=ids.LIVE_WARNINGS, className="note"),
        graph(ids.LIVE_FIGURE, figures.protocol_mix(mix_frame({}), title=FIGURE_TITLE)),
        dcc.Store(id=ids.LIVE_STATE, storage_type="memory", data=None),
        dcc.Interval(id=ids.LIVE_INTERVAL, interval=LIVE_INTERVAL_MS),
    ])


def handle_live(store, path, data):
    """The page's callback as a plain function: (status, warnings, figure, store data).

    `data` is what the browser last showed ({"path", "size"}); when neither changed,
    nothing is sent back (dash.no_update), so a still file costs one stat per tick.
    """
    path = clean_path(path)
    if not path:
        new = {"path": "", "size": -1}
        if data == new:
            return (dash.no_update,) * 4
        return HINT, "", figures.protocol_mix(mix_frame({}), title=FIGURE_TITLE), new
    summary = store.live.follow(path)
    if summary["busy"]:  # another refresh is analysing: say so, keep the rest; the next tick shows the result
        return f"{path}: analysing (the page updates when it is done)", dash.no_update, dash.no_update, None
    new = {"path": summary["path"], "size": summary["size"]}
    if data == new and not summary["changed"]:
        return (dash.no_update,) * 4
    warnings = "; ".join(summary["warnings"])
    figure = figures.protocol_mix(mix_frame(summary), title=FIGURE_TITLE)
    return summary_text(summary), warnings, figure, new


def register_callbacks(app, store):
    @app.callback(Output(ids.LIVE_STATUS, "children"), Output(ids.LIVE_WARNINGS, "children"),
                  Output(ids.LIVE_FIGURE, "figure"), Output(ids.LIVE_STATE, "data"),
                  Input(ids.LIVE_INTERVAL, "n_intervals"), Input(ids.LIVE_PATH, "value"), State(ids.LIVE_STATE, "data"))
    def _live(_n, path, data):
        return handle_live(store, path, data)
