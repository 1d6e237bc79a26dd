#!/usr/bin/env python3
"""Import circles among src/ modules, and functions over 80 lines.

A module is a file (src/cmd/status.rs is cmd::status, src/cloud/aws/mod.rs is cloud::aws). An
edge a -> b is a path in a's code (outside its #[cfg(test)] module) that names b, as
`crate::b::…`, `super::…` or a child module by name. A module and its own ancestors are not
counted as a circle (a parent declares and dispatches to its children, which use its types).
Exits 1, listing them, when there is a circle or a long function.
"""
import os
import re
import sys

SRC = os.path.relpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
MAX_LINES = 80


def module_of(path):
    rel = os.path.relpath(path, SRC)[:-3].split(os.sep)
    if rel[-1] in ("mod", "lib"):
        rel = rel[:-1]
    if rel and rel[0] == "bin":
        return None
    return tuple(rel)


def code_of(text):
    """The text without its test module and comments."""
    cut = re.search(r"#\[cfg\(test\)\]\s*mod tests", text)
    if cut:
        text = text[: cut.start()]
    return re.sub(r"//[^\n]*", "", text)


def main():
    files = {}
    for root, _, names in os.walk(SRC):
        for name in names:
            if name.endswith(".rs"):
                path = os.path.join(root, name)
                mod = module_of(path)
                if mod is not None:
                    files[mod] = path
    modules = set(files)
    edges = {m: set() for m in modules}

    def resolve(parts):
        for n in range(len(parts), 0, -1):
            if tuple(parts[:n]) in modules:
                return tuple(parts[:n])
        return None

    long_fns = []
    for mod, path in files.items():
        text = open(path, encoding="utf-8").read()
        code = code_of(text)
        uses = []
        for m in re.finditer(r"\bcrate((?:::\w+)+)", code):
            uses.append(m.group(1).strip(":").split("::"))
        for m in re.finditer(r"\bsuper((?:::\w+)+)", code):
            parent = list(mod[:-1]) if not path.endswith("mod.rs") else list(mod[:-1])
            uses.append(parent + m.group(1).strip(":").split("::"))
        for m in re.finditer(r"\bsuper::\{([^}]*)\}", code):
            parent = list(mod[:-1])
            for name in re.findall(r"\w+", m.group(1)):
                uses.append(parent + [name])
        for m in re.finditer(r"\bcrate::\{([^}]*)\}", code):
            for name in re.findall(r"(\w+)(?:::\w+)*", m.group(1)):
                uses.append([name])
        for target in filter(None, (resolve(u) for u in uses)):
            ancestor = target == mod[: len(target)] or mod == target[: len(mod)]
            if target != mod and not ancestor:
                edges[mod].add(target)
        # Functions: from `fn name(` to the line where its indentation closes.
        lines = code.split("\n")
        for i, line in enumerate(lines):
            m = re.match(r"(\s*)(pub(\([^)]*\))? )?(const )?(unsafe )?fn (\w+)", line)
            if not m or line.rstrip().endswith(";"):
                continue
            indent = m.group(1)
            for j in range(i + 1, len(lines)):
                if lines[j] == indent + "}":
                    if j - i + 1 > MAX_LINES:
                        long_fns.append(f"{path}:{i + 1} fn {m.group(6)}: {j - i + 1} lines")
                    break

    # Strongly connected components (Tarjan).
    index, low, stack, on, sccs = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                sccs.append(comp)

    sys.setrecursionlimit(10000)
    for v in sorted(modules):
        if v not in index:
            visit(v)
    for comp in sccs:
        names = sorted("::".join(c) for c in comp)
        print(f"import circle among {len(comp)} modules: {', '.join(names)}")
        for a in sorted(comp):
            for b in sorted(edges[a] & set(comp)):
                print(f"  {'::'.join(a)} -> {'::'.join(b)}")
    for f in long_fns:
        print(f"function over {MAX_LINES} lines: {f}")
    print(f"modules: {len(modules)}, import circles: {len(sccs)}, functions over {MAX_LINES} lines: {len(long_fns)}")
    return 1 if sccs or long_fns else 0


if __name__ == "__main__":
    sys.exit(main())
