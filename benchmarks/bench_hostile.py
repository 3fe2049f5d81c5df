#!/usr/bin/env python3
"""Time and peak memory per input MiB of every hostile input class of issue 8, at 1x and 8x.

    python benchmarks/bench_hostile.py                          # every class, 1x and 8x
    nice python benchmarks/bench_hostile.py --cases 6,8 --timeout 60
    python benchmarks/bench_hostile.py --list

For each class of tests/hostile.py and each scale, the script writes the
capture (and its sidecar) to a temporary folder, runs `inspector analyze`
on it in a subprocess (this checkout's code: PYTHONPATH is set to it), then
tshark on the same file for reference, and prints per run the input size,
exit code, wall and CPU time, peak RSS (the biggest process, GNU time's %M),
CPU time and peak per input MiB, and on each later scale its CPU time
beyond start-up (measured on an empty capture) over the first scale's
(CPU, not wall: the machine may be shared): a linear path gives ~8x at 8x
the input, a quadratic one ~64x.  A run over --timeout is killed and shows as `>T`; one whose
process tree holds more than --max-memory MiB is killed and shows as `>M`.
Each inspector run may write files of at most --max-file-gib GiB (RLIMIT_FSIZE),
so a gzip bomb cannot fill the disk.
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

import bench_analyze  # noqa: E402  (tree sampling, tshark command, code fingerprint)
from tests.hostile import CLASSES, SERVER_PORT, HostileCapture, HostileClass, pcap  # noqa: E402

POLL_S = 0.05
SAMPLE_EVERY_S = 0.2  # summed RSS of the process tree, for the memory cap
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
MIN_RATIO_BASE_S = 0.1  # below this much CPU beyond start-up, a ratio is mostly noise


@dataclass
class Run:
    rc: int | None  # None: killed by the benchmark (see `stopped`)
    wall: float
    cpu: float  # user + system seconds (GNU time); for a killed run, its processes' last sampled CPU time
    peak_kib: int  # biggest single process (GNU time %M); for a killed run, its processes' last sampled RSS
    stopped: str = ""  # "time" or "memory" when the benchmark killed it
    stderr: str = ""


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process from /proc/PID/stat (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def run_limited(cmd: list[str], *, timeout: float, max_tree_kib: int, max_file_bytes: int | None = None,
                env: dict[str, str] | None = None) -> Run:
    """Run `cmd` (stdout discarded) under GNU time until it ends, or kill its process group at the time or memory cap.

    GNU time, not wait4 here: Linux carries a process's peak RSS over fork and exec, so a
    child of this (big) process would report at least this process's size."""

    def limit_files() -> None:
        if max_file_bytes is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (max_file_bytes, max_file_bytes))

    with tempfile.NamedTemporaryFile("r", suffix=".time") as times, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen([bench_analyze.GNU_TIME, "-f", "%M %U %S", "-o", times.name, *cmd], stdout=subprocess.DEVNULL,
                                stderr=err, env=env, start_new_session=True, preexec_fn=limit_files)
        stopped, tree_kib, tree_cpu, next_sample = "", 0, 0.0, start
        while proc.poll() is None:
            now = time.perf_counter()
            if now >= next_sample:
                next_sample = now + SAMPLE_EVERY_S
                tree = bench_analyze._descendants(proc.pid)  # GNU time itself left out
                tree_kib = sum(bench_analyze._rollup(pid)[0] for pid in tree) or tree_kib
                tree_cpu = sum(map(_cpu_seconds, tree)) or tree_cpu
            stopped = "time" if now - start > timeout else "memory" if tree_kib > max_tree_kib else ""
            if stopped:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                break
            time.sleep(POLL_S)
        wall = time.perf_counter() - start
        err.seek(0)
        text = err.read()
        if not stopped:
            peak, user, system = times.read().split()[-3:]
            tree_kib, tree_cpu = int(peak), float(user) + float(system)
    return Run(None if stopped else proc.returncode, wall, tree_cpu, tree_kib, stopped, text.strip())


def inspector_cmd(path: Path, jobs: int) -> list[str]:
    return [sys.executable, "-m", "inspector.cli", "analyze", "--no-cache", "--jobs", str(jobs), str(path)]  # time the analysis, not the cache


def startup_seconds(env: dict[str, str], jobs: int) -> float:
    """CPU time of `inspector analyze` on a capture without packets: the fixed cost (best of 3)."""
    with tempfile.TemporaryDirectory(prefix="bench-hostile-") as folder:
        path = HostileCapture("empty.pcap", pcap([])).write(folder)
        return min(run_limited(inspector_cmd(path, jobs), timeout=60, max_tree_kib=2**30, env=env).cpu for _ in range(3))


def select(spec: str | None) -> list[HostileClass]:
    """Classes by name or issue item number, comma-separated; all when spec is None."""
    if spec is None:
        return list(CLASSES.values())
    chosen = []
    for part in spec.split(","):
        part = part.strip()
        found = [c for c in CLASSES.values() if c.name == part or str(c.item) == part]
        if not found:
            raise SystemExit(f"no class {part!r}; --list shows them")
        chosen += [c for c in found if c not in chosen]
    return chosen


# --- the table ---------------------------------------------------------------------------------

HEADER = ("| class | item | scale | input MiB | exit | wall s | CPU s | peak MiB | CPU s / MiB | peak MiB / MiB "
          "| net CPU vs 1st scale | tshark wall s | tshark CPU s / MiB | note |")
RULE = "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"


def _seconds(run: Run, limit: float) -> str:
    """Wall time; a killed run would have taken longer: `>`."""
    if run.stopped == "time":
        return f">{limit:.0f}"
    return (">" if run.stopped else "") + f"{run.wall:.2f}"


def _number(value: float, lower_bound: bool = False) -> str:
    return (">" if lower_bound else "") + (f"{value:,.2f}" if value < 10 else f"{value:,.1f}" if value < 100 else f"{value:,.0f}")


def _peak(run: Run, max_mib: float) -> str:
    return f">{max_mib:,.0f}" if run.stopped == "memory" else f"{run.peak_kib / 1024:,.0f}"


def _exit(run: Run) -> str:
    return {"time": "timeout", "memory": "memory"}.get(run.stopped, str(run.rc))


def _note(run: Run) -> str:
    """The last line of stderr when inspector failed: the exception or the error."""
    if run.stopped or (run.rc == 0 and not run.stderr):
        return ""
    last = run.stderr.splitlines()[-1] if run.stderr else ""
    return last.replace("|", "/")[:90]


def _growth(run: Run, first: Run | None, startup_cpu: float) -> str:
    """CPU time beyond start-up against the first scale's; '-' when that is too small to divide by."""
    if first is None:
        return ""
    base = first.cpu - startup_cpu
    if first.stopped or base < MIN_RATIO_BASE_S:
        return "-"
    return _number(max(run.cpu - startup_cpu, 0) / base, bool(run.stopped)) + "x"


def row(c: HostileClass, scale: float, size: int, ins: Run, tsh: Run | None, first: Run | None, startup_cpu: float, args) -> str:
    """One table row; figures of a run killed at a cap are lower bounds (`>`)."""
    size_mib = size / 2**20
    killed = bool(ins.stopped)
    versus = _growth(ins, first, startup_cpu)
    cells = [
        c.name, str(c.item), f"{scale:g}x", f"{size_mib:,.2f}" if size_mib >= 1 else f"{size_mib:.3f}", _exit(ins),
        _seconds(ins, args.timeout), _number(ins.cpu, killed), _peak(ins, args.max_memory),
        _number(ins.cpu / size_mib, killed),
        _number((args.max_memory if ins.stopped == "memory" else ins.peak_kib / 1024) / size_mib, ins.stopped == "memory"),
        versus,
        "-" if tsh is None else _seconds(tsh, args.timeout),
        "-" if tsh is None else _number(tsh.cpu / size_mib, bool(tsh.stopped)),
        _note(ins),
    ]
    return "| " + " | ".join(cells) + " |"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", metavar="NAMES", help="classes by name or issue item, comma-separated (default: all; --list)")
    ap.add_argument("--scales", default="1,8", help="scales, comma-separated; ratios are to the first (default 1,8)")
    ap.add_argument("--timeout", type=float, default=120, help="seconds per run before it is killed (default 120)")
    ap.add_argument("--max-memory", type=float, default=4096, metavar="MIB", help="kill a run whose process tree holds more (default 4096)")
    ap.add_argument("--max-file-gib", type=float, default=8, metavar="GIB", help="largest file an inspector run may write, e.g. an inflated capture (default 8)")
    ap.add_argument("--jobs", type=int, default=1, help="inspector analyze --jobs (default 1: one process, as tshark)")
    ap.add_argument("--no-tshark", action="store_true", help="leave out the tshark reference runs")
    ap.add_argument("--keep", metavar="DIR", help="write the generated captures into DIR and keep them")
    ap.add_argument("--list", action="store_true", help="list the classes and exit")
    args = ap.parse_args(argv)
    if args.list:
        for c in CLASSES.values():
            doc = getattr(c.build, "func", c.build).__doc__ or ""
            print(f"{c.item:>3}  {c.name:36s} {doc.splitlines()[0]}")
        return 0
    classes = select(args.cases)
    scales = [float(s) for s in args.scales.split(",")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    max_tree_kib = int(args.max_memory * 1024)
    bench_analyze.ensure_gnu_time()
    fingerprint = bench_analyze.inspector_fingerprint()
    print(f"inspector ({fingerprint}) vs tshark; {os.cpu_count()} cores, niceness {os.nice(0)}; "
          f"timeout {args.timeout:.0f} s, memory cap {args.max_memory:,.0f} MiB per run, --jobs {args.jobs}")
    startup_cpu = startup_seconds(env, args.jobs)
    print(f"start-up: inspector analyze on an empty capture takes {startup_cpu:.2f} s of CPU; ratios leave it out")
    print()
    print(HEADER)
    print(RULE, flush=True)
    for c in classes:
        first: Run | None = None
        for scale in scales:
            with tempfile.TemporaryDirectory(prefix="bench-hostile-") as scratch:
                folder = Path(args.keep) / f"{scale:g}x" if args.keep else Path(scratch)
                folder.mkdir(parents=True, exist_ok=True)
                capture = c.build(scale)
                path = capture.write(folder)
                size = len(capture.data) + len(capture.sidecar or b"")
                del capture
                ins = run_limited(inspector_cmd(path, args.jobs), timeout=args.timeout, max_tree_kib=max_tree_kib,
                                  max_file_bytes=int(args.max_file_gib * 2**30), env=env)
                tsh = None
                if not args.no_tshark:
                    tsh = run_limited(bench_analyze.tshark_cmd(path, [SERVER_PORT]), timeout=args.timeout, max_tree_kib=max_tree_kib)
                ins.stderr = ins.stderr.replace(f"{folder}{os.sep}", "")  # the file's name says enough
            print(row(c, scale, size, ins, tsh, first, startup_cpu, args), flush=True)
            first = first or ins
    # Only the sources count: commits elsewhere (tests, benchmarks) move HEAD but not what ran.
    if bench_analyze.inspector_fingerprint().rpartition(" ")[2] != fingerprint.rpartition(" ")[2]:
        print("\nWARNING: inspector/ sources changed during the benchmark; runs may have measured different code")
    print("\n(peak: the biggest single process, exact. CPU: user + system seconds; compare CPU, not wall, on a shared "
          "machine. For a run killed at a cap (>: the real figure is larger), CPU and peak are its processes' last "
          "samples. per MiB: per MiB of input, capture plus sidecar. net CPU vs 1st scale: CPU beyond start-up over "
          "the first scale's, ~8x for 8x the input when linear, ~64x when quadratic; '-' when the first scale's is "
          f"under {MIN_RATIO_BASE_S} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
