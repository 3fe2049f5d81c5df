"""What decrypting TLS costs: CPU seconds per MB of decrypted traffic, beside tshark with the same key log.

    PYTHONPATH=. python benchmarks/bench_tls.py [--rounds N] [--repeat R] [--capture FILE --keylog FILE]

Without --capture it records one (root, tcpdump): the workload of tests/tls_keys_traffic.py
(keep-alive REST and a WebSocket over TLS 1.3 and 1.2, and in cleartext), `--rounds` times
into one capture.  Then, best of `--repeat` runs each, in this process's CPU time (one worker):

* the analysis with the key log (decrypting) and without it (TLS left encrypted): the
  difference is the decryption's cost, HTTP and WebSocket parsing of the plaintext included;
* `tshark -o tls.keylog_file:FILE -Y http||websocket` over the same capture (its CPU time,
  decrypting and dissecting the same HTTP and WebSocket).

Prints the decrypted MB (plaintext of the application data records), the cost per MB, and the
ratio to tshark's time.  A small capture: a ratio on this machine, not an absolute figure.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parent.parent))

from inspector.analysis.pipeline import analyze_captures  # noqa: E402
from inspector.parse.connection import ParserOptions  # noqa: E402
from inspector.parse.keylog import KeyLog  # noqa: E402

MB = 1_000_000


def _record(folder: Path, rounds: int) -> tuple[Path, Path]:
    from tests.tls_keys_traffic import record_https

    recordings = []
    for index in range(rounds):
        (folder / f"round-{index}").mkdir()
        recordings.append(record_https(folder / f"round-{index}"))
    capture = folder / "https.pcap"
    subprocess.run(["mergecap", "-F", "pcap", "-w", str(capture), *(str(r.path) for r in recordings)], check=True)
    keylog = folder / "https.keys"
    keylog.write_bytes(b"".join(r.keylog.read_bytes() for r in recordings))
    return capture, keylog


def _analysis_cpu(capture: Path, options: ParserOptions, repeat: int) -> tuple[float, dict]:
    best, tables = float("inf"), {}
    for _ in range(repeat):
        start = time.process_time()
        tables = analyze_captures([capture], options, jobs=1)
        best = min(best, time.process_time() - start)
    return best, tables


def _tshark_cpu(capture: Path, keylog: Path, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(["tshark", "-n", "-r", str(capture), "-o", f"tls.keylog_file:{keylog}", "-Y", "http || websocket"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        best = min(best, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--capture", type=Path)
    parser.add_argument("--keylog", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-tls-") as folder:
        capture, keylog_path = (args.capture, args.keylog) if args.capture else _record(Path(folder), args.rounds)
        keylog = KeyLog.from_text(keylog_path.read_bytes())
        decrypting, tables = _analysis_cpu(capture, ParserOptions(keylog=keylog), args.repeat)
        encrypted, _ = _analysis_cpu(capture, ParserOptions(), args.repeat)
        tshark = _tshark_cpu(capture, keylog_path, args.repeat)
        records = tables["tls_records"]
        decrypted_mb = records.loc[records["counted_as"] == "application", "plaintext_bytes"].sum() / MB
        print(f"capture: {capture.stat().st_size / MB:.1f} MB, {decrypted_mb:.2f} MB decrypted "
              f"({int(tables['connections']['tls_records'].gt(0).sum())} TLS connections)")
        print(f"analysis with the key log: {decrypting:.3f} s CPU; without: {encrypted:.3f} s; "
              f"tshark -o tls.keylog_file: {tshark:.3f} s")
        print(f"decryption (and parsing the plaintext): {(decrypting - encrypted) / decrypted_mb:.3f} s per decrypted MB; "
              f"the whole analysis with keys {decrypting / tshark:.2f}x tshark's time")


if __name__ == "__main__":
    main()
