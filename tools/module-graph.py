#!/usr/bin/env python3
"""Prints which top-level modules of a crate import which (from `crate::<module>` paths in non-test code) and
the import cycles among them.

Usage: tools/module-graph.py CRATE_DIR     e.g. tools/module-graph.py controller
Comments and test code are left out: files named tests.rs or *_tests.rs, files under a tests/ folder, and everything after a
`#[cfg(test)] mod tests` line. Rough (text, not a parser), but enough to see the layering.
"""
import collections
import os
import re
import sys


def module_of(rel_path: str) -> str:
    parts = rel_path.split(os.sep)
    return parts[0][:-3] if len(parts) == 1 else parts[0]


def is_test(rel_path: str) -> bool:
    parts = rel_path.split(os.sep)
    name = parts[-1]
    return "tests" in parts[:-1] or name == "tests.rs" or name.endswith("_tests.rs")


def edges_of(src: str) -> dict:
    edges = collections.defaultdict(set)
    for folder, _, files in os.walk(src):
        for name in files:
            if not name.endswith(".rs"):
                continue
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, src)
            module = module_of(rel)
            if module in ("lib", "main") or is_test(rel):
                continue
            text = open(path, encoding="utf-8").read()
            text = re.sub(r"#\[cfg\(test\)\]\s*mod tests\s*\{.*", "", text, flags=re.S)
            # Doc links and comments name modules without importing them.
            text = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("//"))
            for m in re.finditer(r"crate::([a-z_]+)", text):
                target = m.group(1)
                is_module = os.path.exists(os.path.join(src, target)) or os.path.exists(
                    os.path.join(src, target + ".rs")
                )
                if is_module and target != module:
                    edges[module].add(target)
    return edges


def cycles_of(edges: dict) -> list:
    state, found = {}, []

    def visit(node, stack):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [])
    return found


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    edges = edges_of(os.path.join(sys.argv[1], "src"))
    for module in sorted(edges):
        print(f"{module:12} -> {', '.join(sorted(edges[module]))}")
    cycles = cycles_of(edges)
    print("cycles:", "none" if not cycles else "; ".join(" -> ".join(c) for c in cycles))
    sys.exit(1 if cycles else 0)


if __name__ == "__main__":
    main()
