"""The bundled captures' real analysis, once per session, and their sidecars as ground truth."""

from __future__ import annotations

import json

import pytest

from inspector.analysis.pipeline import analyze_captures
from tests.conftest import BUNDLED, bundled_files


@pytest.fixture(scope="session")
def tables():
    return analyze_captures(bundled_files()).tables


@pytest.fixture(scope="session")
def sidecars():
    return {p.stem: json.loads(p.with_suffix(".json").read_text()) for p in bundled_files()}


def capture_name(stem: str) -> str:
    return str(BUNDLED / f"{stem}.pcap")


def walk_components(component):
    """Every component of a Dash layout tree, depth first."""
    yield component
    children = getattr(component, "children", None)
    if isinstance(children, (list, tuple)):
        for child in children:
            yield from walk_components(child)
    elif children is not None and hasattr(children, "children"):
        yield from walk_components(children)


def small_table_records(table) -> list[dict[str, str]]:
    """The body rows of a dashboard small_table (an html.Table) as {column: cell text}."""
    _head, body = table.children
    return [{getattr(td, "data-col"): td.children for td in tr.children} for tr in body.children]
