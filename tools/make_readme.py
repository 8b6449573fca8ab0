#!/usr/bin/env python3
"""Generate README.md from nbs/index.ipynb without Quarto (which cannot be installed offline).

Markdown cells are copied; code cells are shown as Python blocks unless they carry a `#|` hide/export directive.
The first cell's `# title` and `> description` become the README header; links relative to nbs/ (`../x`) are
rewritten relative to the repository root. Run from the repository root:
`python tools/make_readme.py` (writes README.md) or `--check` (exit 1 if README.md is out of date)."""
import json, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

def render(nb_path=ROOT / 'nbs' / 'index.ipynb'):
    nb = json.loads(Path(nb_path).read_text())
    parts = []
    for cell in nb['cells']:
        src = ''.join(cell['source']).strip()
        if not src: continue
        if cell['cell_type'] == 'markdown': parts.append(src)
        elif cell['cell_type'] == 'code':
            if any(l.startswith('#|') and any(d in l for d in ('hide', 'export', 'default_exp')) for l in src.splitlines()): continue
            parts.append('```python\n' + src + '\n```')
    return ('\n\n'.join(parts) + '\n').replace('](../', '](')      # links relative to nbs/ -> to the repository root

if __name__ == '__main__':
    text, readme = render(), ROOT / 'README.md'
    if '--check' in sys.argv:
        if not readme.exists() or readme.read_text() != text:
            sys.exit('README.md is out of date with nbs/index.ipynb: run python tools/make_readme.py')
    else: readme.write_text(text)
