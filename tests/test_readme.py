"""The README documents the table schema exactly, and the CI command."""

from pathlib import Path

from inspector.analysis.tables import BYTE_CATEGORIES, PAYLOAD_COLUMNS, SCHEMAS, TABLE_DOCS

REPO = Path(__file__).resolve().parents[1]
START = "<!-- tables: generated from inspector/analysis/tables.py -->"
END = "<!-- end of tables -->"


def schema_markdown() -> str:
    """The README's tables section as it must read (regenerate it from here)."""
    out = [START, ""]
    for name, schema in SCHEMAS.items():
        doc = TABLE_DOCS[name]
        out += [f"### `{name}`\n\n{doc[0].upper() + doc[1:]}.\n", "| column | type |\n|---|---|"]
        out += [f"| `{column}` | {dtype} |" for column, dtype in schema.items()]
        out.append("")
    out.append("### Byte categories\n\n| column | what it counts |\n|---|---|")
    out += [f"| `{name}` | {meaning} |" for name, meaning in BYTE_CATEGORIES.items()]
    out.append("\n### Payload and efficiency columns\n\n| column | type | what it is |\n|---|---|---|")
    out += [f"| `{name}` | {dtype} | {meaning} |" for name, (dtype, meaning) in PAYLOAD_COLUMNS.items()]
    out += ["", END]
    return "\n".join(out)


def test_readme_tables_section_matches_the_schema():
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index(START) : readme.index(END) + len(END)]
    assert section == schema_markdown()


def test_ci_runs_the_readme_test_command():
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert ci in readme


# Where the Limits table's short module names live.
LIMIT_MODULES = {
    "capture.files": "inspector.capture.files", "http1": "inspector.parse.http1", "budget": "inspector.parse.budget",
    "connection": "inspector.parse.connection", "tcp": "inspector.parse.tcp", "tls": "inspector.parse.tls", "http2": "inspector.parse.http2", "pipeline": "inspector.analysis.pipeline",
    "rows": "inspector.analysis.rows", "recording": "inspector.analysis.recording", "texts": "inspector.analysis.texts",
    "long_connections": "inspector.analysis.long_connections",
    "dashboard.uploads": "dashboard.uploads", "dashboard.analysing": "dashboard.analysing", "dashboard.app": "dashboard.app",
    "dashboard.components": "dashboard.components", "sse": "inspector.parse.sse",
}
UNITS = {None: 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "minutes": 60 * 10**9}  # minutes: in nanoseconds


def limits_rows() -> list[tuple[list[str], str]]:
    """(the constants a row names, its default column) for each row of the README's Limits table."""
    import re

    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Limits\n") : readme.index("## Tables\n")]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if line.startswith("| ") and len(cells) == 4 and cells[0] != "limit":
            rows.append((re.findall(r"`([\w.]+\.[A-Z_]+)`|, `([A-Z_]+)`", cells[0]), cells[1]))
    return rows


def test_every_limit_the_readme_names_exists_with_the_stated_default():
    """The Limits table names real constants, and a row's first one has the default it states
    (when the default is a size or a plain number)."""
    import importlib
    import re

    rows = limits_rows()
    assert len(rows) >= 20
    checked = 0
    for names, default in rows:
        module = None
        for qualified, bare in names:
            if qualified:
                module_name, _, constant = qualified.rpartition(".")
                module = importlib.import_module(LIMIT_MODULES[module_name])
            else:
                constant = bare
            assert module is not None and hasattr(module, constant), (names, default)
        first = names[0][0] if names else ""
        number = re.match(r"([\d,]+)(?: (KiB|MiB|GiB|minutes))?\b", default)
        if first and number:
            module_name, _, constant = first.rpartition(".")
            value = getattr(importlib.import_module(LIMIT_MODULES[module_name]), constant)
            assert value == int(number.group(1).replace(",", "")) * UNITS[number.group(2)], (first, default, value)
            checked += 1
    assert checked >= 12
