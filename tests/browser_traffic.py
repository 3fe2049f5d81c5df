"""Record a real browser's HTTPS and WSS traffic on loopback: headless Chromium, its own key log.

`record_browser(out_dir)` serves, over TLS with a certificate made for the run
(inspector.workloads.tls):

- a page and a small REST API from hypercorn (ALPN h2, so Chromium speaks HTTP/2
  to it): `GET /` is the page, `POST /chat` answers a JSON ask with a reply of the
  same size;
- a WebSocket echo server from `websockets` on another port (WSS over HTTP/1.1,
  permessage-deflate accepted, as Chromium offers it).

The page does FETCHES `fetch()` POSTs (the first alone, then the others at once, so
their HTTP/2 streams interleave), then opens a WebSocket, sends WS_MESSAGES text
messages one at a time, each echoed, and closes it; it puts what it did in the
document title.  Chromium writes its TLS secrets with `--ssl-key-log-file` (it is
told to accept the certificate with `--ignore-certificate-errors`); tcpdump
captures both ports on `lo`.  The BrowserRecording's `page` is what the page
reported and `served` what the servers counted.  Needs root (tcpdump) and
Debian's chromium and chromedriver.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from inspector.workloads.servers import HOST, LoopThread
from inspector.workloads.tls import write_certificate
from tests.asgi_servers import listening_socket, request_body
from tests.traffic import tcpdump_capture

FETCHES = 5
WS_MESSAGES = 6
ASK_BYTES = 300  # JSON asks of this size; the replies are as long
PAGE_TIMEOUT = 60

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>running</title></head><body>
<script>
const FETCHES = %(fetches)d, WS_MESSAGES = %(ws_messages)d, ASK = %(ask)d;
function ask(n) {
  const text = JSON.stringify({n: n, pad: ""});
  return JSON.stringify({n: n, pad: "x".repeat(ASK - text.length)});
}
async function post(n) {
  const response = await fetch("/chat", {method: "POST", headers: {"content-type": "application/json"}, body: ask(n)});
  return (await response.text()).length;
}
async function run() {
  const replies = [await post(0)];
  replies.push(...await Promise.all(Array.from({length: FETCHES - 1}, (_, i) => post(i + 1))));
  const ws = new WebSocket("wss://127.0.0.1:%(ws_port)d/chat");
  await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = reject; });
  const echoed = [];
  for (let i = 0; i < WS_MESSAGES; i++) {
    const reply = new Promise(resolve => { ws.onmessage = event => resolve(event.data); });
    ws.send(ask(i));
    echoed.push((await reply).length);
  }
  const closed = new Promise(resolve => { ws.onclose = resolve; });
  ws.close(1000, "done");
  await closed;
  document.title = JSON.stringify({replies: replies, echoed: echoed, extensions: ws.extensions});
}
run().catch(error => { document.title = "failed: " + error; });
</script></body></html>
"""


@dataclass
class BrowserRecording:
    path: Path
    keylog: Path
    page_port: int  # hypercorn: the page and POST /chat over HTTP/2
    ws_port: int  # websockets: WSS over HTTP/1.1
    page: dict = field(default_factory=dict)  # what the page reported: reply and echo lengths, extensions
    served: Counter = field(default_factory=Counter)  # what the servers counted


def _page_app(page: bytes, served: Counter):
    async def app(scope, receive, send) -> None:
        body = await request_body(scope, receive, send)
        if body is None:
            return
        served[(scope["http_version"], scope["method"], scope["path"])] += 1
        if scope["path"] == "/chat" and scope["method"] == "POST":
            reply, kind = body.replace(b'"n"', b'"r"'), b"application/json"  # as long as the ask
        elif scope["path"] == "/":
            reply, kind = page, b"text/html; charset=utf-8"
        else:
            await send({"type": "http.response.start", "status": 404, "headers": [(b"content-length", b"0")]})
            await send({"type": "http.response.body", "body": b""})
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", kind), (b"content-length", str(len(reply)).encode()), (b"cache-control", b"no-store")]})
        await send({"type": "http.response.body", "body": reply})
    return app


async def _echo(ws, served: Counter) -> None:
    async for message in ws:
        served["ws messages"] += 1
        await ws.send(message)


def _chromium(keylog: Path, profile: str):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    from tests.dashboard.browser.conftest import CHROMEDRIVER, chromium_options

    options = chromium_options(profile)
    options.add_argument(f"--ssl-key-log-file={keylog}")
    options.add_argument("--ignore-certificate-errors")  # the certificate was made a moment ago, for this run
    return webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)


def record_browser(out_dir: Path) -> BrowserRecording:
    from hypercorn.asyncio import serve
    from hypercorn.config import Config
    from selenium.webdriver.support.ui import WebDriverWait
    from websockets.asyncio.server import serve as ws_serve

    cert, key = write_certificate(out_dir)
    page_socket = listening_socket()
    page_port = page_socket.getsockname()[1]
    recording = BrowserRecording(out_dir / "browser.pcap", out_dir / "browser.keylog", page_port, 0)
    config = Config()
    config.bind = [f"fd://{page_socket.detach()}"]  # hypercorn's from now: it closes it
    config.certfile, config.keyfile = str(cert), str(key)
    config.alpn_protocols = ["h2"]
    config.accesslog = config.errorlog = None
    ws_context = Config()  # only for its ssl context: hypercorn's certificate, ALPN http/1.1
    ws_context.certfile, ws_context.keyfile, ws_context.alpn_protocols = str(cert), str(key), ["http/1.1"]
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    with LoopThread("browser-loop") as loop:
        stop = asyncio.Event()
        async def start_ws():
            return await ws_serve(lambda ws: _echo(ws, recording.served), HOST, 0, ssl=ws_context.create_ssl_context(),
                                  compression="deflate", ping_interval=None)

        ws_server = loop.run(start_ws())
        recording.ws_port = ws_server.sockets[0].getsockname()[1]
        page = (PAGE % {"fetches": FETCHES, "ws_messages": WS_MESSAGES, "ask": ASK_BYTES, "ws_port": recording.ws_port}).encode()
        server = asyncio.run_coroutine_threadsafe(serve(_page_app(page, recording.served), config, shutdown_trigger=stop.wait), loop.loop)
        driver = _chromium(recording.keylog, profile)
        try:
            with tcpdump_capture(recording.path, [page_port, recording.ws_port]):
                driver.get(f"https://127.0.0.1:{page_port}/")
                WebDriverWait(driver, PAGE_TIMEOUT).until(lambda d: d.title != "running")
                title = driver.title
                driver.quit()  # its connections closed inside the capture
                driver = None
        finally:
            if driver is not None:
                driver.quit()
            loop.loop.call_soon_threadsafe(stop.set)
            server.result(timeout=30)
            ws_server.close()
            loop.run(ws_server.wait_closed())
            shutil.rmtree(profile, ignore_errors=True)
    if title.startswith("failed"):
        raise AssertionError(f"the page {title}")
    recording.page = json.loads(title)
    return recording
