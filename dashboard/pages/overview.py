"""Overview: headline numbers, the claims tested, per capture numbers, bytes by category (stacked),
protocol mix over time; the chosen capture's HTTP exchanges as a HAR file (HAR_URL)."""

from __future__ import annotations

import io
import tempfile
from urllib.parse import urlencode

import dash
import flask
from dash import Input, Output, dcc, html

import inspector
from inspector.analysis.har import har_file_names, write_har

from dashboard import aggregate, ids
from dashboard.components import claims_table, csv_download, graph, send_csv, small_table
from dashboard.context import current_views

dash.register_page(__name__, path="/", name="Overview", title="Overview · wire-inspector", order=0)


COUNT_COLUMNS = ("packets", "connections", "wire_bytes", "rest_exchanges", "ws_messages", "tcp_wire_bytes", "wire_payload_bytes",
                 "app_payload_bytes", "undecoded_payload_bytes", "compression_saved_bytes")
# efficiency: application payload (decoded) / TCP wire bytes; the payload as sent has its own columns
# A capture's HAR is a download from this URL (?capture=NAME), not a dcc.Download: a callback's
# download travels base64 inside its JSON answer, held whole in the server and in the page, and
# a capture of a million packets has a HAR of hundreds of MB.  The route writes it to a
# temporary file as it is read from the store and sends that file.
HAR_URL = "/download/har"
FORMATS = {"efficiency": ".1%", "wire_payload_efficiency": ".1%", "compression_ratio": ".2f", **{c: ",d" for c in COUNT_COLUMNS}}


def layout(**_query):
    return build_layout(current_views())


def build_layout(views):
    captures = views.captures()
    overview = views.overview().copy()
    overview["capture"] = overview["capture"].map(aggregate._short)
    first = captures[0] if captures else None
    bytes_fig, mix_fig = capture_figures(views, first)
    return html.Div([
        headline_cards(views.headline()),
        html.H3("The claims, tested on the loaded captures"),
        # Testing the claims reads every capture's curves: laid out now when the background has
        # done it, else filled by a callback once it has (the numbers above do not wait for it).
        html.Div(claims_table(views.claims(), ids.OVERVIEW_CLAIMS) if views.done("claims") else
                 html.P("Testing the claims on the loaded captures…", id=ids.OVERVIEW_CLAIMS), id=ids.OVERVIEW_CLAIMS_BOX),
        dcc.Store(id=ids.OVERVIEW_CLAIMS_SHOWN, data=views.done("claims")),
        html.H3("Captures"),
        small_table(overview, FORMATS, id=ids.OVERVIEW_TABLE),
        csv_download(ids.OVERVIEW_CSV_BUTTON, ids.OVERVIEW_CSV),
        html.Label("Capture"),
        dcc.Dropdown(id=ids.OVERVIEW_CAPTURE, options=[{"label": aggregate._short(c), "value": c} for c in captures], value=first, clearable=False),
        html.A("Download HAR", id=ids.OVERVIEW_HAR, href=har_href(first), download="", style={"margin": "0.5em 0", "display": "inline-block"},
               title="The capture's HTTP exchanges as HAR 1.2, with the sizes measured on the wire"),
        graph(ids.OVERVIEW_BYTES, bytes_fig),
        graph(ids.OVERVIEW_MIX, mix_fig),
    ])


def headline_cards(cards: list[dict]) -> html.Div:
    """The headline numbers as cards, each with its exact numbers on hover."""
    return html.Div([html.Div([html.Div(card["value"], className="card-value"), html.Div(card["label"], className="card-label")],
                              className="card", title=card["exact"], **{"data-card": card["key"]}) for card in cards],
                    id=ids.OVERVIEW_CARDS, className="cards")


def capture_figures(views, capture):
    """The two figures of one capture (None: all captures for bytes, nothing for the mix), built
    once per snapshot of the stores (views.overview_figures, computed in the background first)."""
    return views.overview_figures(capture)


def har_href(capture: str | None) -> str | None:
    return f"{HAR_URL}?{urlencode({'capture': capture})}" if capture else None


def send_har(store) -> flask.Response:
    """The HAR_URL view: the HAR of the capture named in ?capture= (a name the overview lists; any
    other is 404), as an attachment named after it."""
    capture = flask.request.args.get("capture", "")
    views = store.views()
    if capture not in views.captures():
        return flask.Response("no such capture\n", status=404, mimetype="text/plain")
    spooled = tempfile.TemporaryFile()  # on disk, never whole in memory; gone once sent
    text = io.TextIOWrapper(spooled, encoding="ascii", newline="\n")
    write_har(views.catalog, capture, text, inspector.__version__)
    text.flush()
    text.detach()
    spooled.seek(0)
    return flask.send_file(spooled, mimetype="application/json", as_attachment=True, download_name=har_file_names([capture])[0])


def register_callbacks(app, store):
    app.server.add_url_rule(HAR_URL, "download_har", lambda: send_har(store), methods=["GET"])

    @app.callback(Output(ids.OVERVIEW_HAR, "href"), Input(ids.OVERVIEW_CAPTURE, "value"), prevent_initial_call=True)
    def _har(capture):
        return har_href(capture)

    # The layout has the figures of the capture the dropdown opens on: the callback runs on a change only.
    @app.callback(Output(ids.OVERVIEW_BYTES, "figure"), Output(ids.OVERVIEW_MIX, "figure"), Input(ids.OVERVIEW_CAPTURE, "value"),
                  prevent_initial_call=True)
    def _capture(capture):
        return capture_figures(store.views(), capture)

    @app.callback(Output(ids.OVERVIEW_CLAIMS_BOX, "children"), Input(ids.OVERVIEW_CLAIMS_SHOWN, "data"))
    def _claims(shown):
        if shown:
            return dash.no_update
        return claims_table(store.views().claims(), ids.OVERVIEW_CLAIMS)

    @app.callback(Output(ids.OVERVIEW_CSV, "data"), Input(ids.OVERVIEW_CSV_BUTTON, "n_clicks"), prevent_initial_call=True)
    def _csv(_n):
        return send_csv("overview", store.views().capture(None))
