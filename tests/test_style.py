"The code the library exports from the notebooks keeps to the project's line length."
import json
from pathlib import Path

NBS = Path(__file__).resolve().parents[1] / 'nbs'
MAX = 120


def exported_lines(nb_path):
    "(cell number, line) for every line of the notebook's `#| export` code cells."
    cells = json.loads(nb_path.read_text())['cells']
    for i, c in enumerate(cells):
        lines = ''.join(c['source']).splitlines()
        if c['cell_type'] == 'code' and lines and lines[0].replace(' ', '') in ('#|export', '#|exports'):
            yield from ((i, line) for line in lines)


def test_exported_lines_are_at_most_120_characters():
    long = [f'{p.name} cell {i}: {len(line)} characters: {line[:60]}...'
            for p in sorted(NBS.glob('[0-9]*.ipynb')) for i, line in exported_lines(p) if len(line) > MAX]
    assert not long, f'{len(long)} exported lines over {MAX} characters:\n' + '\n'.join(long)
