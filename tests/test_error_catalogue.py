"""Every case of the bad-input catalogue raises a clear ValueError/TypeError; docs/errors.md is
the catalogue rendered with the real messages."""

from pathlib import Path

import pytest
from error_catalogue import CASES, raised, render

DOC = Path(__file__).resolve().parent.parent / "docs" / "errors.md"


@pytest.mark.parametrize("case", CASES, ids=[f"{c.entry}: {c.mistake}" for c in CASES])
def test_case_raises_a_clear_error(case):
    result = raised(case)
    assert result is not None, f"{case.entry}: {case.mistake}: raised nothing"
    kind, message = result
    assert issubclass(kind, ValueError | TypeError), f"{case.entry}: raised {kind.__name__}"
    assert len(message) > 20 and "Traceback" not in message


def test_docs_table_is_current():
    assert DOC.read_text() == render(), (
        "regenerate: python tests/error_catalogue.py > docs/errors.md"
    )
