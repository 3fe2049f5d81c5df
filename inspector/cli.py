"""Command line: `inspector analyze CAPTURE... [--export DIR] [--format csv|parquet|json|har] [--store DIR] [--no-cache]`,
`inspector query STORE_OR_CAPTURE SQL [-o OUT.csv|OUT.parquet]`,
`inspector capture [-i IFACE] [--port N ...] [--filter BPF] -o FILE [--analyze]`,
`inspector record SCENARIO -o FILE [--messages N] [--size BYTES] [--rate PER_S] [--variants a,b] [--sse-drop-after N]`,
`inspector dashboard [CAPTURE, DIR or STORE ...] [--host H] [--port P] [--debug] [--live-dir DIR ...]`.

Thin wiring only; heavy imports happen inside the subcommand that needs them.
Bad input ends with one line on stderr naming the file and the problem, and
exit code 2.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import re
import signal
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import inspector

if TYPE_CHECKING:
    from inspector.store import Store

EXIT_BAD_INPUT = 2
RECORD_SCENARIOS = ("chat", "feed", "bulk", "idle")  # inspector.workloads.scenarios.SCENARIOS, without importing it
EXIT_INTERRUPTED = 130  # the shell's code for SIGINT
MAX_JOBS = 64  # more worker processes than that is a typo, not a machine
BYTE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
BYTE_COUNT = re.compile(r"(\d+)\s*([kmgt]?)(?:i?b)?", re.IGNORECASE)


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line, like bad input (exit code 2), pointing at --help."""

    def error(self, message: str):
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def byte_count(text: str) -> int:
    """`--max-...` values: a whole number of bytes, at least 1, optionally with K, M, G or T
    (powers of 1024, with or without iB/B): 65536, 64M, 1GiB."""
    match = BYTE_COUNT.fullmatch(text.strip())
    value = int(match.group(1)) * BYTE_UNITS[match.group(2).lower()] if match else 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number of bytes of at least 1 (such as 65536, 64M or 1G), not {text!r}")
    return value


def seconds_or_rate(text: str) -> float:
    """`--duration`, `--rate`, `--poll-interval`: a finite number above 0 (float() also takes nan and inf)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a number above 0, not {text!r}")
    return value


def job_count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_JOBS:
        raise argparse.ArgumentTypeError(f"expected a number of worker processes from 1 to {MAX_JOBS}, not {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    from inspector.capture.files import DEFAULT_MAX_INFLATED_BYTES  # standard library only: cheap
    from inspector.parse.budget import DEFAULT_MAX_DECOMPRESSED_PER_CAPTURE, DEFAULT_MAX_DECOMPRESSED_PER_CONNECTION, DEFAULT_MAX_DECOMPRESSED_PER_MESSAGE

    parser = _Parser(prog="inspector", description="See what REST and WebSocket traffic costs on the wire.")
    parser.add_argument("--version", action="version", version=f"inspector {inspector.__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    analyze = commands.add_parser("analyze", help="analyse capture files and print a summary")
    analyze.add_argument("captures", nargs="+", metavar="CAPTURE", help="pcap, pcapng or gzip-compressed capture")
    analyze.add_argument("--export", metavar="DIR", help="write one file per table into DIR")
    analyze.add_argument("--format", choices=("csv", "parquet", "json", "har"), default="csv",
                         help="export format (default csv); har: one HAR 1.2 file per capture, its HTTP exchanges")
    analyze.add_argument("--store", metavar="DIR", help="also write the analysis as a store folder DIR (a Parquet dataset per table and "
                         "store.json), replacing a store already there; query it with `inspector query DIR`")
    analyze.add_argument("--no-cache", action="store_true", help="analyse the captures even if the cache of analyses has them, "
                         "and do not write them there")
    analyze.add_argument("--jobs", type=job_count, default=None, metavar="N", help=f"worker processes per capture, 1 to {MAX_JOBS} (default: one per core, up to 4, for captures over 8 MiB; "
                         "with --dask: tasks per capture, default one per thread of the cluster)")
    analyze.add_argument("--dask", metavar="ADDRESS", help="run the analysis on the Dask cluster of the scheduler at ADDRESS "
                         "(tcp://HOST:8786); its workers must see the captures and the store (or cache) folder at the same paths")
    analyze.add_argument("--keylog", action="append", default=[], metavar="FILE",
                         help="TLS secrets in the NSS key log format (SSLKEYLOGFILE) to decrypt TLS connections with "
                              "(repeatable); secrets a pcapng capture carries, and the key log a recording's sidecar names, are read without it")
    analyze.add_argument("--max-ws-message", type=byte_count, default=DEFAULT_MAX_DECOMPRESSED_PER_MESSAGE, metavar="BYTES",
                         help=f"cap on a decompressed WebSocket message (default {DEFAULT_MAX_DECOMPRESSED_PER_MESSAGE >> 20}M)")
    analyze.add_argument("--max-inflated", type=byte_count, default=DEFAULT_MAX_INFLATED_BYTES, metavar="BYTES",
                         help=f"cap on a capture's data inflated from gzip, or read from a pipe or device, into a temporary file "
                              f"(default {DEFAULT_MAX_INFLATED_BYTES >> 30}G): a guard against gzip bombs and endless devices")
    analyze.add_argument("--max-decompressed", type=byte_count, default=DEFAULT_MAX_DECOMPRESSED_PER_CAPTURE, metavar="BYTES",
                         help=f"total HTTP bodies and WebSocket messages decompressed per capture (default "
                              f"{DEFAULT_MAX_DECOMPRESSED_PER_CAPTURE >> 30}G); beyond it decompressed sizes are unknown")
    analyze.add_argument("--max-decompressed-per-connection", type=byte_count, default=DEFAULT_MAX_DECOMPRESSED_PER_CONNECTION,
                         metavar="BYTES", help=f"the same per connection (default {DEFAULT_MAX_DECOMPRESSED_PER_CONNECTION >> 20}M)")
    query = commands.add_parser("query", help="run SQL over the tables of a store folder, or of a capture (analysed into the cache first)")
    query.add_argument("source", metavar="STORE_OR_CAPTURE", help="a store folder (inspector analyze --store DIR), or a capture file")
    query.add_argument("sql", metavar="SQL", help="a DuckDB query over the tables, each a view named like the table: "
                       "\"SELECT kind, count(*) FROM connections GROUP BY kind\"")
    query.add_argument("-o", "--output", metavar="OUT", help="write the result to OUT.csv or OUT.parquet instead of printing it")
    query.add_argument("--no-cache", action="store_true", help="for a capture: analyse it into a temporary store, not the cache")
    slicing = commands.add_parser("slice", help="write the packets of some connections to a capture file, for Wireshark")
    slicing.add_argument("capture", metavar="CAPTURE", help="the capture (analysed into the cache first, if it is not there)")
    slicing.add_argument("--conn", type=int, action="append", required=True, metavar="N", dest="conn_ids",
                         help="a conn_id of the connections table of that capture analysed alone (repeatable)")
    slicing.add_argument("-o", "--output", required=True, metavar="OUT", help="the capture to write, in CAPTURE's format (pcap or pcapng)")
    capture = commands.add_parser("capture", help="capture live traffic into a pcap or pcapng file (root or CAP_NET_RAW)")
    capture.add_argument("-i", "--interface", default="lo", metavar="IFACE", help="interface to capture on (default lo; 'any' for all)")
    capture.add_argument("--port", type=int, action="append", default=[], metavar="N", help="capture TCP port N (repeatable; ports are or-ed)")
    capture.add_argument("--filter", metavar="BPF", help="tcpdump filter expression, and-ed with the ports; applied in the kernel")
    capture.add_argument("--duration", type=seconds_or_rate, metavar="S", help="stop after S seconds")
    capture.add_argument("--count", type=int, metavar="N", help="stop after N packets")
    capture.add_argument("-o", "--output", required=True, metavar="FILE", help="capture file: pcapng for *.pcapng, pcap otherwise")
    capture.add_argument("--analyze", action="store_true", help="print the analysis summary of the capture when it stops")
    record = commands.add_parser("record", help="run a built-in workload over REST, SSE and WebSocket on loopback and capture it (root or CAP_NET_RAW)")
    record.add_argument("scenario", choices=RECORD_SCENARIOS, metavar="SCENARIO", help=f"one of {', '.join(RECORD_SCENARIOS)}")
    record.add_argument("-o", "--output", required=True, metavar="FILE", help="capture file (pcapng for *.pcapng, pcap otherwise); the JSON sidecar goes next to it, FILE with suffix .json")
    record.add_argument("--messages", type=int, metavar="N", help="messages (chat, bulk), updates (feed) or keepalive rounds (idle)")
    record.add_argument("--size", metavar="BYTES[,BYTES...]", help="payload size in bytes; several are cycled over the messages")
    record.add_argument("--rate", type=seconds_or_rate, metavar="PER_S", help="messages (or updates, or idle rounds) per second; chat and bulk default to as fast as replies come")
    record.add_argument("--poll-interval", type=seconds_or_rate, metavar="S", help="feed, idle: seconds between REST polls, the longest a long poll is held, the "
                        "SSE reconnection time (and idle's WebSocket pings and SSE keep-alives); default 1/rate")
    record.add_argument("--sse-drop-after", type=int, metavar="N", help="feed: the sse variant's server drops its stream once, after update N "
                        "(default: half the updates; 0: never); the client reconnects with Last-Event-ID")
    record.add_argument("--tls", action="store_true", help="every variant over TLS (HTTPS, WSS) with a certificate made for the recording; "
                        "the TLS key log (NSS format) goes next to the capture, FILE with suffix .keylog, named in the sidecar")
    record.add_argument("--variants", metavar="a,b,...", help="variants to run, in order (default: the scenario's usual ones; rest-h2 only when named): rest-keepalive, rest-per-request, rest-polling, "
                        "rest-long-polling, sse, rest-h2, ws, ws-deflate")
    dashboard = commands.add_parser("dashboard", help="serve the dashboard over captures (default: the bundled captures/), each analysed "
                                    "once into the cache of analyses")
    dashboard.add_argument("sources", nargs="*", metavar="CAPTURE or DIR", help="capture files, directories of them, or store folders "
                           "(inspector analyze --store DIR) (default: the bundled captures/)")
    dashboard.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    dashboard.add_argument("--port", type=int, default=8050, help="port (default 8050)")
    dashboard.add_argument("--debug", action="store_true", help="Dash debug mode (reloader, dev tools): never on a shared network")
    dashboard.add_argument("--live-dir", action="append", default=[], metavar="DIR", dest="live_dirs",
                           help="a folder whose files the Live page may follow (repeatable), besides the working "
                                "directory, the captures' folders and the upload folder")
    return parser


def run() -> None:
    """The `inspector` program: `main()` in a process of its own.

    Arrow's default allocator (its bundled mimalloc) maps its memory as transparent huge
    pages and soon gives freed memory back to the kernel (madvise), so the kernel
    zeroes fresh 2 MiB pages again and again as text columns are made and dropped chunk
    after chunk: 53 % of the kernel time of an analysis of 350k packets.  The system
    allocator reuses what it freed.  (ARROW_DEFAULT_MEMORY_POOL set by the user wins;
    Arrow reads it when first imported, which is later.)
    At the end, everything made so far is frozen out of the interpreter's last garbage
    collections: the process is ending, and scanning every object that the imports and
    the analysis made cost 0.1 s of CPU.
    """
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
    code = main()
    gc.freeze()
    sys.exit(code)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from inspector.errors import InspectorError
    from inspector.report import printable

    try:
        if args.command == "analyze":
            return _analyze(args)
        if args.command == "query":
            return _query(args)
        if args.command == "slice":
            return _slice(args)
        if args.command == "capture":
            return _capture(args)
        if args.command == "record":
            return _record(args)
        if args.command == "dashboard":
            return _dashboard(args)
    except InspectorError as exc:
        print(f"inspector: error: {printable(str(exc))}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        print("inspector: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 1


def _analyze(args) -> int:
    """The summary, and the export, of the captures' store: both read from it with SQL."""
    from inspector.report import printable, store_summary

    with analysis_store(args) as (store, warnings):
        print_warnings(warnings)
        print(store_summary(store))
        if args.export:
            written = store.export(Path(args.export), args.format)
            what = "HAR files" if args.format == "har" else "tables"
            print(f"\nexported {len(written)} {what} to {printable(args.export)}/ ({args.format})")
    return 0


@contextmanager
def analysis_store(args) -> Iterator[tuple[Store, list[str]]]:
    """The store of `inspector analyze`, open, and the analysis's warnings: the cache entry when the
    cache has it; else the captures analysed and written to --store DIR, or to the cache, or (with
    --no-cache, or captures read from a pipe) to a temporary folder removed when the block ends."""
    import tempfile

    from inspector.parse.connection import ParserOptions
    from inspector.report import printable
    from inspector.store import StoreError, cache_inputs, cached_store, check_target, open_store, store_inputs

    options = ParserOptions(max_ws_message_bytes=args.max_ws_message, max_decompressed_per_capture=args.max_decompressed,
                            max_decompressed_per_connection=args.max_decompressed_per_connection, keylog=read_keylogs(args.keylog))
    if args.store:
        check_target(args.store)  # refused before the analysis, not after it
    use_cache = not (args.no_cache or args.store)
    # A temporary store needs no digests of the captures: reading them through is for naming a store in the cache
    # (where a capture unchanged since its digest was read is not read again: the cache's digest index).
    if use_cache:
        inputs = cache_inputs(args.captures, options, max_inflated_bytes=args.max_inflated)
    else:
        inputs = store_inputs(args.captures, options, max_inflated_bytes=args.max_inflated, digests=bool(args.store))
    with ExitStack() as stack:
        cached = cached_store(inputs) if use_cache else None
        if cached is not None:
            store = stack.enter_context(cached)
            note(f"inspector: analysis taken from the cache, {printable(str(cached.folder))} (--no-cache analyses again)")
            yield store, list(store.meta.get("warnings", []))
            return
        if args.store:
            folder, warnings = analyze_into(args, options, inputs, target=args.store)
        elif use_cache and inputs.key is not None:
            folder, warnings = analyze_into(args, options, inputs)
        else:
            temporary = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="inspector-analyze-"))) / "store"
            try:
                folder, warnings = analyze_into(args, options, inputs, target=temporary)
            except StoreError as exc:
                raise StoreError(f"{exc} (the temporary store of an analysis not cached: set TMPDIR to a folder with more room)") from None
        yield stack.enter_context(open_store(folder)), warnings


def read_keylogs(paths: list[str]):
    """The secrets of the --keylog files together (None without any); a file that cannot be read
    is a one-line error naming it, a file with no secret at all a warning."""
    from inspector.errors import InspectorError
    from inspector.parse.keylog import KeyLog

    if not paths:
        return None
    keylog = KeyLog()
    for path in paths:
        try:
            with open(path, "rb") as source:
                text = source.read()
        except OSError as exc:
            raise InspectorError(f"--keylog {path}: {exc.strerror or exc}") from None
        one = KeyLog.from_text(text)
        if not one:
            print(f"inspector: warning: --keylog {path}: no TLS secret in it ({one.lines} lines)", file=sys.stderr)
        elif one.junk:
            note(f"inspector: --keylog {path}: {one.describe()}")
        keylog.update(one)
    return keylog


def analyze_into(args, options, inputs, target: str | Path | None = None) -> tuple[Path, list[str]]:
    """The captures analysed straight into the store at `target`, or into the cache (rows streamed
    to disk as they are made), with a progress line for a person watching; the store's folder
    and the analysis warnings."""
    from inspector.store import analyze_into_cache, analyze_into_store

    progress = TerminalProgress(sys.stderr) if sys.stderr.isatty() else None
    common = {"jobs": args.jobs, "progress": progress, "max_inflated_bytes": args.max_inflated, "dask": args.dask}
    try:
        if target is not None:
            return analyze_into_store(args.captures, target, inputs, options, **common)
        return analyze_into_cache(args.captures, inputs, options, **common)
    finally:
        if progress is not None:
            progress.clear()


def note(text: str) -> None:
    """A line on stderr for a person watching (where an analysis came from), never in a pipe or a log."""
    if sys.stderr.isatty():
        print(text, file=sys.stderr)


QUERY_FORMATS = {".csv": "csv", ".parquet": "parquet"}


def _query(args) -> int:
    """SQL over a store folder, or over a capture's tables (from the cache, analysed into it when missing)."""
    from inspector.analysis.export import export_table
    from inspector.errors import InspectorError
    from inspector.report import format_rows

    output_format = QUERY_FORMATS.get(Path(args.output).suffix.lower()) if args.output else None
    if args.output and output_format is None:
        raise InspectorError(f"-o {args.output}: the file name must end in .csv or .parquet")
    with ExitStack() as stack:
        store = stack.enter_context(_query_source(args.source, args.no_cache, stack))
        result = store.sql(args.sql)
    if output_format:
        export_table(result, Path(args.output), output_format)
    else:
        print(format_rows(result))
    return 0


def _query_source(source: str, no_cache: bool, stack):
    """The store to query: `source` itself if it is a folder, else the store of the capture `source`
    (cached; in a temporary folder, removed by `stack`, with --no-cache or for a pipe)."""
    import tempfile

    from inspector.parse.connection import ParserOptions
    from inspector.store import analyze_into_cache, analyze_into_store, cache_inputs, cached_store, open_store, store_inputs

    if Path(source).is_dir():
        return open_store(source)
    inputs = store_inputs([source], ParserOptions()) if no_cache else cache_inputs([source], ParserOptions())
    cached = None if no_cache else cached_store(inputs)
    if cached is not None:
        return cached
    progress = TerminalProgress(sys.stderr) if sys.stderr.isatty() else None
    try:
        if no_cache or inputs.key is None:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="inspector-query-"))) / "store"
            return open_store(analyze_into_store([source], folder, inputs, progress=progress)[0])
        return open_store(analyze_into_cache([source], inputs, progress=progress)[0])
    finally:
        if progress is not None:
            progress.clear()


def _slice(args) -> int:
    """The packets of --conn connections into --output; where they came from on stderr."""
    from inspector.report import printable
    from inspector.slicing import SliceError, connection_packets, write_slice

    if Path(args.output).resolve() == Path(args.capture).resolve():
        raise SliceError(f"{args.output}: is the capture itself; write the slice to another file")
    with ExitStack() as stack:
        store = stack.enter_context(_query_source(args.capture, False, stack))
        connections = connection_packets(store, args.capture, args.conn_ids)
    written = write_slice(args.capture, connections, args.output)
    ids = ", ".join(str(connection.conn_id) for connection in connections)
    print(f"inspector: {written:,} packets of connection{'s' if len(connections) > 1 else ''} {ids} written to {printable(args.output)}",
          file=sys.stderr)
    return 0


def print_warnings(warnings: list[str]) -> None:
    from inspector.report import printable

    for warning in warnings:
        print(f"inspector: warning: {printable(warning)}", file=sys.stderr)


class TerminalProgress:
    """`analysing NAME: 42%` on one terminal line, rewritten in place; `clear()` removes it."""

    def __init__(self, stream) -> None:
        self.stream = stream
        self.shown = ""

    def __call__(self, path: str, fraction: float) -> None:
        from inspector.report import printable

        text = f"analysing {printable(Path(path).name)}: {fraction:.0%}"
        if text != self.shown:
            self.stream.write("\r" + text.ljust(len(self.shown)))
            self.stream.flush()
            self.shown = text

    def clear(self) -> None:
        if self.shown:
            self.stream.write("\r" + " " * len(self.shown) + "\r")
            self.stream.flush()
            self.shown = ""


def _capture(args) -> int:
    """Live capture until --count, --duration, Ctrl-C or SIGTERM; the file is complete either way."""
    import threading

    from inspector.capture.live import CaptureStats, LiveCapture
    from inspector.report import printable

    def progress(stats: CaptureStats) -> None:
        drops = "n/a" if stats.kernel_drops is None else f"{stats.kernel_drops:,}"
        try:
            sys.stderr.write(
                f"\rcapturing on {args.interface}: {stats.packets:,} packets, {stats.bytes:,} bytes, "
                f"{stats.elapsed_s:.1f} s, {drops} dropped by kernel "
            )
            sys.stderr.flush()
        except OSError:
            pass  # nowhere to show progress; keep capturing

    capture = LiveCapture(
        args.output, interface=args.interface, ports=args.port, bpf_filter=args.filter,
        count=args.count, duration=args.duration, on_progress=progress,
    )
    stop_requested = threading.Event()
    signals = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, lambda signum, frame: stop_requested.set()) for sig in signals}
    try:
        capture.start()
        print(f"inspector: capturing on {printable(args.interface)} (filter: {printable(capture.filter or 'none')}) to {printable(args.output)}; "
              "Ctrl-C to stop", file=sys.stderr, flush=True)
        while not capture.wait(0.1) and not stop_requested.is_set():
            pass
        stats = capture.stop()
    finally:
        try:
            capture.stop()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    sys.stderr.write("\n")
    drops = "" if stats.kernel_drops is None else f", {stats.kernel_drops:,} dropped by kernel"
    print(f"inspector: captured {stats.packets:,} packets ({stats.bytes:,} bytes) in {stats.elapsed_s:.1f} s{drops} to {printable(args.output)}", file=sys.stderr)
    if args.analyze:
        # Exactly `inspector analyze FILE`: into the cache, rows on disk as they are made (a long
        # capture is never whole in memory), and the dashboard finds it analysed.
        return _analyze(build_parser().parse_args(["analyze", args.output]))
    return 0


def _interrupt(_signum, _frame) -> None:
    raise KeyboardInterrupt


def _record(args) -> int:
    """Run the scenario's variants one after another while capturing; print what each sent."""
    from inspector.record import parse_sizes, parse_variants, record
    from inspector.report import printable

    header = f"{'variant':<18} {'conns':>5} {'client msgs':>11} {'server msgs':>11} {'client payload':>14} {'server payload':>14}"
    print(f"recording {args.scenario} on lo into {printable(args.output)}", flush=True)

    def done(entry: dict) -> None:
        sent, payload = entry["messages_sent"], entry["payload_bytes"]
        if not printed:
            print(header + "\n" + "-" * len(header))
            printed.append(entry["name"])
        print(f"{entry['name']:<18} {len(entry['client_ports']):>5} {sent['client']:>11,} {sent['server']:>11,} {payload['client']:>14,} {payload['server']:>14,}", flush=True)

    printed: list[str] = []
    # SIGTERM stops a recording as Ctrl-C does: the capture is stopped and its file completed
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        result = record(
            args.scenario, args.output, messages=args.messages, sizes=parse_sizes(args.size), rate=args.rate,
            poll_interval=args.poll_interval, sse_drop_after=args.sse_drop_after, variants=parse_variants(args.variants), on_variant=done, tls=args.tls,
        )
    except KeyboardInterrupt:
        print(f"inspector: record interrupted: {printable(args.output)} holds what was captured so far, no sidecar written", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        signal.signal(signal.SIGTERM, previous)
    stats = result.stats
    if stats.kernel_drops:
        print(f"inspector: warning: the kernel dropped {stats.kernel_drops:,} packets: the capture misses some of the traffic", file=sys.stderr)
    print(f"\n{args.scenario}: {stats.packets:,} packets ({stats.bytes:,} bytes) captured to {printable(str(result.output))}, "
          f"sidecar {printable(str(result.sidecar_path))}" + (f", TLS key log {printable(str(result.keylog))}" if result.keylog else ""))
    return 0


BUNDLED_CAPTURES = Path(__file__).resolve().parents[1] / "captures"
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def dashboard_sources(sources: list[str]) -> list[Path]:
    """The files and directories to serve; raises InspectorError (one line) for a bad one."""
    from inspector.errors import CaptureError

    if not sources:
        if not BUNDLED_CAPTURES.is_dir():
            raise CaptureError(f"bundled captures not found at {BUNDLED_CAPTURES}; name capture files or directories")
        return [BUNDLED_CAPTURES]
    paths = [Path(s) for s in sources]
    for path in paths:
        if not path.exists():
            raise CaptureError(f"{path}: no such file or directory")
        if _looks_like_store(path):
            from inspector.store import open_store

            open_store(path).close()  # a store of another version, half-written or damaged: StoreError, one line
    return paths


def _looks_like_store(path: Path) -> bool:
    """A folder holding store.json or a table's folder: a store (`inspector analyze --store DIR`), not a folder of captures."""
    from inspector.analysis.tables import TABLE_NAMES
    from inspector.store.layout import META_FILE

    return path.is_dir() and ((path / META_FILE).exists() or any((path / table).is_dir() for table in TABLE_NAMES))


def live_dirs(folders: list[str]) -> list[Path]:
    """The --live-dir folders; raises InspectorError (one line) for one that is not a directory."""
    from inspector.errors import InspectorError

    paths = [Path(f) for f in folders]
    for path in paths:
        if not path.is_dir():
            raise InspectorError(f"--live-dir {path}: no such directory")
    return paths


def _not_a_notebook() -> None:
    """Dash imports IPython, when it is installed, for its notebook mode (a quarter of a second of
    the dashboard's start); this process is no notebook: the import fails as if IPython were not
    installed, which Dash expects.  Not when IPython is loaded already (the CLI run from a notebook)."""
    sys.modules.setdefault("IPython", None)


def _dashboard(args) -> int:
    """Serve the Dash app (waitress; Dash's development server with --debug) until Ctrl-C or
    SIGTERM; the captures are analysed (or taken from the cache of analyses) in the background
    from the start, while the app is set up."""
    sources = dashboard_sources(args.sources)
    folders = live_dirs(args.live_dirs)
    from dashboard.store import TableStore

    store = TableStore(sources, live_dirs=folders)
    if not store.files:
        print(f"inspector: error: no capture files (*.pcap, *.pcapng, *.gz) in {', '.join(map(str, sources))}", file=sys.stderr)
        return EXIT_BAD_INPUT
    # The captures load in the background (each one's content key, its store from the cache, the
    # first page's views) while the rest of the dashboard is imported and set up, not after it.
    store.start()
    _not_a_notebook()
    from dashboard.app import create_app
    from dashboard.serve import serve

    if args.host not in LOCAL_HOSTS:
        print(f"inspector: warning: serving on {args.host}: anyone who can reach this address sees the captures' contents", file=sys.stderr)
    app = create_app(store, host=args.host)
    # the pages never show server paths: the folders the Live page may follow are told here
    print(f"inspector: the Live page may follow files in: {', '.join(map(str, store.live.roots))}", file=sys.stderr)

    def announce(url: str) -> None:
        print(f"inspector: dashboard on {url} over {len(store.files)} captures (Ctrl-C to stop)", file=sys.stderr, flush=True)

    serve(app, store, args.host, args.port, debug=args.debug, announce=announce)
    return 0


if __name__ == "__main__":
    run()
