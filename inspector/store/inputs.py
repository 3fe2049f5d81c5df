"""What an analysis was made from: the captures' contents and the parameters that change its tables.

This goes into store.json, and its digest (`cache_key`) names the analysis in the cache: the
same capture bytes (and recording sidecar) under the same name, analysed by the same
version with the same parameters, give the same tables.  The parameters are the parser
options and the inflation cap (which changes no table, but whether a capture is refused:
the same command gives the same answer from the cache).  Not in it: the number of worker
processes (the tables are the same whatever it is as long as no limit is hit, see the
README's Limits).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from dataclasses import dataclass

import inspector
from inspector.analysis.recording import recording_keylog_path
from inspector.analysis.tables import SCHEMA_VERSION
from inspector.capture.files import DEFAULT_MAX_INFLATED_BYTES, capture_name, is_regular_file
from inspector.capture.sidecar import sidecar_path
from inspector.parse.connection import ParserOptions
from inspector.store.digests import DigestIndex, file_sha256
from inspector.store.layout import LAYOUT_VERSION


@dataclass(frozen=True)
class CaptureFingerprint:
    """A capture as the tables name it, and the digests of its bytes, of its recording sidecar and
    of the TLS key log the sidecar names (its secrets decrypt: other secrets, other tables).

    A pipe or a device can be read only once (by the analysis): its size and sha256 are None."""

    name: str
    size: int | None
    sha256: str | None
    sidecar_sha256: str | None
    keylog_sha256: str | None = None


@dataclass(frozen=True)
class StoreInputs:
    captures: tuple[CaptureFingerprint, ...]
    parameters: dict

    @property
    def key(self) -> str | None:
        """The cache key, or None when a capture could not be fingerprinted (a pipe)."""
        if any(capture.sha256 is None for capture in self.captures):
            return None
        return cache_key(self.captures, self.parameters)

    def meta(self) -> dict:
        """Their part of store.json."""
        return {"tool_version": tool_version(), "key": self.key, "parameters": self.parameters,
                "captures": [dataclasses.asdict(capture) for capture in self.captures]}


def store_inputs(paths: list[str | os.PathLike], options: ParserOptions, *,
                 max_inflated_bytes: int = DEFAULT_MAX_INFLATED_BYTES, digests: bool = True,
                 known: DigestIndex | None = None) -> StoreInputs:
    """Fingerprint the captures (reading each file through once) for an analysis with these parameters.

    digests=False: names and sizes only (no cache key): for a store that is thrown away after
    use (--no-cache), reading the files through once more would only cost time.
    known: an index of digests already read (the cache's, inspector.store.cache.cache_inputs):
    a file unchanged since it was read is not read again."""
    return StoreInputs(captures=tuple(fingerprint(path, digests, known) for path in paths),
                       parameters={**option_parameters(options), "max_inflated_bytes": max_inflated_bytes})


def option_parameters(options: ParserOptions) -> dict:
    """The parser options as JSON values: the key log as the digest of its secrets (different
    secrets decrypt differently; the secrets themselves stay out of store.json)."""
    parameters = {field.name: getattr(options, field.name) for field in dataclasses.fields(options)}
    parameters["keylog"] = options.keylog.digest() if options.keylog else None
    return parameters


def fingerprint(path: str | os.PathLike, digests: bool = True, known: DigestIndex | None = None) -> CaptureFingerprint:
    """A missing or unreadable file gets no digest either: the analysis then says what is wrong with it."""
    name = capture_name(path)
    if not is_regular_file(path):
        return CaptureFingerprint(name, None, None, None)
    sidecar = sidecar_path(path)
    digest = file_sha256 if known is None else known.sha256
    try:
        if not digests:
            return CaptureFingerprint(name, os.path.getsize(path), None, None)
        sidecar_digest, keylog = _sidecar_digest_and_keylog(path, sidecar, known) if sidecar.is_file() else (None, None)
        return CaptureFingerprint(name, os.path.getsize(path), digest(path), sidecar_digest,
                                  digest(keylog) if keylog is not None and keylog.is_file() else None)
    except OSError:
        return CaptureFingerprint(name, None, None, None)


def _sidecar_digest_and_keylog(capture: str | os.PathLike, sidecar: Path, known: DigestIndex | None) -> tuple[str, Path | None]:
    """The sidecar's digest and the key log it names (read from it only when it changed, with `known`)."""
    def keylog_name(_sidecar) -> str | None:
        keylog = recording_keylog_path(capture)
        return None if keylog is None else keylog.name

    if known is None:
        digest, name = file_sha256(sidecar), keylog_name(sidecar)
    else:
        digest, name = known.sha256_with(sidecar, "keylog", keylog_name)
    return digest, None if name is None else sidecar.parent / name


def cache_key(captures: tuple[CaptureFingerprint, ...], parameters: dict) -> str:
    """sha256 over the schema, layout and tool versions, the parameters, and each capture's
    name and digests, in order (connection ids follow the order of the captures)."""
    identity = {
        "schema_version": SCHEMA_VERSION,
        "layout_version": LAYOUT_VERSION,
        "tool_version": tool_version(),
        "parameters": parameters,
        "captures": [[capture.name, capture.sha256, capture.sidecar_sha256, capture.keylog_sha256] for capture in captures],
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


def tool_version() -> str:
    return inspector.__version__
