"""Upload: drop (or pick) a pcap or pcapng capture, gzip-compressed or not.  The browser sends
the file itself (assets/upload.js: one POST of its bytes to UPLOAD_URL, no base64, no Dash
callback), the server writes it to the store's upload folder as it arrives and queues it for the
store's upload worker (dashboard.uploads), and the page polls the job until it is added, already
loaded or failed.  The file name is the user's and hostile: it is only ever shown as plain text."""

from __future__ import annotations

import dash
import flask
from werkzeug.exceptions import RequestEntityTooLarge
from dash import ClientsideFunction, Input, Output, State, dcc, html

from dashboard import ids, uploads
from dashboard.components import small_table
from dashboard.context import current_views
from dashboard.pages.overview import FORMATS as OVERVIEW_FORMATS

dash.register_page(__name__, path="/upload", name="Upload", title="Upload · wire-inspector", order=5)

UPLOAD_URL = "/upload-capture"  # POST the file's bytes, ?name=FILE NAME; answers JSON {job, line} or {line}
UPLOAD_POLL_MS = 500
SHOWN_JOBS = 20  # this tab's latest uploads listed under the status line
NO_UPLOAD = "No capture uploaded yet."


def layout(**_query):
    return build_layout(current_views())


def build_layout(_views=None):
    limit = uploads.MAX_UPLOAD_BYTES
    return html.Div([
        html.H3("Upload a capture"),
        html.P(f"A pcap or pcapng file, gzip-compressed or not, up to {limit / uploads.MiB:g} MiB. "
               "It is analysed on the server, one upload at a time, and added to every page."),
        # The drop zone and file picker; upload.js takes the chosen file before dcc.Upload reads it.
        dcc.Upload(id=ids.UPLOAD, children=html.Div(["Drag and drop a capture here, or ", html.A("click to choose one")]),
                   max_size=limit, multiple=False,
                   style={"width": "100%", "height": "80px", "lineHeight": "80px", "borderWidth": "1px",
                          "borderStyle": "dashed", "borderRadius": "5px", "textAlign": "center"}),
        html.P(id=ids.UPLOAD_STATUS, children=NO_UPLOAD, style={"fontWeight": "bold"}),
        html.Div(id=ids.UPLOAD_RESULT),
        html.Ul(id=ids.UPLOAD_EARLIER),
        dcc.Store(id=ids.UPLOAD_CONFIG, data={"url": UPLOAD_URL, "upload": ids.UPLOAD, "status": ids.UPLOAD_STATUS,
                                              "jobs": ids.UPLOAD_JOBS, "maxSize": limit}),
        dcc.Store(id=ids.UPLOAD_JOBS, data=[]),
        dcc.Interval(id=ids.UPLOAD_POLL, interval=UPLOAD_POLL_MS, disabled=True),
        html.Span(id=ids.UPLOAD_GUARD, hidden=True),
    ])


def upload_status(store, job_ids):
    """The polling callback as a plain function: (status line, result, earlier uploads, poll disabled).

    `job_ids` are this tab's uploads, oldest first, as the browser sent them: only the last
    SHOWN_JOBS strings are looked up; an unknown id is skipped.
    """
    job_ids = [j for j in job_ids if isinstance(j, str)][-SHOWN_JOBS:] if isinstance(job_ids, list) else []
    jobs = [job for job in map(store.uploads.job, job_ids) if job is not None]
    if not jobs:
        return NO_UPLOAD, [], [], True
    latest = jobs[-1]
    result = []
    if latest.overview is not None:
        result = [small_table(latest.overview, OVERVIEW_FORMATS, id=ids.UPLOAD_TABLE), dcc.Link("See it on the overview", href="/")]
    earlier = [html.Li(job.line) for job in reversed(jobs[:-1])]
    return latest.line, result, earlier, all(job.finished for job in jobs)


def receive_upload(store):
    """The UPLOAD_URL view: the request's body is the file, written to disk as it arrives.

    Only `application/octet-stream` bodies are taken: a page on another site can send a form
    (a "simple" request) without asking, but not this content type.  Flask's request-wide size
    limit (dashboard.app.REQUEST_MAX_BYTES) is raised to MAX_UPLOAD_BYTES for this one request;
    UploadQueue.receive checks the declared length, and counts what it reads, against it too.
    """
    request = flask.request
    name = uploads.display_name(request.args.get("name"))
    if request.mimetype != "application/octet-stream":
        return flask.jsonify(line=f"{name}: not uploaded: send the file's bytes as application/octet-stream."), 415
    limit = uploads.MAX_UPLOAD_BYTES
    request.max_content_length = limit
    length = request.content_length
    try:
        if length is not None and length > limit:  # refused before Flask would open the body
            raise uploads.UploadRefused(413, uploads.over_limit_line(name, length, limit))
        job = store.uploads.receive(request.stream, name, length, limit)
    except uploads.UploadRefused as refused:
        return flask.jsonify(line=refused.line), refused.status
    except RequestEntityTooLarge:  # a body without a declared length, past the limit
        return flask.jsonify(line=uploads.over_limit_line(name, None, limit)), 413
    return flask.jsonify(job=job.id, line=job.line), 202


def register_callbacks(app, store):
    app.server.add_url_rule(UPLOAD_URL, "upload_capture", lambda: receive_upload(store), methods=["POST"])

    @app.callback(Output(ids.UPLOAD_STATUS, "children"), Output(ids.UPLOAD_RESULT, "children"),
                  Output(ids.UPLOAD_EARLIER, "children"), Output(ids.UPLOAD_POLL, "disabled"),
                  Input(ids.UPLOAD_POLL, "n_intervals"), Input(ids.UPLOAD_JOBS, "data"), prevent_initial_call=True)
    def _poll(_n, job_ids):
        return upload_status(store, job_ids)

    app.clientside_callback(ClientsideFunction("inspectorUpload", "install"), Output(ids.UPLOAD_GUARD, "children"),
                            Input(ids.UPLOAD_CONFIG, "data"))
