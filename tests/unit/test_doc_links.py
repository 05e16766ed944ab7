"""Every relative link in the README and docs/ names a file and heading that exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")
HEADING = re.compile(r"#{1,6} (.+)")
HTML_ANCHOR = re.compile(r'<a id="([^"]+)">')


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, - for spaces."""
    kept = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return kept.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    """The anchors a page's headings (outside code blocks) and <a id> tags give."""
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    in_code = False
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_code = not in_code
            continue
        if in_code:
            continue  # a shell comment is no heading
        anchors.update(HTML_ANCHOR.findall(line))
        if match := HEADING.match(line):
            slug = _slug(match.group(1))
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            # GitHub numbers a repeated heading's anchor: slug, slug-1, slug-2.
            anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def _broken_links(page: Path) -> list[str]:
    """The page's relative links whose file or heading does not exist."""
    broken = []
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        path, _, fragment = target.partition("#")
        linked = (page.parent / path) if path else page
        if not linked.exists():
            broken.append(f"{target} (no such file)")
        elif fragment and linked.suffix == ".md" and fragment not in _anchors(linked):
            broken.append(f"{target} (no such heading)")
    return broken


def test_a_repeated_heading_gets_a_numbered_anchor(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# Faults\n\n```bash\n# not a heading\n```\n\n## Faults\n")
    assert _anchors(page) == {"faults", "faults-1"}


def test_a_heading_with_code_and_punctuation_keeps_underscores() -> None:
    heading = "3. Audit a run: `fedmodel audit RUN_DIR`"
    assert _slug(heading) == "3-audit-a-run-fedmodel-audit-run_dir"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_relative_link_resolves(page: Path) -> None:
    assert _broken_links(page) == []
