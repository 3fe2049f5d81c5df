"""`inspector record SCENARIO`: run a built-in workload on loopback and capture it.

This module joins two layers that know nothing of each other: the workloads
(servers, clients, scenarios: traffic generators that the tests also drive
under tcpdump) and the live capture.  So it sits above both, beside the CLI
that calls it; neither `capture/` nor `workloads/` imports the other.

Every variant of the scenario gets its own server on 127.0.0.1 (so its own
server port), all started before the capture begins; the capture on ``lo``
takes exactly those ports (kernel filter).  The variants then run one after
another, each with its own clients, whose local ports are noted from their
sockets.  When the last connection is closed the capture is stopped and a
JSON sidecar is written next to it (``Path(output).with_suffix(".json")``):

```json
{"format": "inspector-recording/1", "scenario": "chat",
 "parameters": {"messages": 20, "sizes": [120], "rate": null, "poll_interval": null, "sse_drop_after": null},
 "created": "2026-11-25T21:40:00+00:00",
 "variants": [{"name": "rest-keepalive", "protocol": "rest", "server_port": 41234, "client_ports": [51000],
               "messages_sent": {"client": 20, "server": 20}, "payload_bytes": {"client": 2400, "server": 2400}},
              ...],
 "staleness": [{"variant": "rest-polling", "seq": 1, "published_ts": 1.7e9, "received_ts": 1.7e9}, ...],
 "tls": {"keylog": "chat.keylog"}}
```

``protocol`` is ``rest`` (HTTP/1.1 or HTTP/2 request/response, long polling
too), ``sse`` (Server-Sent Events) or ``websocket``.  ``messages_sent``
counts application messages per direction (REST: requests and responses;
SSE: the streams' requests and the events; WebSocket: data messages),
``payload_bytes`` their payload (HTTP body bytes as sent; an event's data;
WebSocket data payload before compression), both from the clients' ledgers
and checked against the servers' own logs.  ``staleness`` has one entry per
update and variant of the push scenarios.

The ``sse`` variant's entry also has ``"sse": {"streams": [...]}``, one entry
per event stream (so per connection), in order:

```json
{"client_port": 51000, "last_event_id": null, "opened_ts": 1.7e9, "ended_ts": 1.7e9,
 "events": [[1, 1.7e9], ...], "keepalives": 0, "body_bytes": 2480, "dropped": true}
```

``last_event_id`` is the ``Last-Event-ID`` the client sent (null: none), so a
stream after the first is a reconnection: dropped at the ``ended_ts`` of the
one before, resumed at its own ``opened_ts`` (when its response's head came),
after that id.  ``events`` are the client's own (seq, received time) of each
event it dispatched; ``keepalives`` (comments), ``body_bytes`` (the
event-stream text, before chunk framing) and ``dropped`` (the server ended
the stream and closed the connection mid-feed) are the server's account.
``tls`` is there only for ``--tls`` (every variant over TLS: HTTPS, WSS, with a
certificate made for the recording, see `inspector.workloads.tls`): ``keylog`` names
the NSS key log with the secrets of every session, written next to the capture
(``Path(output).with_suffix(".keylog")``), so that the recording can be decrypted.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from inspector.capture.live import CaptureStats, LiveCapture
from inspector.capture.sidecar import SIDECAR_FORMAT, keylog_path, sidecar_path
from inspector.errors import RecordError
from inspector.workloads.scenarios import SCENARIOS
from inspector.workloads.servers import LoopThread
from inspector.workloads.tls import TlsSetup

INTERFACE = "lo"
SETTLE_S = 0.3  # after the last connection closed, for its last packets to reach the capture socket


@dataclass(frozen=True)
class RecordResult:
    output: Path
    sidecar_path: Path
    sidecar: dict
    stats: CaptureStats
    keylog: Path | None = None  # --tls: the key log of its sessions


def parse_sizes(text: str | None) -> tuple[int, ...] | None:
    """``"100,1000,70000"`` -> (100, 1000, 70000); RecordError on anything else."""
    if text is None:
        return None
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise RecordError(f"--size {text!r}: expected BYTES or BYTES,BYTES,...") from None
    return sizes


def parse_variants(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise RecordError("--variants: expected names such as rest-keepalive,ws")
    return names


def record(
    scenario: str,
    output: str | Path,
    *,
    messages: int | None = None,
    sizes: tuple[int, ...] | None = None,
    rate: float | None = None,
    poll_interval: float | None = None,
    sse_drop_after: int | None = None,
    variants: list[str] | None = None,
    on_variant: Callable[[dict], None] | None = None,
    tls: bool = False,
) -> RecordResult:
    """Record `scenario` into `output` (pcap, or pcapng by extension) and its sidecar
    (and with `tls`, every variant over TLS, the key log next to the capture).

    `on_variant` is called with each variant's sidecar entry when it is done.
    Raises RecordError for bad parameters or a workload that misbehaved, and
    CaptureError when the capture cannot run (no privileges, ...).
    """
    if scenario not in SCENARIOS:
        raise RecordError(f"no scenario {scenario!r} (choose from {', '.join(SCENARIOS)})")
    scen = SCENARIOS[scenario]
    params = scen.parameters(messages, sizes, rate, poll_interval, sse_drop_after)
    chosen = scen.check_variants(variants)
    output = Path(output)
    side = sidecar_path(output)
    if side == output:
        raise RecordError(f"{output}: the capture file cannot end in .json (the sidecar goes there)")
    keylog = keylog_path(output)
    if tls and keylog == output:
        raise RecordError(f"{output}: the capture file cannot end in .keylog with --tls (the key log goes there)")
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")

    entries: list[dict] = []
    staleness: list[dict] = []
    with LoopThread(name="inspector-record") as loop, tempfile.TemporaryDirectory(prefix="inspector-record-") as scratch:
        setup = TlsSetup(Path(scratch), keylog) if tls else None  # the certificate lives as long as the servers
        runs = [scen.make_run(variant, params, setup) for variant in chosen]
        try:
            for run in runs:
                loop.run(run.server.start())
            capture = LiveCapture(output, interface=INTERFACE, ports=sorted(r.server.port for r in runs))
            capture.start()
            try:
                for run in runs:
                    loop.run(scen.run(run), timeout=None)
                    _check_server_log(run)
                    entry = _variant_entry(run)
                    entries.append(entry)
                    staleness.extend(_staleness_entries(run))
                    if on_variant is not None:
                        on_variant(entry)
                time.sleep(SETTLE_S)
            finally:
                stats = capture.stop()
        finally:
            for run in runs:
                try:
                    loop.run(run.server.stop())
                except Exception:
                    pass

    sidecar = {
        "format": SIDECAR_FORMAT,
        "scenario": scen.name,
        "parameters": params.as_dict(),
        "created": created,
        "variants": entries,
        "staleness": staleness,
    }
    if tls:
        sidecar["tls"] = {"keylog": keylog.name}
    side.write_text(json.dumps(sidecar, indent=1) + "\n", encoding="utf-8")
    return RecordResult(output, side, sidecar, stats, keylog if tls else None)


def _variant_entry(run) -> dict:
    ledger = run.ledger
    entry = {
        "name": run.variant.name,
        "protocol": run.variant.protocol,
        "server_port": run.server.port,
        "client_ports": list(ledger.client_ports),
        "messages_sent": dict(ledger.messages_sent),
        "payload_bytes": dict(ledger.payload_bytes),
    }
    if run.variant.protocol == "sse":
        entry["sse"] = {"streams": [
            {"client_port": seen.client_port, "last_event_id": seen.last_event_id, "opened_ts": seen.opened_ts, "ended_ts": seen.ended_ts,
             "events": [list(event) for event in seen.events], "keepalives": served.keepalives, "body_bytes": served.body_bytes,
             "dropped": served.dropped}
            for seen, served in zip(run.streams, run.server.streams)
        ]}
    return entry


def _staleness_entries(run) -> list[dict]:
    if run.feed is None:
        return []
    published = {u.seq: u.published_ts for u in run.feed.updates}
    return [
        {"variant": run.variant.name, "seq": seq, "published_ts": published[seq], "received_ts": received}
        for seq, received in run.received
    ]


def _check_server_log(run) -> None:
    """The server saw the connections and messages the clients account for."""
    peers = run.server.log.peers
    ledger = run.ledger
    name = run.variant.name
    if set(peers) != set(ledger.client_ports):
        raise RecordError(f"{name}: the server saw client ports {sorted(peers)}, the clients used {ledger.client_ports}")
    seen = {
        "client": (sum(p.received for p in peers.values()), sum(p.received_bytes for p in peers.values())),
        "server": (sum(p.sent for p in peers.values()), sum(p.sent_bytes for p in peers.values())),
    }
    for side, (count, size) in seen.items():
        if (count, size) != (ledger.messages_sent[side], ledger.payload_bytes[side]):
            raise RecordError(
                f"{name}: {side} messages by the server's log {count} ({size} bytes), "
                f"by the clients' {ledger.messages_sent[side]} ({ledger.payload_bytes[side]} bytes)"
            )
    if run.variant.protocol == "sse":
        served = [(s.client_port, s.last_event_id, s.events) for s in run.server.streams]
        seen = [(s.client_port, s.last_event_id, len(s.events)) for s in run.streams]
        if served != seen:
            raise RecordError(f"{name}: the server served the streams (port, Last-Event-ID, events) {served}, the client read {seen}")
