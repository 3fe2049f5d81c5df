"""The layering of ../shared/STYLE.md, checked on the imports of every module."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "inspector"
DASHBOARD = PACKAGE.parent / "dashboard"
HEAVY = ("pandas", "numpy", "dpkt", "scapy", "dash", "plotly", "aiohttp", "websockets")
# Issue 9: the parser core may use numpy where it pays (e.g. unmasking big WebSocket payloads).
HEAVY_FOR_PARSER_CORE = tuple(name for name in HEAVY if name != "numpy")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def modules(folder: str) -> list[Path]:
    return sorted((PACKAGE / folder).glob("*.py")) if folder else sorted(PACKAGE.glob("*.py"))


@pytest.mark.parametrize("path", modules("parse") + [PACKAGE / "events.py", PACKAGE / "errors.py", PACKAGE / "decode.py"], ids=lambda p: p.name)
def test_parser_core_is_sans_io_and_light(path):
    for name in imported_modules(path):
        top = name.split(".")[0]
        assert top not in HEAVY_FOR_PARSER_CORE, f"{path.name} imports {name}"
        assert not name.startswith(("inspector.analysis", "inspector.capture", "inspector.cli", "inspector.workloads")), f"{path.name} imports {name}"
        assert top not in ("socket", "subprocess", "asyncio", "threading"), f"{path.name} does I/O through {name}"


def test_only_live_capture_imports_scapy():
    users = {p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py") if any(n.split(".")[0] == "scapy" for n in imported_modules(p))}
    assert users == {"capture/live.py"}


@pytest.mark.parametrize("path", modules("analysis") + modules("store"), ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_analysis_does_not_reach_up(path):
    """The analysis and its store (inspector/store) know nothing of the CLI, the dashboard, the
    workloads, or live capture."""
    for name in imported_modules(path):
        assert not name.startswith(("inspector.cli", "inspector.workloads", "inspector.record", "dashboard", "inspector.capture.live")), f"{path.name} imports {name}"


def package_imports(path: Path) -> set[str]:
    return {name for name in imported_modules(path) if name.split(".")[0] in ("inspector", "dashboard")}


@pytest.mark.parametrize("path", modules("capture"), ids=lambda p: p.name)
def test_capture_imports_only_itself_and_the_errors(path):
    """Capture hands the core packets and knows nothing above it: not the decoder, the parsers,
    the analysis, nor the workloads `inspector record` runs while it captures (inspector/record.py
    joins the two)."""
    for name in package_imports(path):
        assert name.startswith("inspector.capture.") or name == "inspector.errors", f"{path.name} imports {name}"


@pytest.mark.parametrize("path", modules("workloads"), ids=lambda p: p.name)
def test_workloads_only_make_traffic(path):
    """Servers, clients and scenarios generate traffic, whoever captures it (our live capture
    in inspector/record.py, tcpdump in the tests): they import no other part of the package."""
    for name in package_imports(path):
        assert name.startswith("inspector.workloads.") or name == "inspector.errors", f"{path.name} imports {name}"


@pytest.mark.parametrize("path", sorted(DASHBOARD.rglob("*.py")), ids=lambda p: p.relative_to(DASHBOARD).as_posix())
def test_dashboard_takes_from_the_pipeline_only_the_analysis(path):
    """The pipeline (worker processes, shared memory) is for running an analysis: the dashboard
    takes from it analyze_captures and its result, Analysis; constants such as the table names
    come from the schema module, inspector.analysis.tables."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "inspector.analysis.pipeline":
            taken = {alias.name for alias in node.names}
            assert taken <= {"analyze_captures", "Analysis"}, f"{path.name} imports {sorted(taken)} from the pipeline"
        elif isinstance(node, ast.Import):
            assert "inspector.analysis.pipeline" not in {alias.name for alias in node.names}, f"{path.name} imports the pipeline module"


def test_tcp_flag_bits_are_defined_once_in_the_parser_core():
    """The decoder passes the flags byte on, the reassembly and the accounting read it: all
    take its bits from inspector/parse/tcp.py, the lowest layer that needs them."""
    defined = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.parse(path.read_text(), filename=str(path)).body:
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name) and target.id in ("TCP_FIN", "TCP_SYN", "TCP_RST", "TCP_PSH", "TCP_ACK"):
                        defined.add((path.relative_to(PACKAGE).as_posix(), target.id))
    assert defined == {("parse/tcp.py", name) for name in ("TCP_FIN", "TCP_SYN", "TCP_RST", "TCP_ACK")}
