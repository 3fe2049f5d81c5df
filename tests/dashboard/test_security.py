"""The Host allow-list and the security headers (dashboard.security), through Flask's test client."""

from __future__ import annotations

import pytest

from dashboard.app import create_app
from dashboard.security import HostAllowList, content_security_policy, host_name
from dashboard.store import TableStore


@pytest.mark.parametrize("header, name", [
    ("localhost", "localhost"), ("LocalHost:8050", "localhost"), ("localhost.:1", "localhost"),
    ("[::1]:8050", "::1"), ("[::1]", "::1"), ("127.0.0.1:80", "127.0.0.1"),
    ("", None), ("[::1", None), ("[::1]x", None), ("localhost:80x", None), ("localhost:８０", None), ("a:1:2", None),
])
def test_host_name(header, name):
    assert host_name(header) == name


@pytest.mark.parametrize("bind, allowed, refused", [
    (None, ["127.0.0.1", "localhost:8050", "[::1]:1"], ["evil.example", "10.0.0.5", "0.0.0.0", "localhost.evil.example"]),
    ("127.0.0.1", ["127.0.0.1:8050", "localhost"], ["evil.example:8050", "192.168.1.5"]),
    ("dash.lan", ["dash.lan:8050", "DASH.LAN", "localhost"], ["evil.example", "dash.lan.evil.example", "10.0.0.5"]),
    ("192.168.1.5", ["192.168.1.5:8050"], ["192.168.1.6", "evil.example"]),
    ("::", ["[fe80::1]:8050", "10.0.0.5", "localhost"], ["evil.example"]),  # every address: any address, own names
    ("0.0.0.0", ["192.168.1.5:8050", "127.0.0.1"], ["evil.example:8050", "x.nip.io"]),
])
def test_allowed_hosts(bind, allowed, refused):
    hosts = HostAllowList(bind)
    assert all(hosts.allows(h) for h in allowed), [h for h in allowed if not hosts.allows(h)]
    assert not any(hosts.allows(h) for h in refused), [h for h in refused if hosts.allows(h)]
    assert not hosts.allows(None)


@pytest.fixture(scope="module")
def client():
    return create_app(TableStore([]), start=False).server.test_client()


def test_a_foreign_host_is_refused_before_the_app(client):
    answer = client.get("/", headers={"Host": "evil.example:8050"})
    assert answer.status_code == 400 and answer.data.startswith(b"Host not allowed")
    assert answer.headers["X-Frame-Options"] == "DENY"
    assert client.post("/_dash-update-component", json={}, headers={"Host": "evil.example"}).status_code == 400


def test_every_answer_carries_the_headers(client):
    for path in ("/", "/upload", "/_dash-layout", "/assets/upload.js", "/_dash-component-suites/nope.js"):
        answer = client.get(path)
        assert answer.headers["X-Content-Type-Options"] == "nosniff", path
        assert answer.headers["X-Frame-Options"] == "DENY", path
        assert "frame-ancestors 'none'" in answer.headers["Content-Security-Policy"], path


def test_the_csp_allows_the_index_page_inline_scripts_by_hash(client):
    answer = client.get("/")
    script_src = answer.headers["Content-Security-Policy"].split("script-src ")[1].split(";")[0].split()
    assert script_src[0] == "'self'" and all(h.startswith("'sha256-") for h in script_src[1:])
    assert len(script_src) >= 3  # the renderer, the app's clientside callback, Dash pages' title callback


def test_content_security_policy_text():
    assert content_security_policy(["'sha256-x'"]) == (
        "default-src 'self'; script-src 'self' 'sha256-x'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
        "font-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'")
