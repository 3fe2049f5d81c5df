"""Which requests the dashboard answers, and the headers every answer carries.

A WSGI middleware (`Guard`) in front of the whole Flask app, so that it runs before any Dash
handler, asset or page:

- Host allow-list.  A web page on the user's machine could otherwise reach the dashboard by DNS
  rebinding: its own name (evil.example) made to resolve to 127.0.0.1, its scripts then talk to
  the dashboard as "evil.example" and read what it answers.  Only the names the dashboard is
  bound to are answered: 127.0.0.1, localhost and ::1 (with or without a port: a rebinding
  attack is told apart by its name, not its port), and the `--host` given.  When bound to every
  address (0.0.0.0 or ::), a host is reached by its addresses, which are answered whatever they
  are (an address cannot be rebound), and by this machine's own names.  Anything else gets 400
  before the app sees the request.
- Headers: `X-Content-Type-Options: nosniff` (a payload served back is never sniffed into HTML
  or script), `X-Frame-Options: DENY` and CSP `frame-ancestors 'none'` (no page can frame the
  dashboard), and a Content-Security-Policy that fits Dash: scripts only from the dashboard
  itself plus the inline scripts Dash writes into its index page, each allowed by its hash
  (`Dash.csp_hashes()`, asked at each answer: Dash pages adds its own inline script when it
  sets itself up, at the first request); styles may be inline (Plotly and AG Grid set style
  attributes).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable

LOCAL_NAMES = ("127.0.0.1", "localhost", "::1")
EVERY_ADDRESS = ("0.0.0.0", "::", "")
REFUSED_BODY = b"Host not allowed: this dashboard answers only the names it is bound to.\n"


def content_security_policy(script_hashes=()) -> str:
    """The CSP header value: self only, Dash's inline scripts by hash, no framing."""
    directives = {
        "default-src": ["'self'"],
        "script-src": ["'self'", *script_hashes],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:", "blob:"],
        "font-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
    return "; ".join(f"{name} {' '.join(values)}" for name, values in directives.items())


def security_headers(csp: str) -> list[tuple[str, str]]:
    return [("X-Content-Type-Options", "nosniff"), ("X-Frame-Options", "DENY"), ("Content-Security-Policy", csp)]


def dash_csp(app) -> Callable[[], str]:
    """The CSP of a Dash app, with the hashes of the inline scripts it has when asked."""
    return lambda: content_security_policy(app.csp_hashes())


def host_name(header: str) -> str | None:
    """The name in a Host header ("name", "name:port", "[v6]", "[v6]:port"), lower case, a
    trailing dot dropped; None when the header is malformed."""
    header = header.strip().lower()
    if header.startswith("["):  # an IPv6 address
        name, bracket, port = header[1:].partition("]")
        if not bracket or (port and not port.startswith(":")):
            return None
        port = port[1:]
    else:
        name, _, port = header.partition(":")
    if port and not (port.isascii() and port.isdigit()):
        return None
    name = name.rstrip(".")
    return name or None


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _machine_names() -> set[str]:
    names = {socket.gethostname(), socket.getfqdn()}
    return {n.lower().rstrip(".") for n in names if n}


class HostAllowList:
    """The host names a dashboard bound to `bind_host` answers (see the module's docstring)."""

    def __init__(self, bind_host: str | None = None) -> None:
        bind = (bind_host or "").strip().strip("[]").lower()
        self.every_address = bind_host is not None and bind in EVERY_ADDRESS
        self.names = frozenset({*LOCAL_NAMES, *([bind] if bind and not self.every_address else []),
                                *(_machine_names() if self.every_address else ())})

    def allows(self, header: str | None) -> bool:
        name = host_name(header or "")
        if name is None:
            return False
        return name in self.names or (self.every_address and _is_address(name))


class Guard:
    """WSGI middleware: refuses requests for other hosts, adds the security headers to every answer.

    `csp()` gives the Content-Security-Policy when an answer starts (see dash_csp)."""

    def __init__(self, app, hosts: HostAllowList, csp: Callable[[], str]) -> None:
        self.app = app
        self.hosts = hosts
        self.csp = csp

    def __call__(self, environ, start_response):
        if not self.hosts.allows(environ.get("HTTP_HOST")):
            start_response("400 Bad Request", [("Content-Type", "text/plain; charset=utf-8"),
                                               ("Content-Length", str(len(REFUSED_BODY))), *security_headers(self.csp())])
            return [REFUSED_BODY]

        def with_headers(status, headers, exc_info=None):
            present = {name.lower() for name, _ in headers}
            added = [h for h in security_headers(self.csp()) if h[0].lower() not in present]
            return start_response(status, [*headers, *added], exc_info)

        return self.app(environ, with_headers)
