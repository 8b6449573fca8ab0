"""The notebooks keep the project's rhythm: exported lines of at most 120 characters, one statement per line in
exported code, and code cells of at most 40 lines."""
import io, json, tokenize
from pathlib import Path

NBS = Path(__file__).resolve().parents[1] / 'nbs'
MAX = 120
MAX_CELL = 40


def chapters():
    "The chapter notebooks (numbered, in nbs/ and its folders such as nbs/cli/; not scratch `_*` notebooks)."
    return sorted(p for p in NBS.rglob('[0-9]*.ipynb') if not any(part.startswith(('_', '.')) for part in
                                                                    p.relative_to(NBS).parts))


def code_cells(nb_path):
    "(cell number, source) of the notebook's code cells."
    cells = json.loads(nb_path.read_text())['cells']
    return [(i, ''.join(c['source'])) for i, c in enumerate(cells) if c['cell_type'] == 'code']


def is_exported(source):
    first = (source.splitlines() or [''])[0].replace(' ', '')
    return first.startswith(('#|export', '#|exports'))


def exported_lines(nb_path):
    "(cell number, line) for every line of the notebook's `#| export` code cells."
    for i, source in code_cells(nb_path):
        if is_exported(source): yield from ((i, line) for line in source.splitlines())


def chained(source):
    "Line numbers of `;` between statements (not inside brackets or strings)."
    depth, lines = 0, []
    for t in tokenize.generate_tokens(io.StringIO(source).readline):
        if t.type == tokenize.OP and t.string in '([{': depth += 1
        if t.type == tokenize.OP and t.string in ')]}': depth -= 1
        if t.type == tokenize.OP and t.string == ';' and depth == 0: lines.append(t.start[0])
    return lines


def test_exported_lines_are_at_most_120_characters():
    long = [f'{p.relative_to(NBS)} cell {i}: {len(line)} characters: {line[:60]}...'
            for p in chapters() for i, line in exported_lines(p) if len(line) > MAX]
    assert not long, f'{len(long)} exported lines over {MAX} characters:\n' + '\n'.join(long)


def test_code_cells_are_at_most_40_lines():
    big = [f'{p.relative_to(NBS)} cell {i}: {len(s.splitlines())} lines'
           for p in chapters() for i, s in code_cells(p) if len(s.splitlines()) > MAX_CELL]
    advice = '(split them; `@patch` for a long class)'
    assert not big, f'{len(big)} code cells over {MAX_CELL} lines {advice}:\n' + '\n'.join(big)


def test_one_statement_per_line_in_exported_code():
    found = [f'{p.relative_to(NBS)} cell {i} line {n}' for p in chapters() for i, s in code_cells(p) if is_exported(s)
             for n in chained(s)]
    assert not found, f'{len(found)} `;`-chained statements in exported code:\n' + '\n'.join(found)


def test_the_checks_see_what_they_should():
    assert chained('a = 1; b = 2\nf(";")\nx = [1, 2]; y = {"k": (3, 4)}\n') == [1, 3]
    assert is_exported('#| export cli.args\nimport argparse') and not is_exported('test_eq(1, 1)')
