"""The repository explains itself: nothing points outside it, and the documents' links resolve.

A reader who has only this repository cannot open a note kept beside it, so no tracked file (tests
and CI scripts aside) may climb out of the repository with a relative path or name a markdown
document the repository does not hold; and every relative link in README.md and docs/*.md must lead
to a file of the repository, and to a heading that exists when it names one.
"""

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# A relative path out of the repository ("../x"; "..." as in ".../reject/" is an ellipsis), and the
# name of a markdown document, which must then be one of the repository's own.
OUTSIDE_PATH = re.compile(r"(?<!\.)\.\./[A-Za-z_]")
DOCUMENT_NAME = re.compile(r"\b[\w-]+\.md\b")
EXEMPT_DIRECTORIES = ("tests/", ".ci/")
# When the tree is not a git checkout (a copy), walk it, leaving out what git would not track.
UNTRACKED_DIRECTORIES = frozenset({".git", ".venv", "var", "node_modules", "test-artifacts", "__pycache__"})
DOCUMENTS = ["README.md", *sorted(str(path.relative_to(ROOT)) for path in (ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)  # http:, https:, mailto:, ...


def tracked_files() -> list[str]:
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=60
        ).stdout.decode()
        return [name for name in listed.split("\0") if name]
    except (OSError, subprocess.SubprocessError):
        return [
            str(path.relative_to(ROOT))
            for path in ROOT.rglob("*")
            if path.is_file() and not UNTRACKED_DIRECTORIES.intersection(path.relative_to(ROOT).parts)
        ]


def text_of(path: Path) -> str | None:
    """The file's text, or None for a binary file (a compiled catalogue, an image)."""
    data = path.read_bytes()
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def outside_references(line: str, documents: frozenset[str]) -> list[str]:
    """What a line names that a reader of the repository alone could not open."""
    found = [match.group() for match in OUTSIDE_PATH.finditer(line)]
    return found + [name for name in DOCUMENT_NAME.findall(line) if name not in documents]


def test_no_tracked_file_points_outside_the_repository():
    names = tracked_files()
    documents = frozenset(Path(name).name for name in names if name.endswith(".md"))
    offenders = []
    for name in names:
        if name.startswith(EXEMPT_DIRECTORIES):
            continue
        path = ROOT / name
        if not path.is_file():  # Deleted in the working tree, not yet committed.
            continue
        text = text_of(path)
        if text is None:
            continue
        for number, line in enumerate(text.splitlines(), start=1):
            offenders += [f"{name}:{number}: {found}" for found in outside_references(line, documents)]
    assert not offenders, "Point to docs/ instead:\n" + "\n".join(offenders)


def test_the_outside_check_can_fail():
    documents = frozenset({"README.md", "api.md"})
    assert outside_references("See ../notes/plan.md for the rules.", documents) == ["../n", "plan.md"]
    assert outside_references("The rules are in RULES.md.", documents) == ["RULES.md"]
    assert outside_references("See docs/api.md, then POST .../reject/.", documents) == []


def heading_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives a document's headings: lower case, punctuation dropped, spaces to
    hyphens, repeats numbered."""
    anchors: set[str] = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", FENCE.sub("", markdown), re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        candidate, index = slug, 1
        while candidate in anchors:
            candidate, index = f"{slug}-{index}", index + 1
        anchors.add(candidate)
    return anchors


def links_of(document: str) -> list[str]:
    markdown = (ROOT / document).read_text(encoding="utf-8")
    return [target for target in LINK.findall(FENCE.sub("", markdown)) if not EXTERNAL.match(target)]


def test_the_documents_exist():
    for name in ("README.md", "docs/architecture.md", "docs/policy.md", "docs/api.md"):
        assert (ROOT / name).is_file(), name


@pytest.mark.parametrize("document", DOCUMENTS)
def test_every_relative_link_leads_to_a_file_of_the_repository(document: str):
    broken = []
    for target in links_of(document):
        path_part, _, fragment = target.partition("#")
        destination = (ROOT / document).parent / path_part if path_part else ROOT / document
        resolved = destination.resolve()
        if not resolved.is_relative_to(ROOT) or not resolved.exists():
            broken.append(f"{target}: no such file in the repository")
            continue
        anchored = fragment and resolved.is_file() and resolved.suffix == ".md"
        if anchored and fragment not in heading_anchors(resolved.read_text(encoding="utf-8")):
            broken.append(f"{target}: no heading #{fragment} in {resolved.relative_to(ROOT)}")
    assert not broken, f"{document}:\n" + "\n".join(broken)


def test_the_link_check_can_fail(tmp_path: Path):
    """The checks above would see a broken link and a heading that is not there."""
    assert "background-jobs" in heading_anchors("## Background jobs\n")
    assert "maker-checker-two-people" in heading_anchors("## Maker-checker: two people\n")
    found = LINK.findall("See [x](../outside/x.md) and [y](docs/api.md#errors).")
    assert found == ["../outside/x.md", "docs/api.md#errors"]
    assert links_of("README.md"), "README.md has relative links to check"
