"""Every table of every known capture stays what it was when the reference was saved.

tests/reference_tables.py saved the tables (tests/reference/); here each capture
is analysed again and every column of every table must be equal, exactly:
same dtypes, same column order, same row order, same values (floats too).
The warnings must be the same too, and a capture the analysis refused must
still be refused with the same message.
The bundled captures are also analysed with two worker processes (the
multiprocessing path), held to the same tables.

When a change means to alter a table, regenerate the reference
(`PYTHONPATH=$PWD python tests/reference_tables.py`) in a commit of its own that
says why.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from inspector.errors import CaptureError
from tests import reference_tables as ref
from tests.conftest import CORPUS_MISSING

REFERENCES = ref.references()


def _param(reference: ref.Reference):
    return pytest.param(reference, id=reference.id)


def check(reference: ref.Reference, scratch: Path, jobs: int = 1) -> None:
    assert reference.folder.is_dir(), f"no saved tables for {reference.id}: run tests/reference_tables.py"
    path = reference.source(scratch)
    if path is None:
        pytest.skip(CORPUS_MISSING)
    saved_error = reference.folder / ref.ERROR
    if saved_error.exists():
        with pytest.raises(CaptureError) as raised:
            ref.analyze(path, jobs)
        assert ref.error_text(raised.value, path) == saved_error.read_text()
        return
    tables, warnings = ref.analyze(path, jobs)
    ref.assert_tables_equal(tables, ref.load(reference.folder), f"{reference.id} (jobs={jobs})")
    assert warnings == (reference.folder / ref.WARNINGS).read_text()


@pytest.mark.parametrize("reference", [_param(r) for r in REFERENCES])
def test_tables_equal_the_reference(reference, tmp_path):
    check(reference, tmp_path)


@pytest.mark.parametrize("reference", [_param(r) for r in REFERENCES if r.group == "captures"])
def test_tables_from_two_workers_equal_the_reference(reference, tmp_path):
    check(reference, tmp_path, jobs=2)


def test_every_saved_reference_has_a_capture():
    """A folder left from a capture that no longer exists would never be checked."""
    known = {reference.folder for reference in REFERENCES}
    saved = {folder for group in ref.GROUPS for folder in (ref.REFERENCE / group).iterdir()}
    assert saved <= known, sorted(str(folder) for folder in saved - known)
