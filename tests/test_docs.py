"""The documentation site built by tools/build_docs.py: one page per chapter, internal links and the doc links in
semstylegan/_modidx.py resolve (anchors included), stored figures are embedded, `#| hide` cells are left out."""
import importlib.util, re, runpy
from collections import namedtuple
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

DEV = 'the dev extra is not installed: pip install -e ".[dev]"'
nbformat = pytest.importorskip('nbformat', reason=DEV)
pytest.importorskip('nbconvert', reason=DEV)                     # tools/build_docs.py renders with it

ROOT = Path(__file__).resolve().parent.parent
NBS = ROOT / 'nbs'
CHAPTER_PREFIX = re.compile(r'^\d+[a-zA-Z0-9]*_')
DIRECTIVE = re.compile(r'^\s*#\s*\|')
HIDE = re.compile(r'^\s*#\s*\|\s*(hide\b|include:\s*false)')


def load_build_docs():
    spec = importlib.util.spec_from_file_location('build_docs', ROOT / 'tools' / 'build_docs.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build_docs = load_build_docs()


class Page(HTMLParser):
    "The ids, the href/src references, the current nav entry and the code-cell sources of one HTML page."

    def __init__(self, path):
        super().__init__()
        self.ids, self.refs, self.current, self.code = set(), [], [], []
        self.editor_divs, self.pre = [], None
        self.feed(path.read_text(encoding='utf-8'))

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.ids.update(v for k, v in attrs.items() if k == 'id' or (tag == 'a' and k == 'name'))
        self.refs += [v for k, v in attrs.items() if k in ('href', 'src') and v is not None]
        if attrs.get('aria-current') == 'page':
            self.current.append(attrs.get('href'))
        if tag == 'div':
            self.editor_divs.append('jp-InputArea-editor' in (attrs.get('class') or '').split())
        if tag == 'pre' and any(self.editor_divs):
            self.pre = []

    def handle_endtag(self, tag):
        if tag == 'div' and self.editor_divs:
            self.editor_divs.pop()
        if tag == 'pre' and self.pre is not None:
            self.code.append(''.join(self.pre).strip())
            self.pre = None

    def handle_data(self, data):
        if self.pre is not None:
            self.pre.append(data)


def page_name(nb_path):
    "The page of a notebook, named from the site's root: `01_layers.ipynb` -> `layers.html`, `cli/00_args` -> `cli/args`."
    name = CHAPTER_PREFIX.sub('', nb_path.name.lower()).removesuffix('.ipynb') + '.html'
    folder = nb_path.parent.relative_to(NBS).as_posix()
    return name if folder == '.' else f'{folder}/{name}'


def chapter_notebooks(nbs=NBS):
    chapters = [p for p in nbs.rglob('*.ipynb') if p.name == 'index.ipynb' or CHAPTER_PREFIX.match(p.name)]
    return sorted((p for p in chapters if not any(part.startswith(('_', '.')) for part in p.relative_to(nbs).parts)),
                  key=lambda p: p.relative_to(nbs).as_posix())


def leading_directives(source):
    lines = source.splitlines()
    n = next((i for i, line in enumerate(lines) if line.strip() and not DIRECTIVE.match(line)), len(lines))
    return lines[:n], '\n'.join(lines[n:]).strip()


def is_hidden(cell):
    return any(HIDE.match(line) for line in leading_directives(cell.source)[0])


def code_cells(nb):
    return [c for c in nb.cells if c.cell_type == 'code']


def broken_links(site):
    "Every relative href/src of every page that names a missing file, a missing id, or is root-absolute."
    pages = {p: Page(p) for p in site.rglob('*.html')}
    broken = []
    for path, page in pages.items():
        for ref in page.refs:
            parts = urlsplit(ref)
            if parts.scheme or parts.netloc:
                continue
            target = (path.parent / unquote(parts.path)).resolve() if parts.path else path
            if parts.path.startswith('/') or not target.is_file():
                broken.append(f'{path.name}: {ref} (no such file)')
            elif parts.fragment and unquote(parts.fragment) not in pages[target].ids:
                broken.append(f'{path.name}: {ref} (no such id in {target.name})')
    return broken


Built = namedtuple('Built', 'out notebooks')


def snapshot():
    return {p: p.read_bytes() for p in chapter_notebooks()}


@pytest.fixture(scope='module')
def built(tmp_path_factory):
    "The site and the notebooks it was built from (built again if someone saved a notebook meanwhile)."
    out = tmp_path_factory.mktemp('site') / '_docs'
    for _ in range(3):
        before = snapshot()
        assert build_docs.main(['--out', str(out)]) == 0
        if snapshot() == before:
            break
    return Built(out, {p: nbformat.reads(text.decode(), as_version=4) for p, text in before.items()})


@pytest.fixture(scope='module')
def site(built):
    return built.out


def test_every_chapter_has_a_page(built):
    site = built.out
    expected = [page_name(p) for p in built.notebooks]
    assert 'index.html' in expected and len(expected) > 1
    assert [name for name in expected if not (site / name).is_file()] == []
    assert (site / '.nojekyll').is_file()
    assert not list(site.glob('_*.html'))


def test_internal_links_and_anchors_resolve(site):
    assert broken_links(site) == []


def site_paths(site, page, refs):
    "The relative links `refs` of `page` as paths from the site's root (links elsewhere left out)."
    out = []
    for ref in refs:
        parts = urlsplit(ref)
        target = (site / page).parent.joinpath(unquote(parts.path)).resolve()
        if not parts.scheme and not parts.netloc and parts.path and target.is_relative_to(site.resolve()):
            out.append(target.relative_to(site.resolve()).as_posix())
    return out


def test_navigation_lists_every_chapter_and_marks_the_current_one(built):
    site = built.out
    names = [page_name(p) for p in built.notebooks]
    for name in names:
        page = Page(site / name)
        assert set(names) <= set(site_paths(site, name, page.refs)), name
        assert site_paths(site, name, page.current) == [name]


def test_modidx_doc_links_resolve(site):
    modidx = runpy.run_path(str(ROOT / 'semstylegan' / '_modidx.py'))['d']
    prefix = modidx['settings']['doc_host'] + modidx['settings']['doc_baseurl'] + '/'
    urls = {url for syms in modidx['syms'].values() for url, _ in syms.values()}
    assert urls
    ids = {p.relative_to(site).as_posix(): Page(p).ids for p in site.rglob('*.html')}
    missing = []
    for url in sorted(urls):
        name, _, anchor = url.removeprefix(prefix).partition('#')
        if anchor not in ids.get(name, ()):
            missing.append(url)
    assert missing == []


def test_stored_png_figures_are_embedded(built):
    site = built.out
    stored = any('image/png' in out.get('data', {}) for nb in built.notebooks.values() for c in code_cells(nb)
                 if not is_hidden(c) for out in c.get('outputs', []))
    if not stored:
        pytest.skip('no committed chapter stores a PNG output')
    assert any('data:image/png;base64' in p.read_text(encoding='utf-8') for p in site.glob('*.html'))


def test_hidden_cells_are_left_out_and_the_others_shown(built):
    for nb_path, nb in built.notebooks.items():
        cells = code_cells(nb)
        shown = [leading_directives(c.source)[1] for c in cells if not is_hidden(c)]
        hidden = {leading_directives(c.source)[1] for c in cells if is_hidden(c)} - set(shown)
        rendered = Page(built.out / page_name(nb_path)).code
        assert sorted(filter(None, shown)) == sorted(rendered), nb_path.name
        assert hidden.isdisjoint(rendered), nb_path.name


def write_notebook(path, *cells):
    nb = nbformat.v4.new_notebook(cells=list(cells))
    nbformat.write(nb, path)


def test_links_between_notebooks_assets_and_anchors(tmp_path):
    nbs = tmp_path / 'nbs'
    nbs.mkdir()
    (tmp_path / 'pic.png').write_bytes(b'\x89PNG\r\n\x1a\n')
    md, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell
    write_notebook(nbs / 'index.ipynb', md('# Home\n\n[first](./01_first.ipynb#Section) ![pic](../pic.png)'))
    write_notebook(nbs / '01_first.ipynb', md('# First\n\n## Section\n\n[home](index.ipynb)'),
                   code('#| default_exp first'), code('#| export\ndef f(): pass\nclass K:\n    def m(self): pass'),
                   code('#| hide\nsecret_value = 42'), code('#| export\n#| hide\ndef g(): pass'))
    write_notebook(nbs / '_scratch.ipynb', md('# Scratch'))
    out = tmp_path / 'site'
    assert build_docs.main(['--nbs', str(nbs), '--out', str(out)]) == 0
    assert sorted(p.name for p in out.glob('*.html')) == ['first.html', 'index.html']
    assert {'first.html#Section', 'assets/pic.png'} <= set(Page(out / 'index.html').refs)
    first = Page(out / 'first.html')
    assert {'f', 'k', 'k.m', 'g'} <= first.ids, 'exported names get anchors, hidden ones too'
    assert first.code == ['def f(): pass\nclass K:\n    def m(self): pass']
    assert 'secret_value' not in (out / 'first.html').read_text()
    assert broken_links(out) == []
    assert build_docs.main(['--nbs', str(nbs), '--out', str(out)]) == 0, 'a previous build is replaced'


def test_unreadable_notebook_fails_with_its_name(tmp_path, capsys):
    nbs = tmp_path / 'nbs'
    nbs.mkdir()
    (nbs / '01_bad.ipynb').write_text('{not json')
    assert build_docs.main(['--nbs', str(nbs), '--out', str(tmp_path / 'site')]) == 1
    assert '01_bad.ipynb' in capsys.readouterr().err


def test_refuses_to_replace_a_folder_that_is_not_a_build(tmp_path, capsys):
    out = tmp_path / 'site'
    out.mkdir()
    (out / 'keep.txt').write_text('mine')
    assert build_docs.main(['--nbs', str(NBS), '--out', str(out)]) == 1
    assert (out / 'keep.txt').read_text() == 'mine'
    assert 'site' in capsys.readouterr().err
