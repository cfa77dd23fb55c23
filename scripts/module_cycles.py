#!/usr/bin/env python3
"""Reports import cycles between the top-level modules of each crate (exit 1 if any).

A module `a` depends on `b` when a file of `a` (a.rs or a/**) names `crate::b` (in a `use` or a
path), or, inside a folder module, `super::b` from a direct child. Test modules (`#[cfg(test)]`
blocks at the end of a file) are ignored. Written by hand because no cargo tool reports
module-level cycles; it reads paths textually, which is what module structure is.
"""
import os
import re
import sys

def top_module(src_dir, path):
    rel = os.path.relpath(path, src_dir)
    first = rel.split(os.sep)[0]
    return first[:-3] if first.endswith('.rs') else first

def strip_tests(text):
    i = text.find('#[cfg(test)]\nmod tests')
    return text if i < 0 else text[:i]

def strip_comments(text):
    text = re.sub(r'//[^\n]*', '', text)
    return re.sub(r'/\*.*?\*/', '', text, flags=re.S)

def crate_graph(src_dir):
    mods = set()
    for name in os.listdir(src_dir):
        if name in ('lib.rs', 'main.rs'):
            continue
        if name.endswith('.rs') or os.path.isdir(os.path.join(src_dir, name)):
            mods.add(name[:-3] if name.endswith('.rs') else name)
    edges = {m: set() for m in mods}
    for root, _, files in os.walk(src_dir):
        for f in files:
            if not f.endswith('.rs'):
                continue
            path = os.path.join(root, f)
            if os.path.dirname(path) == src_dir and f in ('lib.rs', 'main.rs'):
                continue
            me = top_module(src_dir, path)
            text = strip_comments(strip_tests(open(path, encoding='utf-8').read()))
            names = set(re.findall(r'\bcrate::([a-z_][a-z0-9_]*)', text))
            # `use crate::{a, b::c}`
            for group in re.findall(r'\bcrate::\{([^}]*)\}', text):
                names.update(re.findall(r'(?:^|,)\s*([a-z_][a-z0-9_]*)', group))
            for n in names:
                if n in mods and n != me:
                    edges[me].add(n)
    return edges

def cycles(edges):
    # Tarjan's strongly connected components.
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]
    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
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
                out.append(sorted(comp))
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out

def main():
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..')
    dirs = [os.path.join(root, 'src')] + sorted(
        os.path.join(root, 'crates', c, 'src') for c in os.listdir(os.path.join(root, 'crates')))
    found = False
    for d in dirs:
        if not os.path.isdir(d):
            continue
        g = crate_graph(d)
        for comp in cycles(g):
            found = True
            crate = os.path.basename(os.path.dirname(d))
            print(f"module cycle in {crate}: {' <-> '.join(comp)}")
    sys.exit(1 if found else 0)

if __name__ == '__main__':
    main()
