"""The repository stands on its own: code and docs point only at files inside it."""

import re
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

# The shipped packages, their docs and examples (tests may hold fake paths as data).
SCOPE = ("protocols", "bus", "supervisor", "agents", "deploy", "cli", "docs", "examples", "bench")
TOP_FILES = ("README.md", "Makefile", "pyproject.toml")

# A design note or style guide kept beside the repository, a relative path
# climbing out of it, or a developer machine's absolute path.
OUTSIDE = re.compile(
    r"\.\./shared|\bDESIGN\.md|\bSTYLE\.md"
    r"|(?<![\w.])/(work|Users|home/[a-z]\w*/(src|code|work|projects))/"
)


def _files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "--", *SCOPE, *TOP_FILES],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return [REPO_ROOT / name for name in listed]


def outside_references(text: str) -> list[str]:
    return [m.group(0) for m in OUTSIDE.finditer(text)]


def test_the_pattern_catches_what_it_should() -> None:
    assert "../shared" in outside_references("see ../shared/DESIGN.md section 4")
    assert outside_references("(DESIGN.md section 8)") == ["DESIGN.md"]
    assert outside_references("copied from /work/main/bus/x.py") == ["/work/"]
    assert outside_references("docs/architecture.md, /tmp/x, nats://h:4222/") == []


def test_code_and_docs_refer_only_to_files_in_the_repository() -> None:
    files = _files()
    assert len(files) > 100  # the listing found the tree
    found = []
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, FileNotFoundError):
            continue  # binary data, or deleted in the work tree
        for lineno, line in enumerate(text.splitlines(), 1):
            found += [
                f"{path.relative_to(REPO_ROOT)}:{lineno}: {ref}" for ref in outside_references(line)
            ]
    assert not found, "\n".join(found)
