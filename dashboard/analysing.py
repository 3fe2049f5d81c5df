"""How the dashboard analyses a capture a browser user chose (an upload, a path typed on the
Live page), and how it tells a failed analysis: one line naming the capture, never a server path.

Captures given on the command line are the operator's own and go through analyze_captures with
the CLI's defaults; uploads and Live paths are hostile and go through `analyze_untrusted`, the
one place that sets their limits.
"""

from __future__ import annotations

import logging
import os

from inspector.analysis.pipeline import Analysis, analyze_captures
from inspector.capture.files import DEFAULT_MAX_INFLATED_BYTES, CaptureLimitError
from inspector.errors import InspectorError

# A gzip-compressed upload (or Live file) may inflate to at most this many bytes, the CLI's
# cap: a 3 MB gzip bomb inflating to 3 GiB would otherwise keep the analysis worker busy for
# minutes and fill the temporary folder.
UPLOAD_MAX_INFLATED_BYTES = DEFAULT_MAX_INFLATED_BYTES

log = logging.getLogger(__name__)


def analyze_untrusted(paths: list[str | os.PathLike], progress=None) -> Analysis:
    """analyze_captures for captures a browser user chose, with the upload limits."""
    return analyze_captures(paths, progress=progress, max_inflated_bytes=UPLOAD_MAX_INFLATED_BYTES)


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def failure_line(exc: BaseException, path: str | os.PathLike, name: str) -> str:
    """One line saying why the analysis of `path` failed, naming the capture `name` instead.

    An InspectorError says what is wrong with the file; any other exception is a bug in the
    analysis that this input found, told as such, its traceback written to the server's log
    (call this while handling `exc`)."""
    if isinstance(exc, CaptureLimitError):
        # The CLI's message tells how to raise the cap with an option a browser user does not have.
        text = f"{path}: inflates to more than {exc.limit:,} bytes, the dashboard's cap on a compressed capture's data"
    elif isinstance(exc, InspectorError):
        text = str(exc)
    elif isinstance(exc, OSError):
        text = f"{path}: cannot read: {exc.strerror or exc}"
    else:
        log.error("analysing %s", path, exc_info=exc)
        text = f"{path}: the analysis failed ({type(exc).__name__}: {exc})"
    return one_line(text.replace(str(path), name))
