#!/usr/bin/env python3
"""Build the documentation website from the notebooks, without Quarto (which cannot be installed offline).

    .venv/bin/python tools/build_docs.py [--out _docs] [--nbs nbs]

Renders nbs/index.ipynb and the numbered chapters nbs/NN_*.ipynb (not the scratch notebooks `_*.ipynb`) with
nbconvert's HTMLExporter, as they are on disk: nothing is executed, the stored outputs (figures, tables, widget
state) are shown and MathJax renders the LaTeX. Pages are named as nbdev names them (`01_layers.ipynb` ->
`layers.html`), so the documentation links in semstylegan/_modidx.py resolve, and every exported top-level
`def`/`class` (and method) gets the anchor nbdev gives it (`layers.html#upfirdn2d`, `bench.html#_held.__init__`).

Cells with `#| hide` (or `#| include: false`, or the tag `hide`) are dropped, leading `#|` directive lines are
removed from the code shown, and each page gets a sidebar of all chapters plus previous/next links. Links to other
notebooks (`02_latent.ipynb#x`) become links to their pages; files referenced by relative path (images) are copied
under `assets/`. All links are relative, so the folder works from file:// and from GitHub Pages (`.nojekyll` added).
The shared stylesheet is written once (`style-<hash>.css`) instead of being inlined in every page.

The output folder is replaced if it holds a previous build (it has `.nojekyll`); any other non-empty folder is
refused. Prints a one-line summary and exits 0, or prints `file: reason` and exits 1.
"""
import argparse, ast, hashlib, html, re, shutil, sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import nbformat
from nbconvert import HTMLExporter

ROOT = Path(__file__).resolve().parent.parent
CHAPTER_PREFIX = re.compile(r'^\d+[a-zA-Z0-9]*_')          # nbdev's rule for the page name: strip it
DIRECTIVE = re.compile(r'^\s*#\s*\|\s*(.*?)\s*$')
EXPORTS = {'export', 'exports', 'exporti'}
DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
REFERENCE = re.compile(r'(<[a-zA-Z][^<>]*?\s(?:href|src)=")([^"]*)(")')     # an attribute inside a tag
HEAD_STYLE = re.compile(r'<style[^>]*>(.*?)</style>\s*', re.S)

TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- block html_head_css -%}<style type="text/css">{{ resources.docs.css }}</style>{%- endblock html_head_css -%}
{%- block body_header -%}
<body class="jp-Notebook docs-page" data-jp-theme-light="true" data-jp-theme-name="JupyterLab Light">
{{ resources.docs.nav }}
<main>
{%- endblock body_header -%}
{%- block body_footer -%}
{{ resources.docs.pager }}
</main>
</body>
{%- endblock body_footer -%}
{%- block any_cell scoped -%}
{%- for name in cell.metadata.get('doc_anchors', []) %}<a id="{{ name }}"></a>{% endfor -%}
{{ super() }}
{%- endblock any_cell -%}
"""

SITE_CSS = """
.docs-nav { position: fixed; top: 0; bottom: 0; left: 0; width: 15rem; box-sizing: border-box; overflow-y: auto;
  padding: 1rem 0.75rem; border-right: 1px solid #ddd; background: #f8f8f8;
  font-family: var(--jp-ui-font-family); font-size: 14px; }
.docs-nav ol { list-style: none; margin: 0; padding: 0; }
.docs-nav a { display: block; padding: 0.25rem 0.5rem; border-radius: 4px; color: #333; text-decoration: none; }
.docs-nav a:hover { background: #eaeaea; }
.docs-nav a[aria-current="page"] { background: #dfe9f8; font-weight: 600; }
body.docs-page main { margin-left: 15rem; padding: 1rem 2rem; max-width: 60rem; }
.docs-pager { display: flex; justify-content: space-between; gap: 1rem; margin: 2rem 0 1rem; padding-top: 1rem;
  border-top: 1px solid #ddd; font-family: var(--jp-ui-font-family); }
@media (max-width: 800px) {
  .docs-nav { position: static; width: auto; border-right: 0; border-bottom: 1px solid #ddd; }
  body.docs-page main { margin-left: 0; padding: 1rem; }
}
"""


class BuildError(Exception):
    "A problem with one input file: the message says which file and why."


@dataclass
class Chapter:
    source: Path
    page: str
    title: str
    nb: nbformat.NotebookNode


def page_name(nb_path, nbs=None):
    "nbdev's page for a notebook: `01_layers.ipynb` -> `layers.html`, `cli/00_args.ipynb` -> `cli/args.html`."
    name = CHAPTER_PREFIX.sub('', nb_path.name.lower()).removesuffix('.ipynb') + '.html'
    folder = nb_path.parent.relative_to(nbs).as_posix() if nbs is not None else '.'
    return name if folder == '.' else f'{folder}/{name}'


def relative(page, current):
    "The link from page `current` to page (or file) `page`, both named from the site's root."
    return '../' * current.count('/') + page


def find_notebooks(nbs):
    "index.ipynb first, then the numbered chapters in order; scratch notebooks (`_*`) are skipped."
    def chapter(p):
        parts = p.relative_to(nbs).parts
        return CHAPTER_PREFIX.match(p.name) and not any(part.startswith(('_', '.')) for part in parts)
    numbered = sorted((p for p in nbs.rglob('*.ipynb') if chapter(p)), key=lambda p: p.relative_to(nbs).as_posix())
    index = [nbs / 'index.ipynb'] if (nbs / 'index.ipynb').exists() else []
    return index + numbered


def read_notebook(path):
    try:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, nbformat.ValidationError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise BuildError(f'{path}: not a readable notebook ({reason}); open and save it in Jupyter, '
                         'or restore it from git') from None
    return nb


def first_heading(nb):
    headings = (line[2:].strip() for cell in nb.cells if cell.cell_type == 'markdown'
                for line in cell.source.splitlines() if line.startswith('# '))
    return next(headings, None)


def load_chapter(path, nbs=None):
    nb = read_notebook(path)
    return Chapter(path, page_name(path, nbs), first_heading(nb) or path.stem, nb)


def split_directives(source):
    "Leading `#| name value` lines as {name: value}, and the code after them (nbdev: directives come first)."
    lines = source.splitlines(keepends=True)
    directives = {}
    for n, line in enumerate(lines):
        match = DIRECTIVE.match(line)
        if not match and line.strip():
            return directives, ''.join(lines[n:])
        if match:
            name, _, value = match.group(1).replace(':', ' ', 1).partition(' ')
            directives[name] = value.strip()
    return directives, ''


def is_hidden(cell, directives):
    tags = cell.metadata.get('tags', [])
    return 'hide' in directives or directives.get('include') == 'false' or 'hide' in tags or 'remove-cell' in tags


def patched_class(node):
    "The class a `@patch` function is added to (its `self` annotation), as nbdev's _modidx names it; else None."
    decorators = [d.func if isinstance(d, ast.Call) else d for d in getattr(node, 'decorator_list', [])]
    patched = any(isinstance(d, ast.Name) and d.id == 'patch' for d in decorators)     # @patch, @patch(cls_method=True)
    annotation = node.args.args[0].annotation if patched and node.args.args else None
    return annotation.id if isinstance(annotation, ast.Name) else None


def exported_names(code):
    "The anchors nbdev's _modidx gives the definitions in an exported cell: `name` and `class.method`, lowercased."
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return []
    names = []
    for node in tree.body:
        if isinstance(node, DEFINITIONS):
            names.append(f'{patched_class(node)}.{node.name}' if patched_class(node) else node.name)
        if isinstance(node, ast.ClassDef):
            names += [f'{node.name}.{sub.name}' for sub in node.body if isinstance(sub, DEFINITIONS)]
    return [name.lower() for name in names]


def prepare_cell(cell):
    "The cell as shown (directives removed; anchors in metadata), or None to drop it."
    if cell.cell_type != 'code':
        return cell
    directives, code = split_directives(cell.source)
    anchors = exported_names(code) if EXPORTS & directives.keys() else []
    if is_hidden(cell, directives):
        return anchor_cell(anchors) if anchors else None
    if not code.strip() and not cell.outputs:
        return None
    cell.source = code
    cell.metadata['doc_anchors'] = anchors
    return cell


def anchor_cell(anchors):
    "An empty cell that only carries the anchors of a hidden exported cell."
    return nbformat.v4.new_markdown_cell('', metadata={'doc_anchors': anchors})


def prepare_notebook(nb):
    nb = nbformat.from_dict(nb)
    nb.cells = [cell for cell in map(prepare_cell, nb.cells) if cell is not None]
    return nb


def nav_html(chapters, current):
    items = []
    for chapter in chapters:
        mark = ' aria-current="page"' if chapter is current else ''
        items.append(f'<li><a href="{relative(chapter.page, current.page)}"{mark}>{html.escape(chapter.title)}</a></li>')
    return '<nav class="docs-nav" aria-label="Chapters"><ol>\n' + '\n'.join(items) + '\n</ol></nav>'


def pager_link(chapter, rel, label, current):
    "A previous/next link (`label` has `{}` for the title), or an empty placeholder at either end."
    if chapter is None:
        return '<span></span>'
    return f'<a rel="{rel}" href="{relative(chapter.page, current.page)}">{label.format(html.escape(chapter.title))}</a>'


def pager_html(chapters, current):
    n = chapters.index(current)
    prev_link = pager_link(chapters[n - 1] if n > 0 else None, 'prev', '&larr; {}', current)
    next_link = pager_link(chapters[n + 1] if n + 1 < len(chapters) else None, 'next', '{} &rarr;', current)
    return f'<nav class="docs-pager" aria-label="Previous and next">{prev_link}{next_link}</nav>'


class Site:
    "Writes the pages, the shared stylesheet and the copied assets into `out`."

    def __init__(self, nbs, out):
        self.root = nbs.resolve().parent                    # assets are copied from under here (the repository)
        self.out = out
        self.pages = {}
        self.exporter = HTMLExporter(template_name='lab', raw_template=TEMPLATE,
                                     exclude_input_prompt=True, exclude_output_prompt=True)

    def build(self, chapters):
        self.pages = {chapter.source.resolve(): chapter.page for chapter in chapters}
        for chapter in chapters:
            self.write_page(chapter, chapters)
        (self.out / '.nojekyll').write_text('')

    def write_page(self, chapter, chapters):
        docs = {'css': SITE_CSS, 'nav': nav_html(chapters, chapter), 'pager': pager_html(chapters, chapter)}
        title = chapter.title if chapter is chapters[0] else f'{chapter.title} - {chapters[0].title}'
        resources = {'metadata': {'name': title, 'path': str(chapter.source.parent)}, 'docs': docs}
        body, _ = self.exporter.from_notebook_node(prepare_notebook(chapter.nb), resources=resources)
        body = REFERENCE.sub(lambda m: m.group(1) + self.rewrite(m.group(2), chapter) + m.group(3), body)
        (self.out / chapter.page).parent.mkdir(parents=True, exist_ok=True)
        (self.out / chapter.page).write_text(self.link_stylesheet(body, chapter.page), encoding='utf-8')

    def rewrite(self, ref, chapter):
        "A relative reference from the notebook, as seen from the site: notebook -> page, file -> copied asset."
        parts = urlsplit(html.unescape(ref))
        if parts.scheme or parts.netloc or not parts.path or parts.path in self.pages.values():
            return ref
        target = (chapter.source.parent / parts.path).resolve()
        fragment = '#' + parts.fragment if parts.fragment else ''
        if target in self.pages:
            return html.escape(relative(self.pages[target], chapter.page) + fragment)
        if target.is_file() and target.is_relative_to(self.root):
            return html.escape(relative(self.copy_asset(target), chapter.page) + fragment)
        print(f'build_docs: warning: {chapter.source}: {ref} does not resolve', file=sys.stderr)
        return ref

    def copy_asset(self, path):
        relative = Path('assets') / path.relative_to(self.root)
        (self.out / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, self.out / relative)
        return relative.as_posix()

    def link_stylesheet(self, page, current):
        "Move the page's <head> styles (the same for every page) into one shared stylesheet."
        head, end, body = page.partition('</head>')
        css = '\n'.join(HEAD_STYLE.findall(head))
        name = f'style-{hashlib.sha1(css.encode()).hexdigest()[:10]}.css'
        (self.out / name).write_text(css, encoding='utf-8')
        link = f'<link rel="stylesheet" href="{relative(name, current)}">\n'
        return HEAD_STYLE.sub('', head) + link + end + body


def prepare_out(out):
    "An empty output folder; a previous build (with .nojekyll) is replaced, anything else is left alone."
    if out.exists() and any(out.iterdir()):
        if not (out / '.nojekyll').exists():
            raise BuildError(f'{out}: not empty and not a previous build (no .nojekyll); not replacing it')
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def folder_size(folder):
    return sum(p.stat().st_size for p in folder.rglob('*') if p.is_file())


def build(nbs, out):
    "Build the site; returns the number of pages written."
    notebooks = find_notebooks(nbs)
    if not notebooks:
        raise BuildError(f'{nbs}: no index.ipynb or numbered notebooks found')
    chapters = [load_chapter(path, nbs) for path in notebooks]
    prepare_out(out)
    Site(nbs, out).build(chapters)
    return len(chapters)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out', type=Path, default=ROOT / '_docs', help='output folder (default: _docs)')
    parser.add_argument('--nbs', type=Path, default=ROOT / 'nbs', help='notebook folder (default: nbs)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        pages = build(args.nbs, args.out)
    except BuildError as e:
        print(f'build_docs: error: {e}', file=sys.stderr)
        return 1
    print(f'build_docs: wrote {pages} pages to {args.out} ({folder_size(args.out) / 1e6:.1f} MB in all)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
