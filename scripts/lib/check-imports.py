#!/usr/bin/env python3
"""Checks that each target's dependencies in Package.swift equal the modules its
Swift files import, so the manifest states (and enforces) the layering.

A dependency nobody imports hides the real seams; an import nobody declares
builds only through another target's dependencies, by accident. Either fails.

Usage: scripts/lib/check-imports.py [--tests=strict|warn]
  Product targets (Sources/) are always checked strictly; targets under Tests/
  too by default (--tests=warn prints a difference there but does not fail).
"""
import os
import re
import sys

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

# Modules that come with the toolchain or the OS: imported, never declared.
TOOLCHAIN = {
    "Foundation", "FoundationEssentials", "Glibc", "Darwin", "Musl", "Dispatch",
    "Synchronization", "Testing", "XCTest", "os", "_Concurrency", "Swift",
}

TARGET_RE = re.compile(r"\.(target|executableTarget|testTarget|systemLibrary)\(")
IMPORT_RE = re.compile(
    r"^\s*(?:@[A-Za-z_]+(?:\([^)]*\))?\s+)*(?:public\s+|internal\s+|package\s+)?"
    r"import\s+(?:(?:struct|class|enum|func|protocol|typealias|var|let)\s+)?([A-Za-z_][A-Za-z0-9_]*)"
)


def balanced_call(text, start):
    """The text of the call whose '(' is at text[start], up to its ')'."""
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "(":
            depth += 1
        elif text[i] == ")":
            depth -= 1
            if depth == 0:
                return text[start + 1:i]
    raise SystemExit("Package.swift: unbalanced parentheses")


def targets(manifest):
    text = re.sub(r"//[^\n]*", "", manifest)
    for match in TARGET_RE.finditer(text):
        kind = match.group(1)
        body = balanced_call(text, match.end() - 1)
        name = re.search(r'name:\s*"([^"]+)"', body).group(1)
        path = re.search(r'path:\s*"([^"]+)"', body)
        deps = set()
        dep_match = re.search(r"dependencies:\s*\[", body)
        if dep_match:
            depth, i = 1, dep_match.end()
            while depth:
                depth += {"[": 1, "]": -1}.get(body[i], 0)
                i += 1
            dep_text = body[dep_match.end():i - 1]
            deps |= set(re.findall(r'\.product\(\s*name:\s*"([^"]+)"', dep_text))
            dep_text = re.sub(r"\.product\([^)]*\)", "", dep_text)
            deps |= set(re.findall(r'"([^"]+)"', dep_text))
        folder = path.group(1) if path else os.path.join("Tests" if kind == "testTarget" else "Sources", name)
        yield kind, name, folder, deps


def imports(folder):
    found = set()
    for directory, _, files in os.walk(os.path.join(ROOT, folder)):
        for file in files:
            if file.endswith(".swift"):
                with open(os.path.join(directory, file), encoding="utf-8") as source:
                    for line in source:
                        match = IMPORT_RE.match(line)
                        if match:
                            found.add(match.group(1))
    return found - TOOLCHAIN


def main():
    tests_mode = "strict"
    for argument in sys.argv[1:]:
        if argument.startswith("--tests="):
            tests_mode = argument.split("=", 1)[1]
        else:
            raise SystemExit(__doc__)
    with open(os.path.join(ROOT, "Package.swift"), encoding="utf-8") as manifest:
        declared = list(targets(manifest.read()))
    failed = False
    for kind, name, folder, deps in declared:
        if kind == "systemLibrary":
            continue
        used = imports(folder)
        unused, undeclared = sorted(deps - used), sorted(used - deps)
        if not unused and not undeclared:
            continue
        strict = not folder.startswith("Tests") or tests_mode == "strict"
        label = "error" if strict else "warning"
        if unused:
            print(f"{label}: Package.swift: target {name} depends on {', '.join(unused)} but never imports it", file=sys.stderr)
        if undeclared:
            print(f"{label}: Package.swift: target {name} imports {', '.join(undeclared)} without depending on it", file=sys.stderr)
        failed = failed or strict
    if failed:
        print("make each target's dependencies in Package.swift equal its imports", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
