#!/usr/bin/env python3
"""Benchmark the analysis front end alone: records read, frames decoded, segments sharded.

    PYTHONPATH=. python benchmarks/bench_front.py                 # the 1M-packet capture of bench_analyze
    PYTHONPATH=. python benchmarks/bench_front.py CAPTURE --jobs 1,2,4

What every worker of `inspector analyze` does before any TCP reassembly or parsing, for
worker 0 of `jobs` workers: read the capture's records a chunk at a time
(capture.chunks.read_record_chunks), then decode them column-wise and pick the worker's
TCP segments with their flow numbers (analysis.segments.shard_segments).  Prints the CPU
time of each stage, per packet of the file, best of --repeat runs.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent

from inspector.analysis.segments import shard_segments  # noqa: E402
from inspector.capture.chunks import read_record_chunks  # noqa: E402
from inspector.capture.files import CaptureInfo  # noqa: E402

DEFAULT_CAPTURE = HERE / "data" / "bench-1000000.pcap"


def front_end(path: str, jobs: int) -> tuple[int, int, float, float]:
    """(packets, worker 0's segments, CPU seconds reading, CPU seconds decoding and sharding)."""
    packets = segments = 0
    reading = decoding = 0.0
    non_tcp: Counter = Counter()
    chunks = read_record_chunks(path, CaptureInfo(path=path))
    while True:
        started = time.process_time()
        chunk = next(chunks, None)
        read = time.process_time()
        if chunk is None:
            break
        segments += len(shard_segments(chunk, 0, jobs, non_tcp))
        decoding += time.process_time() - read
        reading += read - started
        packets += len(chunk)
    return packets, segments, reading, decoding


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("capture", nargs="?", default=str(DEFAULT_CAPTURE))
    parser.add_argument("--jobs", default="1,2", help="worker counts to measure (comma-separated)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    if not Path(args.capture).exists():
        print(f"{args.capture}: no such capture (bench_analyze.py builds the default one)", file=sys.stderr)
        return 2
    print(f"{'jobs':>4} {'packets':>10} {'worker 0':>10} {'read us/pkt':>12} {'decode+shard us/pkt':>20} {'total us/pkt':>13}")
    for jobs in (int(text) for text in args.jobs.split(",")):
        best = min((front_end(args.capture, jobs) for _ in range(args.repeat)), key=lambda run: run[2] + run[3])
        packets, segments, reading, decoding = best
        per_packet = 1e6 / max(packets, 1)
        print(f"{jobs:>4} {packets:>10,} {segments:>10,} {reading * per_packet:>12.2f} {decoding * per_packet:>20.2f} "
              f"{(reading + decoding) * per_packet:>13.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
