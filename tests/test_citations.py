"""Comments and docstrings cite what exists in the repository: ``docs/protocol.md`` sections, files, benchmark modules.

Not ``PROTOCOL.md`` (a notes file outside the repository) and not a benchmark row number (rows move).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CODE = sorted(
    path
    for folder in ("airflow_provider_gemini_batch", "tests", "benchmarks", "scripts", "example_dags")
    for path in (ROOT / folder).rglob("*.py")
    if path != Path(__file__).resolve()
)
# docs/protocol.md "Section", docs/protocol.md, "Section", or ``docs/protocol.md``, "Section"
_PROTOCOL_SECTION = re.compile(r"docs/protocol\.md`{0,2},?\s+\(?\"([^\"]+)\"")
_HEADING = re.compile(r"^#{1,4} (.+)$", re.MULTILINE)


def test_nothing_cites_a_file_outside_the_repository_or_a_row_number() -> None:
    stale = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in CODE
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if "PROTOCOL.md" in line or "../shared" in line or re.search(r"\brow \d", line)
    ]
    assert stale == []


@pytest.mark.parametrize("path", CODE, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_cited_protocol_section_exists(path: Path) -> None:
    headings = set(_HEADING.findall((ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")))
    # A citation may wrap across lines, comment markers included.
    text = re.sub(r"\s*\n\s*#?:?\s*", " ", path.read_text(encoding="utf-8"))
    cited = set(_PROTOCOL_SECTION.findall(text))
    assert cited <= headings, f"not headings of docs/protocol.md: {sorted(cited - headings)}"
