"""The layering of ../shared/STYLE.md, checked on the imports of every module."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "inspector"
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


@pytest.mark.parametrize("path", modules("analysis"), ids=lambda p: p.name)
def test_analysis_does_not_reach_up(path):
    for name in imported_modules(path):
        assert not name.startswith(("inspector.cli", "inspector.workloads", "dashboard", "inspector.capture.live", "inspector.capture.record")), f"{path.name} imports {name}"
