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
