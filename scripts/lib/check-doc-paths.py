#!/usr/bin/env python3
"""Fails when the docs name a file, a link target or a test that does not exist.

Reads README.md, ARCHITECTURE.md, CONTRIBUTING.md and docs/*.md and checks:
  - every repository path they mention (Sources/…, Tests/…, scripts/…, Config/…,
    docs/…, systemd/…, udev/…, debian/…, Benchmarks/…, .ci/…) exists;
  - every relative Markdown link points at an existing file, and its #anchor
    (in a Markdown file) at one of that file's headings;
  - every test named in backticks exists: `SuiteTests` is a suite declared under
    Tests/, `SuiteTests.testName` a test of that suite (`SuiteTests.prefix…`:
    a test of that suite whose name starts with prefix).

usage: scripts/lib/check-doc-paths.py   (exit 1 with one line per problem)
"""
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ["README.md", "ARCHITECTURE.md", "CONTRIBUTING.md"] + sorted(
    str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))

TOP = r"(?:Sources|Tests|scripts|Config|docs|systemd|udev|debian|Benchmarks|\.ci)"
REPO_PATH = re.compile(r"(?<![\w./~-])(" + TOP + r"/[A-Za-z0-9_.+@/-]*)")
LINK = re.compile(r"\]\(([^)\s]+)\)")
BACKTICKED = re.compile(r"`([^`\n]+)`")
TEST_NAME = re.compile(r"^([A-Z]\w*Tests)(?:\.(\w+)(…)?)?$")
# A path followed by one of these is a pattern (`scripts/lib/bench-*`, `Tests/<Suite>`).
PATTERN_NEXT = set("*<{[")


def test_declarations():
    """Suite name -> the names of the functions declared in its bodies and extensions."""
    suites = {}
    declaration = re.compile(r"^\s*(?:@Suite[^\n]*?\s)?(?:public\s+|final\s+)*"
                             r"(?:struct|class|enum|actor|extension)\s+([A-Z]\w*Tests)\b")
    function = re.compile(r"\bfunc\s+(\w+)")
    for source in (ROOT / "Tests").rglob("*.swift"):
        current = None
        for line in source.read_text(errors="replace").splitlines():
            match = declaration.match(line)
            if match:
                current = suites.setdefault(match.group(1), set())
            elif re.match(r"^(?:@\w+[^\n]*\s)?(?:struct|class|enum|actor|extension|func)\b", line):
                current = None  # a top-level declaration of something else
            if current is not None:
                current.update(function.findall(line))
    return suites


def anchors(markdown):
    """The anchors GitHub gives a file's headings (lower case, punctuation dropped, spaces to -)."""
    found = set()
    fenced = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            found.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return found


def problems_in(doc, text, suites):
    found = []
    for match in REPO_PATH.finditer(text):
        path = match.group(1).rstrip(".,:;")
        following = text[match.end():match.end() + 1]
        if following in PATTERN_NEXT:
            continue
        if not (ROOT / path).exists():
            found.append("%s names %s, which does not exist" % (doc, path))
    for target in LINK.findall(text):
        if re.match(r"^(?:[a-z]+:|#)", target):
            continue
        path, _, fragment = target.partition("#")
        linked = (ROOT / doc).parent / path if path else ROOT / doc
        if not linked.exists():
            found.append("%s links to %s, which does not exist" % (doc, path))
        elif fragment and linked.suffix == ".md" and fragment not in anchors(linked.read_text()):
            found.append("%s links to %s#%s, which has no such heading" % (doc, path or doc, fragment))
    for span in BACKTICKED.findall(text):
        match = TEST_NAME.match(span.strip())
        if not match:
            continue
        suite, test, is_prefix = match.groups()
        if test is None and (ROOT / "Tests" / suite).is_dir():
            continue  # a test target
        if suite not in suites:
            found.append("%s names the test suite %s, which Tests/ does not declare" % (doc, suite))
        elif test and not any(name == test or (is_prefix and name.startswith(test))
                              for name in suites[suite]):
            found.append("%s names the test %s.%s%s, which %s does not have"
                         % (doc, suite, test, is_prefix or "", suite))
    return found


def main():
    suites = test_declarations()
    problems = []
    for doc in DOCS:
        if (ROOT / doc).exists():
            problems += problems_in(doc, (ROOT / doc).read_text(), suites)
    for problem in sorted(set(problems)):
        print(problem, file=sys.stderr)
    if problems:
        sys.exit("the docs name %d missing file(s) or test(s): fix the docs (or the name)" % len(set(problems)))
    print("docs: every file, link and test named exists (%s)" % ", ".join(DOCS))


if __name__ == "__main__":
    main()
