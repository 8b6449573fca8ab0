"The package's import graph, read with ast (imports inside functions too): a DAG in chapter order."
import ast, json, re
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / 'semstylegan'
NBS = ROOT / 'nbs'
MAX_LINES = 500
ONE_CONCEPT = {         # module -> why it is one concept though longer than MAX_LINES
    'semstylegan.explore': 'the explorers: one widget layer (sliders, canvas, painter) over the editing functions'}
NOT_YET_SPLIT = {}      # module -> the most lines it may have until it is split (a ratchet: it may only shrink)

def module_name(path):
    parts = path.relative_to(ROOT).with_suffix('').parts
    return '.'.join(parts).removesuffix('.__init__')

def chapters():
    "Module -> the notebook that exports it (its path under nbs/, which orders the chapters; nbs/cli/ comes last)."
    out = {}
    for nb in sorted(NBS.rglob('*.ipynb')):
        if nb.name.startswith('_') or '.ipynb_checkpoints' in nb.parts: continue
        m = re.search(r'#\|\s*default_exp\s+([\w.]+)', nb.read_text())
        if m: out['semstylegan.' + m.group(1).removesuffix('.__init__')] = nb.relative_to(NBS).as_posix()
    return out

def imports(path, name):
    "(imported module, [names]) for every package import in the file, relative ones resolved."
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ''
            if node.level:
                pkg = name.split('.') if path.name == '__init__.py' else name.split('.')[:-1]
                pkg = pkg[:len(pkg) - node.level + 1]
                base = '.'.join(pkg + ([base] if base else []))
            yield base, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for a in node.names: yield a.name, []

def graph():
    files = {module_name(p): p for p in PKG.rglob('*.py') if p.name != '_modidx.py'}
    edges, private, argp = {m: set() for m in files}, [], []
    for m, p in files.items():
        for base, names in imports(p, m):
            if base == 'argparse' and '.cli' not in f'.{m}': argp.append(m)
            targets = [t for t in [base] + [f'{base}.{n}' for n in names] if t in files and t != m]
            edges[m].update(targets)
            if base in files and base != m:
                private += [f'{m} <- {base}.{n}' for n in names if n.startswith('_') and not n.startswith('__')]
    return files, edges, private, argp

def cycles(edges):
    "Strongly connected groups of more than one module (Tarjan)."
    idx, low, stack, on, comps = {}, {}, [], set(), []
    def visit(v):
        idx[v] = low[v] = len(idx)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in idx:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on: low[v] = min(low[v], idx[w])
        if low[v] == idx[v]:
            comp = []
            while not comp or comp[-1] != v:
                comp.append(stack.pop())
                on.discard(comp[-1])
            if len(comp) > 1: comps.append(sorted(comp))
    for v in edges:
        if v not in idx: visit(v)
    return comps

def test_every_module_has_a_chapter():
    files, *_ = graph()
    ch = chapters()
    missing = [m for m in files if m not in ch and m != 'semstylegan']
    assert not missing, f'modules no notebook exports (default_exp): {missing}'

def test_no_cycles():
    _, edges, _, _ = graph()
    assert cycles(edges) == []

def test_imports_point_to_earlier_chapters():
    "Every package import, inside functions too, goes to a module of an earlier chapter (or an earlier one in nbs/cli/)."
    _, edges, _, _ = graph()
    ch = chapters()
    later = [f'{a} ({ch[a]}) imports {b} ({ch[b]})' for a, bs in edges.items() for b in bs
             if a in ch and b in ch and ch[b] > ch[a]]
    assert later == [], '\n'.join(later)

def test_no_private_names_across_modules():
    _, _, private, _ = graph()
    assert private == []

def test_argparse_only_in_the_command_line():
    _, _, _, argp = graph()
    assert argp == [], f'argparse imported outside semstylegan/cli/: {sorted(set(argp))}'

def test_library_never_imports_the_command_line():
    _, edges, _, _ = graph()
    up = [f'{a} -> {b}' for a, bs in edges.items() for b in bs
          if '.cli' not in f'.{a}' and b.startswith('semstylegan.cli') and a != 'semstylegan']
    assert up == []

def test_module_sizes():
    files, *_ = graph()
    big = {m: len(p.read_text().splitlines()) for m, p in files.items()}
    over = {m: n for m, n in big.items() if n > NOT_YET_SPLIT.get(m, MAX_LINES) and m not in ONE_CONCEPT}
    assert over == {}, f'modules over {MAX_LINES} lines (split them, or say in ONE_CONCEPT why they are one concept)'
    stale = [m for m in {**NOT_YET_SPLIT, **ONE_CONCEPT} if big.get(m, 0) <= MAX_LINES]
    assert stale == [], f'no longer over {MAX_LINES} lines (or gone): take {stale} out of NOT_YET_SPLIT / ONE_CONCEPT'

def test_the_walk_sees_what_it_should(tmp_path):
    "The checks fail where they should: a cycle, a later import and a private import are found in a toy graph."
    assert cycles({'a': {'b'}, 'b': {'c'}, 'c': {'a'}, 'd': {'a'}}) == [['a', 'b', 'c']]
    p = tmp_path / 'semstylegan' / 'cli' / '__init__.py'
    p.parent.mkdir(parents=True)
    p.write_text('from ..edit import _x, y\nfrom .args import positive\ndef f():\n    import semstylegan.core\n')
    got = list(imports(p, 'semstylegan.cli'))
    assert got == [('semstylegan.edit', ['_x', 'y']), ('semstylegan.cli.args', ['positive']), ('semstylegan.core', [])]
