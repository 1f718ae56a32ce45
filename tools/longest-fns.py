#!/usr/bin/env python3
"""Lists the longest non-test Rust functions of the workspace (lines from `fn` to its closing brace).

Usage: tools/longest-fns.py [--top N] [--over LINES]
Test code is left out: files under tests/ or benches/, files named tests.rs or *_tests.rs, and everything after a
`#[cfg(test)]` line. Braces inside string literals and comments are counted too (rough, but enough to spot
long functions).
"""
import argparse
import pathlib
import re
import subprocess

FN = re.compile(r"^\s*(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?(unsafe\s+)?fn\s+(\w+)")


def is_test_file(path: str) -> bool:
    parts = pathlib.PurePath(path).parts
    name = parts[-1]
    return "tests" in parts[:-1] or "benches" in parts or name == "tests.rs" or name.endswith("_tests.rs")


def functions(path: str):
    lines = pathlib.Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    i = 0
    while i < len(lines):
        if lines[i].strip().startswith("#[cfg(test)]"):
            return
        m = FN.match(lines[i])
        if not m:
            i += 1
            continue
        depth, opened, j = 0, False, i
        while j < len(lines):
            depth += lines[j].count("{") - lines[j].count("}")
            opened = opened or "{" in lines[j]
            if ";" in lines[j] and not opened:
                break  # a declaration without a body
            if opened and depth <= 0:
                yield m.group(6), i + 1, j - i + 1
                break
            j += 1
        i += 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--top", type=int, default=10, help="how many to list (default 10)")
    ap.add_argument("--over", type=int, default=0, help="list only functions longer than this")
    args = ap.parse_args()
    files = subprocess.run(["git", "ls-files", "*.rs"], capture_output=True, text=True, check=True).stdout.split()
    found = []
    for path in files:
        if is_test_file(path):
            continue
        for name, line, length in functions(path):
            if length > args.over:
                found.append((length, f"{path}:{line}", name))
    found.sort(reverse=True)
    for length, where, name in found[: args.top]:
        print(f"{length:5} {where} {name}")


if __name__ == "__main__":
    main()
