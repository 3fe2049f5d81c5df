"""The Dash pages app: `create_app(source)` and a WSGI factory.

    gunicorn 'dashboard.app:make_server()'      # serves the bundled captures

The app holds a TableStore (analysis once, in the background) in the Flask
config; pages read it through `dashboard.context`, callbacks close over it.
Nothing is kept in module-level variables.

Its WSGI app is wrapped by dashboard.security.Guard (Host allow-list, security
headers, a CSP that allows the app's inline scripts by hash), and Flask reads
at most REQUEST_MAX_BYTES of any request body (a bigger one is refused with
413 before it is read); only the upload URL takes more (dashboard.uploads).
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import dash
from dash import Input, Output, State, dcc, html

from dashboard import ids
from dashboard.context import STORE_KEY
from dashboard.slices import register_slice_route
from dashboard.security import Guard, HostAllowList, dash_csp
from dashboard.store import TableStore

PAGES = ("overview", "compare", "connections", "frames", "findings", "upload", "live")
PAGES_FOLDER = Path(__file__).resolve().parent / "pages"
REPO = Path(__file__).resolve().parents[1]
BUNDLED_CAPTURES = REPO / "captures"
# Every Dash callback request is small (a click, a grid's row request): a bigger body is refused
# (413) from its Content-Length, before it is read.  The upload URL lifts it for itself.
REQUEST_MAX_BYTES = 1024 * 1024


def create_app(source, *, start: bool = True, host: str | None = None) -> dash.Dash:
    """A Dash app over `source`: a TableStore, or a list of capture files and directories.

    `host` is the address the server binds (default 127.0.0.1): the Host names it answers
    follow from it (dashboard.security)."""
    store = source if isinstance(source, TableStore) else TableStore(list(source))
    if start:
        store.start()
    app = dash.Dash("dashboard", use_pages=True, pages_folder=str(PAGES_FOLDER), title="wire-inspector",
                    suppress_callback_exceptions=False)
    app.server.config[STORE_KEY] = store
    app.layout = html.Div([
        html.H2("wire-inspector"),
        html.Nav([dcc.Link(page["name"], href=page["relative_path"], className="nav-link", id=f"{ids.NAV}-{page['module'].rsplit('.', 1)[-1]}")
                  for page in dash.page_registry.values()], id=ids.NAV),
        html.Div(id=ids.PROGRESS, children=store.progress().text),
        dcc.Interval(id=ids.PROGRESS_INTERVAL, interval=1000, disabled=store.ready),
        dash.page_container,
    ], className="app")

    @app.callback(Output(ids.PROGRESS, "children"), Output(ids.PROGRESS_INTERVAL, "disabled"), Input(ids.PROGRESS_INTERVAL, "n_intervals"))
    def _progress(_n):
        return progress_text(store)

    # The page was built from empty tables while the analysis ran: once the progress poll
    # (which only runs then) sees it finish, the browser reloads the page with the tables.
    app.clientside_callback(
        "function(disabled, ticks) { if (disabled && ticks) { window.location.reload(); } return window.dash_clientside.no_update; }",
        Output(ids.PROGRESS, "title"), Input(ids.PROGRESS_INTERVAL, "disabled"), State(ids.PROGRESS_INTERVAL, "n_intervals"))

    # The navigation bar marks the page shown: in the browser, as the path changes (no server round trip).
    nav_links = [page for page in dash.page_registry.values()]
    app.clientside_callback(
        "function(path) { const paths = " + json.dumps([page["relative_path"] for page in nav_links]) + ";"
        " return paths.map(p => (p === '/' ? path === '/' : path === p || path.startsWith(p + '/')) ? 'nav-link current' : 'nav-link'); }",
        [Output(f"{ids.NAV}-{page['module'].rsplit('.', 1)[-1]}", "className") for page in nav_links], Input("_pages_location", "pathname"))

    for name in PAGES:
        module = importlib.import_module(f"dashboard.pages.{name}")
        register = getattr(module, "register_callbacks", None)
        if register is not None:
            register(app, store)
    register_slice_route(app.server, store)
    app.server.config["MAX_CONTENT_LENGTH"] = REQUEST_MAX_BYTES
    app.server.wsgi_app = Guard(app.server.wsgi_app, HostAllowList(host), dash_csp(app))
    return app


def progress_text(store: TableStore) -> tuple[str, bool]:
    progress = store.progress()
    text = progress.text + ("" if progress.ready else " (the page reloads when done)")
    return text, progress.ready


def make_server(sources=None):
    """WSGI factory: the Flask server of an app over `sources` (default: the bundled captures)."""
    return create_app(sources or [BUNDLED_CAPTURES]).server
