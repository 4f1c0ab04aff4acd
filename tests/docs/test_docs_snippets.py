"""Every snippet in ``docs/`` runs as pasted, and every file the docs cite exists.

The fences, as ``docs/index.md`` tells contributors:

- ```` ```python ```` : a complete file that runs as pasted. Written into a dags folder and imported;
  every DAG it defines must end ``success`` under ``dag.test()``, every task ``success``. Without a DAG
  it is a script, and importing it runs it. ``gemini_default`` points at the emulator.
- ```` ```python title="dags/nightly.py" ```` : one file of a small project. A page's titled files are
  written into an empty folder together, and ``pytest`` runs there in a fresh process: a reader's
  project, with nothing of this repository's test set-up.
- ```` ```python no-run ```` : a fragment, never run (it needs more than the page shows, or real cloud
  credentials).

Any other ``python`` fence fails the suite, so a typo cannot silently turn a snippet off.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from airflow_provider_gemini_batch.emulator import EmulatorHandle

from .conftest import RunSnippet

# Airflow 3.0's execution API (which dag.test() runs in-process) uses a constant newer Starlette deprecates
# with a UserWarning: Airflow's debt, not ours, and it would fail every task under filterwarnings=error.
pytestmark = pytest.mark.filterwarnings("ignore:'HTTP_422_UNPROCESSABLE_ENTITY' is deprecated")

REPOSITORY = Path(__file__).resolve().parents[2]
DOCS = REPOSITORY / "docs"
PAGES = sorted(DOCS.glob("*.md"))
#: Pages that need no runnable snippet: the table of contents.
LINK_ONLY_PAGES = {"index.md"}

_FENCE = re.compile(r"^```(?P<info>[^`\n]*)\n(?P<body>.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
_TITLE = re.compile(r'^python title="(?P<title>[A-Za-z0-9_./-]+\.py)"$')
# A path into the repository, in backticks or a link, optionally followed by ::Class::test_name.
_CITED = re.compile(
    r"(?<![\w/.-])(?P<path>(?:airflow_provider_gemini_batch|tests|benchmarks|example_dags|scripts|docs)"
    r"/[A-Za-z0-9_./-]*)(?P<names>(?:::[A-Za-z_][A-Za-z0-9_]*(?:\[[^\]`]*\])?)*)"
)
_LINK = re.compile(r"\]\((?P<target>[^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6}[ \t]+(?P<text>.+?)[ \t]*#*[ \t]*$", re.MULTILINE)


@dataclass(frozen=True)
class Snippet:
    """One fenced block of a docs page."""

    page: str
    line: int
    info: str
    code: str

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"

    @property
    def module_name(self) -> str:
        return f"docs_{Path(self.page).stem.replace('-', '_')}_line_{self.line}"

    @property
    def title(self) -> str | None:
        match = _TITLE.match(self.info)
        return match["title"] if match else None


def page_snippets(page: Path) -> list[Snippet]:
    """The fenced blocks of ``page``, in order, with the line their fence opens on."""
    text = page.read_text(encoding="utf-8")
    return [
        Snippet(page.name, text.count("\n", 0, match.start()) + 1, match["info"].strip(), match["body"])
        for match in _FENCE.finditer(text)
    ]


ALL_SNIPPETS = [snippet for page in PAGES for snippet in page_snippets(page)]
RUNNABLE = [snippet for snippet in ALL_SNIPPETS if snippet.info == "python"]
PROJECT_PAGES = sorted({snippet.page for snippet in ALL_SNIPPETS if snippet.title})


def test_the_docs_folder_has_its_pages() -> None:
    names = {page.name for page in PAGES}

    assert {
        "index.md",
        "protocol.md",
        "upload-and-submit.md",
        "waiting.md",
        "results.md",
        "cleanup.md",
        "testing-with-the-emulator.md",
    } <= names


def test_every_python_fence_says_whether_it_runs() -> None:
    """``python``, ``python no-run`` or ``python title="..."``; never indented, where it would not be found."""
    unknown = [
        snippet.id
        for snippet in ALL_SNIPPETS
        if snippet.info.startswith("py") and snippet.info not in ("python", "python no-run") and not snippet.title
    ]
    indented = [
        f"{page.name}:{number}"
        for page in PAGES
        for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), start=1)
        if re.match(r"^\s+```", line)
    ]

    assert unknown == []
    assert indented == []


@pytest.mark.parametrize("page", [page.name for page in PAGES if page.name not in LINK_ONLY_PAGES])
def test_every_page_has_a_snippet_that_runs(page: str) -> None:
    runnable = [snippet for snippet in RUNNABLE if snippet.page == page]
    project_files = [snippet for snippet in ALL_SNIPPETS if snippet.page == page and snippet.title]

    assert runnable or project_files


@pytest.mark.parametrize("snippet", RUNNABLE, ids=[snippet.id for snippet in RUNNABLE])
def test_snippet_runs_as_pasted(snippet: Snippet, run_snippet: RunSnippet) -> None:
    run = run_snippet(snippet.module_name, snippet.code)

    if "gemini_results_dir" in snippet.code:  # It wrote its results where the Variable said, not to /tmp.
        assert any(path.is_file() for path in run.results_dir.rglob("*")), f"{snippet.id} wrote no results"


@pytest.mark.slow
@pytest.mark.parametrize("page", PROJECT_PAGES)
def test_a_pages_project_passes_its_own_tests(page: str, tmp_path: Path, docs_airflow_db: None) -> None:
    """Write the page's titled files into an empty folder and run ``pytest`` there, as a reader would."""
    files = [snippet for snippet in ALL_SNIPPETS if snippet.page == page and snippet.title]
    for snippet in files:
        assert snippet.title is not None
        path = tmp_path / snippet.title
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(snippet.code, encoding="utf-8")
    # A reader's shell: none of this session's Airflow or pytest settings.
    env = {name: value for name, value in os.environ.items() if not name.startswith(("AIRFLOW", "PYTEST_"))}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "ignore::DeprecationWarning"]

    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)

    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert " passed" in result.stdout


def cited_paths(page: Path) -> list[tuple[str, list[str]]]:
    """``(path, names)`` for every repository path the page's prose cites, ``names`` from a ``::Class::test`` suffix.

    Snippets are left out: the paths in them are the reader's (``tests/conftest.py`` of their project).
    """
    found = []
    for match in _CITED.finditer(_FENCE.sub("", page.read_text(encoding="utf-8"))):
        names = [re.sub(r"\[.*\]$", "", name) for name in match["names"].split("::") if name]
        found.append((match["path"].rstrip("."), names))
    return found


@pytest.mark.parametrize("page", PAGES, ids=[page.name for page in PAGES])
def test_every_cited_file_and_test_exists(page: Path) -> None:
    missing = []
    for path, names in cited_paths(page):
        target = REPOSITORY / path
        if not target.exists():
            missing.append(path)
            continue
        if names:
            source = target.read_text(encoding="utf-8")
            missing += [
                f"{path}::{name}"
                for name in names
                if not re.search(rf"^\s*(?:async )?(?:def|class) {name}\b", source, re.M)
            ]

    assert missing == []


def heading_anchors(page: Path) -> set[str]:
    """The anchors GitHub gives the page's headings."""
    text = _FENCE.sub("", page.read_text(encoding="utf-8"))
    anchors = set()
    for match in _HEADING.finditer(text):
        heading = match["text"].replace("`", "").lower()
        anchors.add(re.sub(r"[^\w\- ]", "", heading).replace(" ", "-"))
    return anchors


@pytest.mark.parametrize("page", PAGES, ids=[page.name for page in PAGES])
def test_every_relative_link_and_anchor_resolves(page: Path) -> None:
    broken = []
    for match in _LINK.finditer(_FENCE.sub("", page.read_text(encoding="utf-8"))):
        target = match["target"]
        if re.match(r"^[a-z]+://|^mailto:", target):
            continue
        path_part, _, anchor = target.partition("#")
        target_path = (page.parent / path_part).resolve() if path_part else page
        exists = target_path.exists()
        anchored = not anchor or target_path.suffix != ".md" or (exists and anchor in heading_anchors(target_path))
        if not (exists and anchored):
            broken.append(target)

    assert broken == []


def test_protocol_headings_that_source_comments_cite_exist() -> None:
    """Comments and docstrings cite ``docs/protocol.md`` by these section names."""
    headings = {match["text"] for match in _HEADING.finditer((DOCS / "protocol.md").read_text(encoding="utf-8"))}

    assert {
        "Versions and auth",
        "Wire encoding",
        "Errors",
        "Limits",
        "Files API",
        "Resumable upload",
        "Batches",
        "Create body",
        "Input JSONL",
        "Results",
        "Results files and counts can disagree",
        "SUCCEEDED does not mean the requests succeeded",
        "Creating is not idempotent",
        "Models",
        "Media",
    } <= headings


def test_a_broken_snippet_fails(run_snippet: RunSnippet, gemini_connection: EmulatorHandle) -> None:
    """The runner is not a rubber stamp: a DAG whose task fails, fails the snippet's test."""
    broken = (
        "import pendulum\n"
        "from airflow.sdk import DAG\n"
        "from airflow_provider_gemini_batch.operators import GeminiGetBatchOperator\n"
        'with DAG("docs_broken", schedule=None, start_date=pendulum.datetime(2026, 1, 1)):\n'
        '    GeminiGetBatchOperator(task_id="get", batch_name="batches/does-not-exist")\n'
    )

    with pytest.raises(AssertionError, match="docs_broken ended failed"):
        run_snippet("docs_broken", broken)
