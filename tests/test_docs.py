"""The README and the pages under docs/: links that resolve, a README short enough to read, and
no page a reader cannot reach from it.

Links are read from the markdown as a reader's renderer would see them: fenced code blocks and
inline code are skipped (a `[x](y)` shown as code is not a link), absolute URLs are left alone
(tests never touch the network), and `#anchors` are checked against the headings of the target
page, slugged the way GitHub renders them.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
README_MAX_LINES = 200

_FENCE = re.compile(r"^\s*(```|~~~)")
_INLINE_CODE = re.compile(r"`+[^`]*`+")
_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def prose_lines(text: str, keep_code: bool = False) -> list[tuple[int, str]]:
    """(line number, line) outside fenced code blocks; inline code removed unless `keep_code`
    (a heading's code spans are part of its anchor)."""
    lines, fenced = [], False
    for number, line in enumerate(text.splitlines(), start=1):
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append((number, line if keep_code else _INLINE_CODE.sub("", line)))
    return lines


def links(text: str) -> list[tuple[int, str]]:
    return [(number, match.group(1)) for number, line in prose_lines(text)
            for match in _LINK.finditer(line)]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, markup and punctuation dropped, spaces to '-'."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps only its text
    text = text.replace("`", "").replace("*", "").lower()
    kept = [c for c in text if c in " -_" or unicodedata.category(c)[0] in "LN"]
    return "".join(kept).replace(" ", "-")


def anchors(text: str) -> set[str]:
    found: set[str] = set()
    seen: dict[str, int] = {}
    for _, line in prose_lines(text, keep_code=True):
        match = _HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def broken_links(page: Path) -> list[str]:
    """One line per link of `page` that does not resolve: a missing file, or an anchor that no
    heading of the target page produces."""
    problems = []
    text = page.read_text(encoding="utf-8")
    for number, target in links(text):
        if _SCHEME.match(target) or target.startswith("//"):
            continue
        path_part, _, anchor = target.partition("#")
        resolved = (page.parent / path_part).resolve() if path_part else page
        where = f"{page.relative_to(ROOT) if page.is_relative_to(ROOT) else page}:{number}"
        if not resolved.exists():
            problems.append(f"{where}: {target} -> no such file")
            continue
        markdown = resolved.suffix == ".md" and resolved.is_file()
        if anchor and markdown and anchor not in anchors(resolved.read_text(encoding="utf-8")):
            problems.append(f"{where}: {target} -> no heading makes #{anchor}")
    return problems


def doc_pages() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def test_every_relative_link_resolves() -> None:
    problems = [problem for page in doc_pages() for problem in broken_links(page)]
    assert not problems, "broken links:\n" + "\n".join(problems)


def test_the_checker_reports_broken_links_and_anchors(tmp_path: Path) -> None:
    """The check above must be able to fail: a page with one good link, one to a missing file and
    one to a missing anchor is reported for exactly the two broken ones."""
    (tmp_path / "other.md").write_text("# Other page\n\n## A section: with `code`\n")
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n"
        "[good](other.md#a-section-with-code) and [self](#page)\n"
        "[missing file](nowhere.md)\n"
        "[missing anchor](other.md#no-such-section)\n"
        "`[shown as code](ignored.md)` and [web](https://example.com/x)\n"
        "```\n[in a code block](also-ignored.md)\n```\n")
    problems = broken_links(page)
    assert len(problems) == 2, problems
    assert "nowhere.md -> no such file" in problems[0]
    assert "other.md#no-such-section -> no heading makes #no-such-section" in problems[1]


def test_slugs_follow_github() -> None:
    assert slug("One job's path") == "one-jobs-path"
    assert slug("Agent: 1 GiB download") == "agent-1-gib-download"
    assert slug("The newest releases: make test-latest") == "the-newest-releases-make-test-latest"
    assert slug("`morag-agent test-connection`") == "morag-agent-test-connection"
    assert anchors("# Tests\n## Tests\n") == {"tests", "tests-1"}


def test_readme_fits_in_200_lines() -> None:
    count = len(README.read_text(encoding="utf-8").splitlines())
    assert count <= README_MAX_LINES, f"README.md has {count} lines (at most {README_MAX_LINES})"


def test_every_docs_page_is_linked_from_the_readme() -> None:
    linked = {(README.parent / target.partition("#")[0]).resolve()
              for _, target in links(README.read_text(encoding="utf-8"))
              if not _SCHEME.match(target)}
    unlinked = [p.name for p in sorted(DOCS.glob("*.md")) if p.resolve() not in linked]
    assert not unlinked, f"docs pages the README does not link: {unlinked}"


def test_benchmarks_page_covers_exactly_the_bench_scripts() -> None:
    """Every figure on the benchmarks page comes from a script in tests/bench/: each script the
    page names exists, and each benchmark script has its table there."""
    text = (DOCS / "benchmarks.md").read_text(encoding="utf-8")
    named = set(re.findall(r"tests/bench/([\w.]+\.py)", text))
    missing = sorted(name for name in named if not (ROOT / "tests" / "bench" / name).is_file())
    assert not missing, f"benchmarks.md names scripts that do not exist: {missing}"
    scripts = {p.name for p in (ROOT / "tests" / "bench").glob("bench_*.py")}
    untabled = sorted(scripts - named)
    assert not untabled, f"bench scripts without a table in benchmarks.md: {untabled}"
