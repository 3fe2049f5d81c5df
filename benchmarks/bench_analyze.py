#!/usr/bin/env python3
"""Benchmark `inspector analyze` against tshark on a >= 1,000,000-packet capture.

    python benchmarks/bench_analyze.py                 # as root, from anywhere
    python benchmarks/bench_analyze.py --packets 200000 --repeat 1   # quick

What it does (see benchmarks/README.md for the details):

1. Capture.  Records a base capture of REAL loopback traffic with tcpdump
   (``tests/traffic.py``: aiohttp REST server, ``websockets`` servers with and
   without permessage-deflate, real clients, all on 127.0.0.1): REST
   keep-alive requests, REST with one connection per request, WebSocket echo
   messages (7-bit and 16-bit payload lengths, text and binary, plain and
   compressed).  The big file is that base capture repeated until it holds
   at least --packets packets; each repetition's TCP connections get their
   own client ports (the client port is rewritten in every TCP header, the
   TCP checksum is updated incrementally) and timestamps are shifted so the
   repetitions follow each other.  Files live in benchmarks/data/ (git
   ignores it) and are reused on later runs.
2. Speed.  Times `inspector analyze FILE` and an equivalent tshark field
   extraction on the same file, --repeat times each (interleaved), under
   /usr/bin/time for peak RSS.
3. Flatness.  Runs `inspector analyze` on the first packet (its start-up
   time), the first 100,000 packets, and 25 %, 50 % and 100 % of the packets
   (truncated copies by packet count): memory, and time per packet with the
   start-up subtracted.
Also prints inspector/tshark wall ratios, with default jobs and --jobs 1,
and CPU seconds per 1M packets of each.

Needs root (tcpdump) only when it has to record the base capture.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import random
import re
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib.metadata import version as pkg_version
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = HERE / "data"
sys.path.insert(0, str(ROOT))

from tests import traffic  # noqa: E402  (real servers + tcpdump_capture)

GNU_TIME = "/usr/bin/time"
FLAT_FIRST_POINT = 100_000  # the smallest capture of the time-per-packet series
BUILD_VERSION = 2  # bump when the way the big file is made changes

# --- the base workload ---------------------------------------------------------


@dataclass
class Workload:
    """How much traffic the base recording makes (all scaled by --base-scale)."""

    ka_sessions: int = 8        # keep-alive aiohttp sessions (1 connection each)
    ka_requests: int = 2000     # requests per keep-alive session
    pr_workers: int = 8         # concurrent one-connection-per-request clients
    pr_requests: int = 2000     # requests in total, each on its own connection
    ws_conns: int = 4           # WebSocket connections per server (plain, deflate)
    ws_messages: int = 2500     # client messages per WebSocket connection

    def scaled(self, k: float) -> "Workload":
        return Workload(
            self.ka_sessions, max(1, round(self.ka_requests * k)),
            self.pr_workers, max(self.pr_workers, round(self.pr_requests * k)),
            self.ws_conns, max(1, round(self.ws_messages * k)),
        )


def _rest_request(rng: random.Random, i: int) -> tuple[str, str, Any]:
    """A small JSON GET or POST."""
    r = rng.random()
    if r < 0.45:
        return "GET", f"/api/items/{rng.randint(1, 5)}", None
    if r < 0.65:
        return "GET", "/api/items", None
    if r < 0.70:
        return "GET", f"/api/items/{rng.randint(100, 999)}", None  # 404
    return "POST", "/api/echo", {"n": i, "user": f"u{rng.randint(1, 999)}", "ok": rng.random() < 0.5}


_WORDS = ["alpha", "beta", "gamma", "delta", "price", "qty", "symbol", "update", "tick", "order"]


def _ws_message(rng: random.Random, i: int) -> str | bytes:
    """Mostly small JSON-ish text (7-bit length), some 16-bit-length text and
    binary messages (126..8000 bytes).  Never starts with "!" (server commands)."""
    r = rng.random()
    if r < 0.82:
        return json.dumps({"seq": i, "op": rng.choice(_WORDS), "v": rng.randint(0, 10**6)})
    if r < 0.94:
        n = rng.randint(126, 4000)
        text = ""
        while len(text) < n:
            text += rng.choice(_WORDS) + " "
        return "{" + text[: n - 1]
    return rng.randbytes(rng.randint(200, 8000))


async def _run_workload(rest_port: int, ws_ports: dict[str, int], w: Workload) -> dict[str, Any]:
    import aiohttp
    from websockets.asyncio.client import connect as ws_connect

    base = f"http://{traffic.HOST}:{rest_port}"
    counts = {"rest_keepalive": 0, "rest_per_request": 0, "ws_client_messages": 0,
              "ws_server_messages": 0, "ws_connections": 0, "rest_connections": 0}

    def conn_counter() -> tuple[aiohttp.TraceConfig, list[int]]:
        """Counts the TCP connections a session really opens."""
        made = [0]
        tc = aiohttp.TraceConfig()

        async def created(session: Any, ctx: Any, params: Any) -> None:
            made[0] += 1

        tc.on_connection_create_end.append(created)
        return tc, made

    async def keepalive(sid: int) -> None:
        rng = random.Random(1000 + sid)
        conn = aiohttp.TCPConnector(limit=1, force_close=False)
        tc, made = conn_counter()
        async with aiohttp.ClientSession(base, connector=conn, trace_configs=[tc]) as s:
            for i in range(w.ka_requests):
                method, url, body = _rest_request(rng, i)
                async with s.request(method, url, json=body) as r:
                    await r.read()
                counts["rest_keepalive"] += 1
        assert made[0] == 1, f"keep-alive session opened {made[0]} connections"
        counts["rest_connections"] += made[0]

    async def per_request(worker: int, n: int) -> None:
        rng = random.Random(2000 + worker)
        conn = aiohttp.TCPConnector(force_close=True)  # one TCP connection per request
        tc, made = conn_counter()
        async with aiohttp.ClientSession(base, connector=conn, trace_configs=[tc]) as s:
            for i in range(n):
                method, url, body = _rest_request(rng, i)
                async with s.request(method, url, json=body) as r:
                    await r.read()
                counts["rest_per_request"] += 1
        assert made[0] == n, f"{n} one-connection requests opened {made[0]} connections"
        counts["rest_connections"] += made[0]

    async def ws_client(kind: str, cid: int) -> None:
        rng = random.Random(3000 + cid + (100 if kind == "deflate" else 0))
        compression = "deflate" if kind == "deflate" else None
        async with ws_connect(f"ws://{traffic.HOST}:{ws_ports[kind]}/", compression=compression,
                              ping_interval=None, max_size=2**20) as ws:
            counts["ws_connections"] += 1
            for i in range(w.ws_messages):
                msg = _ws_message(rng, i)
                await ws.send(msg)
                counts["ws_client_messages"] += 1
                assert await ws.recv() == msg
                counts["ws_server_messages"] += 1
            await ws.close(1000, "done")

    share = [w.pr_requests // w.pr_workers + (1 if k < w.pr_requests % w.pr_workers else 0)
             for k in range(w.pr_workers)]
    await asyncio.gather(
        *(keepalive(k) for k in range(w.ka_sessions)),
        *(per_request(k, share[k]) for k in range(w.pr_workers)),
        *(ws_client(kind, c) for kind in ("plain", "deflate") for c in range(w.ws_conns)),
    )
    return counts


def record_base(path: Path, w: Workload) -> dict[str, Any]:
    """Record the base capture with real servers and clients; return its facts."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.unlink()
    t0 = time.monotonic()
    ws_kw = [{"compression": None}, {"compression": "deflate"}]
    with traffic.servers(rest=True, ws=ws_kw) as (lt, rest, wss):
        assert rest is not None
        ws_ports = {"plain": wss[0].port, "deflate": wss[1].port}
        ports = [rest.port, wss[0].port, wss[1].port]
        # A bigger ring than the default: this is a sustained burst.
        with traffic.tcpdump_capture(path, ports, buffer_kib=262144) as cap:
            counts = lt.run(_run_workload(rest.port, ws_ports, w), timeout=1800)
        served = len(rest.log)
        statuses: dict[str, int] = {}
        for r in rest.log:
            statuses[str(r.status)] = statuses.get(str(r.status), 0) + 1
        ws_received = sum(len(c.received) for s in wss for c in s.connections)
        rest_ports = {r.client_port for r in rest.log}
    rest_total = counts["rest_keepalive"] + counts["rest_per_request"]
    assert served == rest_total, (served, rest_total)
    assert ws_received == counts["ws_client_messages"], (ws_received, counts)
    return {
        "workload": w.__dict__,
        "counts": counts,
        "rest_requests": rest_total,
        "rest_statuses": statuses,
        "rest_connections": counts["rest_connections"],
        # The kernel reuses ephemeral ports on loopback (tcp_tw_reuse), so
        # there can be fewer distinct client ports than connections.
        "rest_client_ports": len(rest_ports),
        "http_requests": rest_total + counts["ws_connections"],  # + WS handshakes
        "ws_messages": counts["ws_client_messages"] + counts["ws_server_messages"],
        "tcp_connections": counts["rest_connections"] + counts["ws_connections"],
        "server_ports": ports,
        "tcpdump_captured": cap.packets_captured,
        "tcpdump_dropped": cap.packets_dropped,
        "link_type": cap.link_type,
        "record_seconds": round(time.monotonic() - t0, 1),
    }


# --- pcap reading / rewriting -------------------------------------------------------

_MAGIC = {
    b"\xd4\xc3\xb2\xa1": ("<", 1_000_000),
    b"\xa1\xb2\xc3\xd4": (">", 1_000_000),
    b"\x4d\x3c\xb2\xa1": ("<", 1_000_000_000),
    b"\xa1\xb2\x3c\x4d": (">", 1_000_000_000),
}


def _open_pcap(path: Path) -> tuple[bytes, str, int, int, bytes]:
    """(global header, endian, ticks per second, link type, records)."""
    raw = path.read_bytes()
    if raw[:4] not in _MAGIC:
        raise SystemExit(f"{path}: not a classic pcap file")
    endian, tps = _MAGIC[raw[:4]]
    linktype = struct.unpack(endian + "I", raw[20:24])[0]
    return raw[:24], endian, tps, linktype, raw


def _csum_update(hc: int, old: int, new: int) -> int:
    """RFC 1624 incremental update of a 16-bit one's complement checksum."""
    s = (~hc & 0xFFFF) + (~old & 0xFFFF) + new
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def build_big(base: Path, out: Path, target: int, server_ports: list[int], gap_s: float = 1.0) -> dict[str, Any]:
    """Repeat `base` until >= `target` packets, with fresh client ports per repetition."""
    header, e, tps, linktype, raw = _open_pcap(base)
    if linktype != 1:
        raise SystemExit(f"{base}: link type {linktype}, expected 1 (Ethernet, tcpdump -i lo)")
    rec_hdr = struct.Struct(e + "IIII")
    servers = set(server_ports)
    # Parse the base once: per packet (ticks, orig_len, bytes, client-port offset,
    # client-ip offset, tcp checksum offset, original client port).
    pkts: list[tuple[int, int, bytes, int, int, int, int]] = []
    off = 24
    while off + 16 <= len(raw):
        sec, frac, incl, orig = rec_hdr.unpack_from(raw, off)
        data = raw[off + 16: off + 16 + incl]
        off += 16 + incl
        if len(data) < incl:
            break  # tcpdump cut short
        ticks = sec * tps + frac
        cp_off = ip_off = ck_off = -1
        port = -1
        if len(data) >= 34 and data[12:14] == b"\x08\x00" and data[23] == 6:
            ihl = (data[14] & 0x0F) * 4
            t = 14 + ihl
            if len(data) >= t + 18:
                sport, dport = struct.unpack_from("!HH", data, t)
                if dport in servers:       # client -> server
                    cp_off, ip_off, port = t, 14 + 12, sport
                elif sport in servers:     # server -> client
                    cp_off, ip_off, port = t + 2, 14 + 16, dport
                ck_off = t + 16
        pkts.append((ticks, orig, data, cp_off, ip_off, ck_off, port))
    if not pkts:
        raise SystemExit(f"{base}: no packets")
    n_base = len(pkts)
    base_ports = sorted({p[6] for p in pkts if p[6] >= 0})
    reps = math.ceil(target / n_base)
    t_first = min(p[0] for p in pkts)
    t_last = max(p[0] for p in pkts)
    period = (t_last - t_first) + int(gap_s * tps)

    # Client port pool: 1024..65535 without the server ports.  When it runs out
    # the client address moves on (127.0.0.1 -> 127.0.0.2 ...), so every
    # repetition's connections have their own 4-tuple.
    pool = [p for p in range(1024, 65536) if p not in servers]
    needed = reps * len(base_ports)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    written = 0
    pack_rec = rec_hdr.pack
    with open(tmp, "wb", buffering=8 << 20) as f:
        f.write(header)
        for r in range(reps):
            shift = r * period
            mapping: dict[int, tuple[int, int]] = {}
            for k, p in enumerate(base_ports):
                slot = r * len(base_ports) + k
                mapping[p] = (pool[slot % len(pool)], slot // len(pool))  # (port, ip bump)
            chunks = []
            for ticks, orig, data, cp_off, ip_off, ck_off, port in pkts:
                ticks += shift
                if cp_off >= 0:
                    new_port, bump = mapping[port]
                    b = bytearray(data)
                    ck = (b[ck_off] << 8) | b[ck_off + 1]
                    ck = _csum_update(ck, port, new_port)
                    b[cp_off] = new_port >> 8
                    b[cp_off + 1] = new_port & 0xFF
                    if bump:
                        word_off = ip_off + 2  # low 16 bits of the client IPv4 address
                        old_w = (b[word_off] << 8) | b[word_off + 1]
                        new_w = (old_w + bump) & 0xFFFF
                        b[word_off] = new_w >> 8
                        b[word_off + 1] = new_w & 0xFF
                        ck = _csum_update(ck, old_w, new_w)  # TCP pseudo-header
                        ih = (b[24] << 8) | b[25]  # IPv4 header checksum
                        ih = _csum_update(ih, old_w, new_w)
                        b[24] = ih >> 8
                        b[25] = ih & 0xFF
                    b[ck_off] = ck >> 8
                    b[ck_off + 1] = ck & 0xFF
                    data = bytes(b)
                chunks.append(pack_rec(ticks // tps, ticks % tps, len(data), orig))
                chunks.append(data)
            f.write(b"".join(chunks))
            written += n_base
    tmp.replace(out)
    return {
        "base_packets": n_base,
        "repetitions": reps,
        "packets": written,
        "client_ports_per_repetition": len(base_ports),
        "client_ports_total": needed,
        "client_ip_bumps": (needed - 1) // len(pool),
        "base_span_s": round((t_last - t_first) / tps, 2),
        "period_s": round(period / tps, 2),
        "file_bytes": out.stat().st_size,
    }


def truncate_copies(src: Path, outs: list[tuple[Path, int]]) -> None:
    """Write the first n packets of `src` to each (path, n) in one pass."""
    header, e, _tps, _lt, raw = _open_pcap(src)
    rec_hdr = struct.Struct(e + "IIII")
    limits = sorted(outs, key=lambda x: x[1])
    # Byte offset of the end of packet n for each n.
    ends: dict[int, int] = {}
    want = sorted({n for _, n in limits})
    off, count, wi = 24, 0, 0
    while wi < len(want) and off + 16 <= len(raw):
        incl = rec_hdr.unpack_from(raw, off)[2]
        off += 16 + incl
        count += 1
        while wi < len(want) and count == want[wi]:
            ends[want[wi]] = off
            wi += 1
    for path, n in limits:
        end = ends.get(n, len(raw))
        with open(path, "wb") as f:
            f.write(raw[:end])


def capinfos_count(path: Path) -> tuple[int, str]:
    """Packet count as wiretap (tshark's reader) sees it, and any complaint."""
    p = subprocess.run(["capinfos", "-c", "-M", "-T", "-r", str(path)], capture_output=True, text=True)
    err = "\n".join(l for l in p.stderr.splitlines() if "dangerous" not in l and "Running as user" not in l)
    count = int(p.stdout.strip().split("\t")[-1]) if p.returncode == 0 else -1
    return count, err.strip()


# --- measuring -----------------------------------------------------------------------------


@dataclass
class Run:
    wall: float
    rss_kib: int     # peak RSS of the biggest single process (GNU time %M, exact)
    cpu: float       # user + system CPU seconds of the command and its children
    rc: int
    stderr: str
    tree_pss_kib: int = 0  # peak sum of PSS over the process tree (sampled)
    tree_rss_kib: int = 0  # peak sum of RSS over the process tree (sampled)
    procs: int = 1         # most processes seen at once


SAMPLE_EVERY_S = 0.1


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            for tid in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{tid}/children") as f:
                    kids = [int(x) for x in f.read().split()]
                out += kids
                todo += kids
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            pass
    return out


def _rollup(pid: int) -> tuple[int, int]:
    """(Rss, Pss) in KiB from /proc/PID/smaps_rollup; (0, 0) if gone."""
    rss = pss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Rss:"):
                    rss = int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss = int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return rss, pss


def measure(cmd: list[str], stdout_path: str = os.devnull) -> Run:
    """Run `cmd` under GNU time.  Wall clock from perf_counter; exact peak RSS
    of the biggest process from %M (wait4 rusage: the max over the command and
    its children, NOT their sum); the tree's summed PSS/RSS (worker processes
    included, shared pages split / double counted) sampled every 0.1 s."""
    import threading

    with tempfile.NamedTemporaryFile("r", suffix=".time") as tf, open(stdout_path, "wb") as out:
        t0 = time.perf_counter()
        p = subprocess.Popen([GNU_TIME, "-f", "%e %M %U %S", "-o", tf.name, *cmd],
                             stdout=out, stderr=subprocess.PIPE, text=True, errors="replace")
        peak = {"pss": 0, "rss": 0, "procs": 1}
        done = threading.Event()

        def sample() -> None:
            while not done.wait(SAMPLE_EVERY_S):
                pids = _descendants(p.pid)  # GNU time itself left out
                tot_rss = tot_pss = 0
                for pid in pids:
                    rss, pss = _rollup(pid)
                    tot_rss += rss
                    tot_pss += pss
                peak["rss"] = max(peak["rss"], tot_rss)
                peak["pss"] = max(peak["pss"], tot_pss)
                peak["procs"] = max(peak["procs"], len(pids))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, err_text = p.communicate()
        wall = time.perf_counter() - t0
        done.set()
        sampler.join()
        fields = tf.read().strip().splitlines()[-1].split()
    _e, rss, user, sys_ = fields[-4:]
    err = "\n".join(l for l in err_text.splitlines()
                    if "Running as user" not in l and "could be dangerous" not in l)
    return Run(wall, int(rss), float(user) + float(sys_), p.returncode, err.strip(),
               max(peak["pss"], 0), max(peak["rss"], 0), peak["procs"])


def ensure_gnu_time() -> None:
    if os.path.exists(GNU_TIME):
        return
    print("installing GNU time (apt-get install -y time) ...", flush=True)
    subprocess.run(["apt-get", "install", "-y", "-q", "time"], check=True,
                   stdout=subprocess.DEVNULL)


INSPECTOR_EXTRA: list[str] = []  # --inspector-args


def inspector_cmd(path: Path, jobs: int | None = None) -> list[str]:
    exe = shutil.which("inspector")
    head = [exe, "analyze"] if exe else [sys.executable, "-m", "inspector.cli", "analyze"]
    # --no-cache: every run analyses (a cache hit would skip the work being timed), into a
    # temporary store (streamed as the rows are made, then read for the summary by DuckDB)
    # that is removed at the end: the whole of what a user's `inspector analyze` does, but
    # the capture's sha256 for the cache key.
    return head + ["--no-cache"] + INSPECTOR_EXTRA + (["--jobs", str(jobs)] if jobs else []) + [str(path)]


def inspector_fingerprint() -> str:
    """git HEAD + a hash of the working-tree inspector/ sources (others may be
    editing them while the benchmark runs)."""
    import hashlib

    h = hashlib.sha256()
    for f in sorted((ROOT / "inspector").rglob("*.py")):
        h.update(str(f.relative_to(ROOT)).encode())
        h.update(f.read_bytes())
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True).stdout.strip()
    except OSError:
        head = "?"
    return f"HEAD {head}, inspector/*.py sha256 {h.hexdigest()[:12]}"


def tshark_cmd(path: Path, server_ports: list[int]) -> list[str]:
    cmd = ["tshark", "-r", str(path)]
    for p in server_ports:  # the servers listen on ephemeral ports
        cmd += ["-d", f"tcp.port=={p},http"]
    cmd += ["-Y", "http or websocket", "-T", "fields",
            "-e", "frame.number", "-e", "tcp.stream", "-e", "http.request.method",
            "-e", "http.request.uri", "-e", "http.response.code",
            "-e", "websocket.opcode", "-e", "websocket.payload_length"]
    return cmd


def mib(kib: int) -> str:
    return f"{kib / 1024:,.0f} MiB"


def summary_counts(text: str) -> tuple[int, int, int] | None:
    """(connections, REST exchanges, WebSocket messages) from the summary's
    counts line, e.g. "connections 2  REST exchanges 0 (...)  WebSocket
    connections 2, messages 50"; None when the format is not recognised."""
    conns = re.search(r"^connections (\d+)", text, re.M)
    rest = re.search(r"REST exchanges (\d+)", text)
    ws = re.search(r"WebSocket (?:connections \d+, )?messages (\d+)", text)
    if not (conns and rest and ws):
        return None
    return int(conns.group(1)), int(rest.group(1)), int(ws.group(1))


# --- main ------------------------------------------------------------------------------------


def prepare(args) -> tuple[Path, dict[str, Any]]:
    """The big capture and its metadata: reuse, or record + build."""
    big = DATA / f"bench-{args.packets}.pcap"
    meta_path = big.with_suffix(".json")
    base = DATA / "base.pcap"
    base_meta_path = DATA / "base.json"
    meta: dict[str, Any] | None = None
    if big.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("build_version") != BUILD_VERSION or meta.get("big", {}).get("file_bytes") != big.stat().st_size \
                or meta.get("base", {}).get("base_scale") != args.base_scale:
            meta = None
    if meta is not None and not args.rebuild:
        print(f"reusing {big.relative_to(ROOT)} (made {meta['made']}; --rebuild to make it again)")
        return big, meta
    if args.skip_build:
        raise SystemExit(f"--skip-build: {big} (with {meta_path.name}) is missing or stale")

    base_meta: dict[str, Any] | None = None
    if base.exists() and base_meta_path.exists() and not args.rebuild:
        base_meta = json.loads(base_meta_path.read_text())
        if base_meta.get("base_scale") != args.base_scale:
            base_meta = None
        else:
            print(f"reusing base capture {base.relative_to(ROOT)}")
    if base_meta is None:
        if os.geteuid() != 0:
            raise SystemExit("recording the base capture needs root (tcpdump)")
        w = Workload().scaled(args.base_scale)
        print(f"recording base capture {base.relative_to(ROOT)} with tcpdump on lo: "
              f"{w.ka_sessions}x{w.ka_requests} keep-alive REST requests, "
              f"{w.pr_requests} one-connection REST requests ({w.pr_workers} concurrent), "
              f"2x{w.ws_conns} WebSocket connections (plain, deflate) x {w.ws_messages} echoed messages ...",
              flush=True)
        base_meta = record_base(base, w)
        base_meta["base_scale"] = args.base_scale
        base_meta["tools"] = {
            "python": platform.python_version(), "aiohttp": pkg_version("aiohttp"),
            "websockets": pkg_version("websockets"),
            "tcpdump": subprocess.run(["tcpdump", "--version"], capture_output=True, text=True).stdout.splitlines()[0],
        }
        base_meta_path.write_text(json.dumps(base_meta, indent=1))
        print(f"  recorded in {base_meta['record_seconds']} s: tcpdump captured {base_meta['tcpdump_captured']} "
              f"packets, dropped {base_meta['tcpdump_dropped']}")

    t0 = time.monotonic()
    print(f"building {big.relative_to(ROOT)} (>= {args.packets:,} packets) ...", flush=True)
    info = build_big(base, big, args.packets, base_meta["server_ports"])
    build_s = time.monotonic() - t0
    count, err = capinfos_count(big)
    if count != info["packets"] or err:
        raise SystemExit(f"capinfos reads {count} packets of {info['packets']} written: {err}")
    meta = {
        "build_version": BUILD_VERSION,
        "made": time.strftime("%Y-%m-%d %H:%M:%S"),
        "base": base_meta,
        "big": {**info, "build_seconds": round(build_s, 1), "capinfos_packets": count},
    }
    meta_path.write_text(json.dumps(meta, indent=1))
    return big, meta


def describe(meta: dict[str, Any], big: Path) -> None:
    b, g = meta["base"], meta["big"]
    w = b["workload"]
    print()
    print("== capture ==")
    print(f"file            {big.relative_to(ROOT)}  {g['file_bytes'] / 2**20:,.1f} MiB, {g['packets']:,} packets "
          f"(capinfos: {g['capinfos_packets']:,}, no errors)")
    print(f"made from       benchmarks/data/base.pcap: {g['base_packets']:,} packets of real loopback traffic "
          f"recorded by tcpdump in {b['record_seconds']} s (link type {b['link_type']}, "
          f"{b['tcpdump_dropped']} dropped)")
    print(f"base traffic    REST: {w['ka_sessions']} keep-alive connections x {w['ka_requests']} requests + "
          f"{b['counts']['rest_per_request']} one-connection-per-request requests (small JSON GET/POST, "
          f"statuses {b['rest_statuses']}); WebSocket: {b['counts']['ws_connections']} connections "
          f"(half permessage-deflate), {b['ws_messages']:,} echoed messages "
          f"(~82% small JSON text, ~12% 126-4000 B text, ~6% 200-8000 B binary)")
    print(f"                servers on 127.0.0.1 ports {b['server_ports']} (REST, WS plain, WS deflate); "
          f"{b['rest_connections']:,} REST connections on {b['rest_client_ports']:,} client ports "
          f"(the kernel reuses loopback ephemeral ports, so some 4-tuples carry several connections, as in real captures)")
    print(f"repetition      x{g['repetitions']}, each with {g['client_ports_per_repetition']} fresh client ports "
          f"(TCP checksum updated incrementally; client IP bumps: {g['client_ip_bumps']}); "
          f"timestamps shifted by {g['period_s']} s per repetition (base span {g['base_span_s']} s + 1 s gap)")
    reps = g["repetitions"]
    print(f"ground truth    {b['tcp_connections'] * reps:,} TCP connections, {b['http_requests'] * reps:,} HTTP "
          f"requests (WS handshakes included), {b['ws_messages'] * reps:,} WebSocket data messages")


def _run_line(label: str, r: Run) -> str:
    status = "ok" if r.rc == 0 else f"EXIT {r.rc}"
    return (f"{label}  wall {r.wall:7.2f} s  cpu {r.cpu:7.2f} s  peak RSS {mib(r.rss_kib):>9s} (biggest process)  "
            f"tree PSS {mib(r.tree_pss_kib):>9s} / RSS {mib(r.tree_rss_kib):>9s} ({r.procs} proc)  {status}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--packets", type=int, default=1_000_000, help="minimum packets in the big capture (default 1,000,000)")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs of each tool on the full file (default 3)")
    ap.add_argument("--flat-repeat", type=int, default=1, help="runs per point of the 25/50/100%% flatness series, best kept (default 1)")
    ap.add_argument("--keep", action="store_true", help="keep the truncated 25/50%% copies and the inspector summaries in benchmarks/data/ (the big capture and the base recording are always kept, for reuse)")
    ap.add_argument("--skip-build", action="store_true", help="never record or build: use the capture already in benchmarks/data/, fail if it is missing")
    ap.add_argument("--rebuild", action="store_true", help="record the base capture and build the big file again even if present")
    ap.add_argument("--skip-flat", action="store_true", help="skip the 25/50/100%% memory flatness series")
    ap.add_argument("--base-scale", type=float, default=1.0, help="scale the base recording's workload (default 1.0: ~90k packets, ~12 s)")
    ap.add_argument("--only-default", action="store_true", help="time only `inspector analyze` with default jobs: no tshark, "
                    "no --jobs 1 (the 20M-packet memory run)")
    ap.add_argument("--inspector-args", default="", metavar="ARGS", help='extra arguments for `inspector analyze`, e.g. "--jobs 1"')
    args = ap.parse_args(argv)
    INSPECTOR_EXTRA[:] = args.inspector_args.split()

    t_start = time.monotonic()
    ensure_gnu_time()
    big, meta = prepare(args)
    describe(meta, big)
    n_total = meta["big"]["packets"]
    b = meta["base"]
    reps = meta["big"]["repetitions"]
    fp_start = inspector_fingerprint()

    ins_cmd = inspector_cmd(big)
    tsh_cmd = tshark_cmd(big, b["server_ports"])
    print()
    print(f"== speed: same file, runs interleaved ({os.cpu_count()} cores, shared with other work) ==")
    print(f"inspector ({fp_start}):")
    print("  " + " ".join(ins_cmd) + " > /dev/null")
    print("tshark (-d: the servers listen on ephemeral ports):")
    print("  " + " ".join(tsh_cmd) + " > /dev/null")
    ins1_cmd = inspector_cmd(big, jobs=1)
    print("inspector in one process:")
    print("  " + " ".join(ins1_cmd) + " > /dev/null")
    runs: dict[str, list[Run]] = {"inspector": [], "inspector-j1": [], "tshark": []}
    failures: list[str] = []
    fp_seen = fp_start
    tools = (("inspector", ins_cmd), ("inspector-j1", ins1_cmd), ("tshark", tsh_cmd))
    if args.only_default:
        tools = tools[:1]
    for i in range(args.repeat):
        for name, cmd in tools:
            if name != "tshark" and (fp := inspector_fingerprint()) != fp_seen:
                print(f"  NOTE: inspector sources changed, now {fp}")
                fp_seen = fp
            r = measure(cmd)
            runs[name].append(r)
            print(_run_line(f"  run {i + 1}/{args.repeat} {name:12s}", r), flush=True)
            if r.rc != 0 or (name == "tshark" and r.stderr):
                failures.append(f"{name} run {i + 1} (exit {r.rc}):\n{r.stderr}")
                print("    stderr: " + r.stderr[-3000:].replace("\n", "\n    "))
            elif r.stderr:
                print("    stderr: " + r.stderr[:500].replace("\n", "\n    "))

    # Flatness: 25 / 50 / 100 % of the packets, inspector only.  Its stdout
    # (the summary, well under 2 KB) goes to a file to check the counts.
    flat: list[tuple[int, int, float, Run, tuple[int, int, int] | None]] = []
    tmp_files: list[Path] = []
    if not args.skip_flat:
        print()
        print(f"== flatness: inspector analyze on the first packet (start-up), the first {FLAT_FIRST_POINT:,}, and 25/50/100% of the packets ==")
        # A 1-packet file measures start-up (imports, the summary): time per packet is
        # shown with it subtracted, so that the series says whether the work per packet
        # stays flat from 100k packets on.
        parts = [(0, 1), (0, FLAT_FIRST_POINT)] + [(pct, n_total * pct // 100) for pct in (25, 50)]
        paths = [(DATA / f"bench-{args.packets}-first{n}.pcap", n) for _pct, n in parts]
        truncate_copies(big, paths)
        tmp_files += [q for q, _ in paths]
        series = [(pct, n, q) for (pct, n), (q, _) in zip(parts, paths)] + [(100, n_total, big)]
        for pct, n, path in series:
            out_path = DATA / f"inspector-summary-{n}.txt"
            tmp_files.append(out_path)
            if (fp := inspector_fingerprint()) != fp_seen:
                print(f"  NOTE: inspector sources changed, now {fp}")
                fp_seen = fp
            best: Run | None = None
            for _ in range(args.flat_repeat):
                r = measure(inspector_cmd(path), str(out_path))
                if best is None or r.wall < best.wall:
                    best = r
            assert best is not None
            counts = summary_counts(out_path.read_text()) if best.rc == 0 else None
            size_mib = path.stat().st_size / 2**20
            flat.append((pct, n, size_mib, best, counts))
            print(_run_line(f"  {f'{pct:3d}%' if pct else '   -'} {n:>9,} packets {size_mib:7.1f} MiB", best), flush=True)
            if best.rc != 0:
                failures.append(f"inspector on {n} packets ({path}):\n{best.stderr}")
                print("    stderr: " + best.stderr[-3000:].replace("\n", "\n    "))
    fp_end = inspector_fingerprint()

    # --- final table ---
    print()
    print("== results ==")
    print(f"capture: {n_total:,} packets, {meta['big']['file_bytes'] / 2**20:,.1f} MiB "
          f"({reps} x {meta['big']['base_packets']:,}-packet real loopback recording); "
          f"{os.cpu_count()} cores, shared, so compare ratios")
    print(f"{'tool':12s} {'best wall':>10s} {'median':>8s} {'best cpu':>9s} {'peak RSS':>10s} {'tree RSS':>10s} {'tree PSS':>10s} {'runs ok':>8s}")
    best_wall: dict[str, float] = {}
    for name, rs in runs.items():
        ok = [r for r in rs if r.rc == 0]
        if not rs:
            continue
        if not ok:
            print(f"{name:12s} {'failed':>10s}")
            continue
        best_wall[name] = min(r.wall for r in ok)
        print(f"{name:12s} {best_wall[name]:9.2f}s {statistics.median(r.wall for r in ok):7.2f}s "
              f"{min(r.cpu for r in ok):8.2f}s {mib(max(r.rss_kib for r in ok)):>10s} {mib(max(r.tree_rss_kib for r in ok)):>10s} "
              f"{mib(max(r.tree_pss_kib for r in ok)):>10s} {len(ok):>5d}/{len(rs)}")
    print("(peak RSS: biggest single process, exact, max over runs; tree RSS and PSS: all processes summed, sampled every 0.1 s;\n"
          " issue 10: tree RSS at most 1 GiB at 5M packets and at most 1.5x the 1M figure)")
    if "inspector" in best_wall and "tshark" in best_wall:
        ratio = best_wall["tshark"] / best_wall["inspector"]
        med = (statistics.median(r.wall for r in runs["tshark"] if r.rc == 0)
               / statistics.median(r.wall for r in runs["inspector"] if r.rc == 0))
        cpu_ratio = (min(r.cpu for r in runs["tshark"] if r.rc == 0)
                     / min(r.cpu for r in runs["inspector"] if r.rc == 0))
        print(f"tshark_time / inspector_time = {ratio:.2f} (best wall)   {med:.2f} (median wall)   {cpu_ratio:.2f} (cpu)")
        print(f"inspector_time / tshark_time = {1 / ratio:.2f} (best wall; issue 9: at most 0.20, floor 0.33)")
        print(f"inspector: {n_total / best_wall['inspector']:,.0f} packets/s   "
              f"tshark: {n_total / best_wall['tshark']:,.0f} packets/s  (wall, best)")
    if "inspector-j1" in best_wall and "tshark" in best_wall:
        print(f"inspector --jobs 1 / tshark = {best_wall['inspector-j1'] / best_wall['tshark']:.2f} (best wall; issue 9: at most 0.50)")
    for name in ("inspector", "inspector-j1", "tshark"):
        ok = [r.cpu for r in runs[name] if r.rc == 0]
        if ok:
            print(f"{name:12s} CPU seconds per 1M packets: {min(ok) / n_total * 1e6:6.2f}  "
                  f"({min(ok) / n_total * 1e6:.1f} us/packet)")
    if flat:
        print()
        print(f"{'share':>5s} {'packets':>10s} {'file':>9s} {'wall':>8s} {'peak RSS':>10s} {'tree PSS':>10s} "
              f"{'PSS/file':>8s} {'vs 25%':>7s}  {'conns':>6s} {'REST exch':>9s} {'WS msgs':>8s}")
        startup = flat[0][3].wall
        measured = flat[1:]
        pss0 = measured[0][3].tree_pss_kib or 1
        for pct, n, size_mib, r, counts in measured:
            c = counts or ("-", "-", "-")
            share = f"{pct:4d}%" if pct else "    -"  # the fixed-size point is no share of the file
            print(f"{share} {n:>10,} {size_mib:6.1f}MiB {r.wall:7.2f}s {mib(r.rss_kib):>10s} {mib(r.tree_pss_kib):>10s} "
                  f"{r.tree_pss_kib / 1024 / size_mib:7.2f}x {r.tree_pss_kib / pss0:6.2f}x  {c[0]:>6} {c[1]:>9} {c[2]:>8}")
        per_packet = [(n, (r.wall - startup) / n * 1e6) for _pct, n, _size, r, _c in measured]
        print(f"time per packet (wall minus start-up {startup:.2f} s, measured on a 1-packet file): "
              + ", ".join(f"{n:,} packets {us:.1f} us" for n, us in per_packet))
        values = [us for _n, us in per_packet]
        print(f"  spread: max/min {max(values) / min(values):.2f} (issue 9: flat within 20 %, i.e. at most 1.20)")
        full = flat[-1][4]
        if full is not None:
            conns, rest_n, ws_n = b["tcp_connections"] * reps, b["rest_requests"] * reps, b["ws_messages"] * reps
            hs = b["counts"]["ws_connections"] * reps
            # Older summaries counted WebSocket handshakes as REST exchanges.
            rest_ok = full[1] in (rest_n, rest_n + hs)
            verdict = "match" if full[0] == conns and rest_ok and full[2] == ws_n else "DIFFER"
            print(f"ground truth for 100%: conns {conns:,}, REST exchanges {rest_n:,} (+{hs:,} WebSocket handshakes), "
                  f"WS messages {ws_n:,} -> inspector's counts {verdict}")
        elif flat[-1][3].rc == 0:
            print("(could not find the counts line in inspector's summary; format changed?)")
    if fp_end != fp_start:
        print(f"\nWARNING: inspector/ sources changed during the benchmark ({fp_start} -> {fp_end}); "
              "runs may have measured different code")
    if not args.keep:
        for q in tmp_files:
            q.unlink(missing_ok=True)
    print(f"\ntotal benchmark time {time.monotonic() - t_start:.0f} s")
    if failures:
        print("\nFAILURES:\n" + "\n\n".join(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
