"""The README documents every table and column of the schema, and the CI command."""

from pathlib import Path

from inspector.analysis.tables import BYTE_CATEGORIES, SCHEMAS

REPO = Path(__file__).resolve().parents[1]


def test_readme_lists_every_table_and_column():
    readme = (REPO / "README.md").read_text()
    for table, columns in SCHEMAS.items():
        assert f"### `{table}`" in readme
        for column in columns:
            assert f"`{column}`" in readme, (table, column)
    for category in BYTE_CATEGORIES:
        assert f"`{category}`" in readme


def test_ci_runs_the_readme_test_command():
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert ci in readme
