"""How the dashboard analyses a capture a browser user chose (an upload, a path typed on the
Live page), and how it tells a failed analysis: one line naming the capture, never a server path.

Captures given on the command line are the operator's own and go through analyze_captures with
the CLI's defaults; uploads and Live paths are hostile and go through `analyze_untrusted`, the
one place that sets their limits.
"""

from __future__ import annotations

import logging
import os
import pickle
from multiprocessing import get_context

from inspector.analysis.pipeline import Analysis, analyze_captures
from inspector.capture.files import DEFAULT_MAX_INFLATED_BYTES, CaptureLimitError
from inspector.errors import InspectorError

# A gzip-compressed upload (or Live file) may inflate to at most this many bytes, the CLI's
# cap: a 3 MB gzip bomb inflating to 3 GiB would otherwise keep the analysis worker busy for
# minutes and fill the temporary folder.
UPLOAD_MAX_INFLATED_BYTES = DEFAULT_MAX_INFLATED_BYTES

log = logging.getLogger(__name__)
# What the fork server imports once, so that each child starts with the analysis loaded.
CHILD_PRELOAD = ["dashboard.analysing", "inspector.store"]


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


def in_child(function, *args, progress=None):
    """`function(*args, progress=...)` run in a child process, so that its heap (an analysis's)
    is never this process's; its result is returned, its exception raised here.

    The child comes from a fork server (multiprocessing's "forkserver"): forking the dashboard
    itself, whose DuckDB and server threads may hold locks, crashes the child.  The child is not a
    daemon: the streamed analysis forks its own workers inside it.  `function` and `args` are
    pickled; its progress reports come back through a pipe and are passed to `progress`; its
    result and exception are pickled (an exception that cannot be is raised as a RuntimeError
    naming it)."""
    context = get_context("forkserver")
    context.set_forkserver_preload(CHILD_PRELOAD)
    receive, send = context.Pipe(duplex=False)
    # the fork server started with the environment and folder of its time: the child takes this process's now
    child = context.Process(target=_child_main, args=(send, function, args, dict(os.environ), os.getcwd()), name="inspector-analysis-child")
    child.start()
    send.close()
    try:
        while True:
            try:
                kind, value = receive.recv()
            except EOFError:
                child.join()
                raise RuntimeError(f"the analysis process ended without a result (exit code {child.exitcode})") from None
            if kind == "progress":
                if progress is not None:
                    progress(*value)
            elif kind == "result":
                return value
            else:
                raise value
    finally:
        receive.close()
        child.join()


def _child_main(send, function, args, environ: dict, cwd: str) -> None:
    os.environ.clear()
    os.environ.update(environ)
    os.chdir(cwd)

    def report(*values) -> None:
        send.send(("progress", values))

    try:
        send.send(("result", function(*args, progress=report)))
    except BaseException as exc:  # told to the parent, which raises it
        if not isinstance(exc, (InspectorError, OSError)):
            log.error("analysing", exc_info=exc)  # the traceback stays in this process's log
        try:
            pickle.loads(pickle.dumps(exc))
        except Exception:
            exc = RuntimeError(f"{type(exc).__name__}: {exc}")
        send.send(("error", exc))
    finally:
        send.close()
