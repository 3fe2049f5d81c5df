"""Recording sidecars: which connections belong to which variant of a workload.

`inspector record` writes `NAME.json` next to `NAME.pcap`.  When it is there,
the analysis labels each connection with its variant (by client port, or by
server port when the variant lists no client ports) so that REST and
WebSocket costs of the same work can be put side by side.  A recording made
with `--tls` names its TLS key log there (`"tls": {"keylog": "NAME.keylog"}`,
a file next to the capture): the analysis decrypts with it as with --keylog.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from inspector.capture.sidecar import SIDECAR_FORMAT, sidecar_path
from inspector.parse.connection import ParserOptions
from inspector.parse.keylog import KeyLog

# A sidecar bigger than this is not read: a feed recording of 100,000 updates over three
# variants writes about 40 MB.  Its JSON is parsed whole, so this also bounds the memory.
MAX_SIDECAR_BYTES = 64 * 1024 * 1024
PORT_RANGE = range(0, 65536)
# Arrays and objects nested deeper than this are refused.  A sidecar nests 4 deep; the
# json module parses nesting recursively, so without a limit of our own whether a deep
# file is read would depend on the process's recursion limit (1,000 by default, 3,000
# under pytest): the same sidecar would label variants in one run and not in another.
MAX_SIDECAR_NESTING = 100
# A key log a sidecar names that is bigger than this is not read (a warning): a recording's
# holds a few lines per connection, and it is read whole.
MAX_RECORDING_KEYLOG_BYTES = 64 * 1024 * 1024
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')


class SidecarError(ValueError):
    """What is wrong with a sidecar, in words; the analysis goes on without it."""


@dataclass(frozen=True)
class Variant:
    name: str
    protocol: str
    server_port: int | None
    client_ports: frozenset[int]


@dataclass(frozen=True)
class StalenessEntry:
    variant: str
    seq: int
    published_ts: float
    received_ts: float


@dataclass(frozen=True)
class Recording:
    scenario: str
    variants: tuple[Variant, ...]
    staleness: list[StalenessEntry] = field(default_factory=list)


def scenario_of(recording: Recording | None) -> str:
    """The captures table's `scenario`: what the recording's sidecar says was recorded ("" without one)."""
    return "" if recording is None else recording.scenario


def load_recording(capture: str | Path, warnings: list[str]) -> Recording | None:
    """The sidecar of `capture`, or None; a broken sidecar is a warning, not an error.

    Every field is checked for its type and range (ports are whole numbers 0 to 65535),
    since a sidecar is a file anyone can write next to a capture: variants that are wrong
    drop the sidecar, staleness entries that are wrong drop themselves, with a warning."""
    path = sidecar_path(capture)
    if not path.is_file():
        return None
    try:
        document = _read_json(path)
        if not isinstance(document, dict) or document.get("format") != SIDECAR_FORMAT:
            return None  # some other JSON file that happens to share the name
        scenario = _text(document.get("scenario", ""), "scenario")
        variants = tuple(_variant(entry, number) for number, entry in enumerate(_list(document, "variants"), 1))
        entries = _list(document, "staleness")
    except SidecarError as exc:
        warnings.append(f"{path}: recording sidecar ignored: {exc}")
        return None
    staleness, problems = [], []
    for number, entry in enumerate(entries, 1):
        try:
            staleness.append(_staleness_entry(entry, number))
        except SidecarError as exc:
            problems.append(str(exc))
    if problems:
        warnings.append(f"{path}: {len(problems)} of {len(entries)} staleness entries ignored (the first: {problems[0]})")
    return Recording(scenario=scenario, variants=variants, staleness=staleness)


def recording_keylog_path(capture: str | Path) -> Path | None:
    """The TLS key log the sidecar of `capture` names (a file next to the capture), or None: no
    sidecar, one that does not parse (load_recording says why) or names none, or a name that
    is not a plain file name (a sidecar is a file anyone can write: it points at no other folder)."""
    path = sidecar_path(capture)
    if not path.is_file():
        return None
    try:
        document = _read_json(path)
    except SidecarError:
        return None
    if not isinstance(document, dict) or document.get("format") != SIDECAR_FORMAT or not isinstance(document.get("tls"), dict):
        return None
    name = document["tls"].get("keylog")
    if not isinstance(name, str) or name in ("", ".", "..") or Path(name).name != name or "\\" in name:
        return None
    return path.parent / name


def with_recording_keylog(capture: str | Path, options: ParserOptions, warnings: list[str]) -> ParserOptions:
    """`options` with the secrets of the key log the recording's sidecar names added to the
    --keylog ones; a named key log that is missing or unreadable is a warning (the TLS is then
    analysed with the other secrets, if any)."""
    path = recording_keylog_path(capture)
    if path is None:
        return options
    try:
        with path.open("rb") as source:
            text = source.read(MAX_RECORDING_KEYLOG_BYTES + 1)
    except OSError as exc:
        warnings.append(f"{path}: the TLS key log the recording names cannot be read ({exc.strerror or exc}): analysed without it")
        return options
    if len(text) > MAX_RECORDING_KEYLOG_BYTES:
        warnings.append(f"{path}: the TLS key log the recording names is over {MAX_RECORDING_KEYLOG_BYTES:,} bytes: analysed without it")
        return options
    secrets = KeyLog.from_text(text)
    if not secrets:
        warnings.append(f"{path}: the TLS key log the recording names holds no TLS secret ({secrets.lines} lines)")
        return options
    keylog = options.keylog.copy() if options.keylog else KeyLog()
    keylog.update(secrets)
    return dataclasses.replace(options, keylog=keylog)


def _read_json(path: Path):
    try:
        with path.open("rb") as sidecar:
            data = sidecar.read(MAX_SIDECAR_BYTES + 1)
    except OSError as exc:
        raise SidecarError(f"cannot read it: {exc.strerror}") from None
    if len(data) > MAX_SIDECAR_BYTES:
        raise SidecarError(f"larger than {MAX_SIDECAR_BYTES:,} bytes")
    if _nesting(data) > MAX_SIDECAR_NESTING:
        raise SidecarError(f"JSON nested too deeply (over {MAX_SIDECAR_NESTING} levels)")
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise SidecarError("not UTF-8 text") from None
    except RecursionError:  # the json module parses nested arrays and objects recursively
        raise SidecarError("JSON nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, and integers over Python's 4300 digits
        raise SidecarError(f"not JSON ({exc})") from None


def _nesting(data: bytes) -> int:
    """How deep arrays and objects nest in JSON text (brackets inside strings left out)."""
    brackets = np.frombuffer(_JSON_STRING.sub(b"", data), dtype=np.uint8)
    steps = np.zeros(len(brackets), dtype=np.int64)
    steps[(brackets == ord("[")) | (brackets == ord("{"))] = 1
    steps[(brackets == ord("]")) | (brackets == ord("}"))] = -1
    return int(np.cumsum(steps).max(initial=0))


def _variant(entry, number: int) -> Variant:
    if not isinstance(entry, dict):
        raise SidecarError(f"variant {number} is {_shown(entry)}, not an object")
    where = f"variant {number}"
    server_port = entry.get("server_port")
    return Variant(
        name=_text(entry.get("name"), f"{where} name"),
        protocol=_text(entry.get("protocol", ""), f"{where} protocol"),
        server_port=None if server_port is None else _port(server_port, f"{where} server_port"),
        client_ports=frozenset(_port(port, f"{where} client port") for port in _list(entry, "client_ports", where)),
    )


def _staleness_entry(entry, number: int) -> StalenessEntry:
    if not isinstance(entry, dict):
        raise SidecarError(f"entry {number} is {_shown(entry)}, not an object")
    where = f"entry {number}"
    seq = entry.get("seq")
    if type(seq) is not int:
        raise SidecarError(f"{where} seq {_shown(seq)} is not a whole number")
    return StalenessEntry(variant=_text(entry.get("variant"), f"{where} variant"), seq=seq,
                          published_ts=_time(entry.get("published_ts"), f"{where} published_ts"),
                          received_ts=_time(entry.get("received_ts"), f"{where} received_ts"))


def _list(document: dict, key: str, where: str = "") -> list:
    value = document.get(key, [])
    if not isinstance(value, list):
        raise SidecarError(f"{where + ' ' if where else ''}{key} is {_shown(value)}, not a list")
    return value


def _text(value, what: str) -> str:
    if not isinstance(value, str):
        raise SidecarError(f"{what} {_shown(value)} is not text")
    return value


def _port(value, what: str) -> int:
    # type() is int: not a bool, not 8080.0, not the float inf that JSON's 1e999 gives
    if type(value) is not int or value not in PORT_RANGE:
        raise SidecarError(f"{what} {_shown(value)} is not a port number (a whole number 0 to 65535)")
    return value


def _time(value, what: str) -> float:
    if type(value) in (int, float):
        try:
            seconds = float(value)
        except OverflowError:  # an integer of hundreds of digits
            seconds = math.inf
        if math.isfinite(seconds):
            return seconds
    raise SidecarError(f"{what} {_shown(value)} is not a finite number of seconds")


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def label_variants(connections: pd.DataFrame, recording: Recording) -> pd.Series:
    """The variant of each connection: by client port first, then by server port."""
    by_client = {port: v.name for v in recording.variants for port in v.client_ports}
    by_server = {v.server_port: v.name for v in recording.variants if not v.client_ports and v.server_port is not None}
    labels = [by_client.get(client, by_server.get(server, "")) for client, server in zip(connections["client_port"], connections["server_port"])]
    return pd.Series(labels, index=connections.index, dtype="str")


def staleness_rows(recording: Recording, capture: str) -> list[dict]:
    return [{"capture": capture, "variant": e.variant, "seq": e.seq, "published_ts": e.published_ts, "received_ts": e.received_ts,
             "staleness_s": e.received_ts - e.published_ts} for e in recording.staleness]
