"""Serving the dashboard: waitress (a production WSGI server, pure Python) by default, Dash's
development server with debug.  However the server stops (Ctrl-C, SIGTERM), the store is
closed, which removes its upload folder and everything uploaded into it.

Request bodies are limited where they are read: waitress refuses (413) a body whose declared
length is over MAX_REQUEST_BODY_BYTES before reading it (a chunked one once it passes it), and
spools an accepted body to a temporary file past 512 KiB rather than memory; then Flask refuses
any body over dashboard.app.REQUEST_MAX_BYTES except on the upload URL, which checks its own
limit (dashboard.uploads.MAX_UPLOAD_BYTES) as it copies the body to disk.
"""

from __future__ import annotations

import signal
from collections.abc import Callable

from dashboard.uploads import MAX_UPLOAD_BYTES

# waitress refuses a body of max_request_body_size bytes or more: an upload of exactly the limit passes
MAX_REQUEST_BODY_BYTES = MAX_UPLOAD_BYTES + 1
SERVER_THREADS = 8  # requests served at once (a slow one never holds the others)


def _stop(signum, _frame):
    raise SystemExit(128 + signum)  # waitress shuts down cleanly on SystemExit, as on Ctrl-C


def make_server(app, host: str, port: int):
    """The waitress server of `app` (a Dash app), bound but not yet running (port 0: a free one)."""
    import waitress

    return waitress.create_server(app.server, host=host, port=port, threads=SERVER_THREADS,
                                  max_request_body_size=MAX_REQUEST_BODY_BYTES, ident="wire-inspector")


def serve(app, store, host: str, port: int, *, debug: bool = False, announce: Callable[[str], None] = print) -> None:
    """Serve `app` until Ctrl-C or SIGTERM, then close `store`; `announce(url)` once listening."""
    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        if debug:
            announce(url_of(host, port))
            app.run(host=host, port=port, debug=True)
        else:
            server = make_server(app, host, port)
            announce(url_of(host, server.effective_port))
            server.run()  # returns after Ctrl-C or SIGTERM, its threads shut down
    except KeyboardInterrupt:  # the development server lets it through
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        store.close()


def url_of(host: str, port: int) -> str:
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"
