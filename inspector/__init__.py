"""Network traffic inspector for REST and WebSocket traffic."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("wire-inspector")
except PackageNotFoundError:  # run from a source tree that is not installed
    __version__ = "unknown"


def analyze(*captures, **options):
    """Analyse capture files into tables (pandas DataFrames) and SQL over them: see inspector.api.analyze."""
    from inspector.api import analyze as analyze_captures  # pandas, DuckDB: only when asked for

    return analyze_captures(*captures, **options)
