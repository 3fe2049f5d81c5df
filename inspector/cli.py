"""Command line: `inspector analyze CAPTURE... [--export DIR] [--format csv|parquet|json]`.

Thin wiring only; heavy imports happen inside the subcommand that needs them.
Bad input ends with one line on stderr naming the file and the problem, and
exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130  # the shell's code for SIGINT


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="inspector", description="See what REST and WebSocket traffic costs on the wire.")
    commands = parser.add_subparsers(dest="command", required=True)
    analyze = commands.add_parser("analyze", help="analyse capture files and print a summary")
    analyze.add_argument("captures", nargs="+", metavar="CAPTURE", help="pcap, pcapng or gzip-compressed capture")
    analyze.add_argument("--export", metavar="DIR", help="write one file per table into DIR")
    analyze.add_argument("--format", choices=("csv", "parquet", "json"), default="csv", help="export format (default csv)")
    analyze.add_argument("--jobs", type=int, default=None, metavar="N", help="worker processes per capture (default: one per core, up to 4, for captures over 32 MiB)")
    analyze.add_argument("--max-ws-message", type=int, default=64 * 1024 * 1024, metavar="BYTES", help="cap on a decompressed WebSocket message (default 64 MiB)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from inspector.errors import InspectorError

    try:
        if args.command == "analyze":
            return _analyze(args)
    except InspectorError as exc:
        print(f"inspector: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        print("inspector: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 1


def _analyze(args) -> int:
    from inspector.analysis.export import export_tables
    from inspector.analysis.pipeline import analyze_captures
    from inspector.parse.connection import ParserOptions
    from inspector.report import format_summary

    analysis = analyze_captures(args.captures, ParserOptions(max_ws_message_bytes=args.max_ws_message), jobs=args.jobs)
    for warning in analysis.warnings:
        print(f"inspector: warning: {warning}", file=sys.stderr)
    print(format_summary(analysis))
    if args.export:
        written = export_tables(analysis.tables, Path(args.export), args.format)
        print(f"\nexported {len(written)} tables to {args.export}/ ({args.format})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
