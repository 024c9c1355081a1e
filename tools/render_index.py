"""Build the home page `nbs/index.ipynb` from README.md, so that the two never drift apart.

The notebook is, in order:
1. `# <title>` and `> <summary>`, the first heading and the first `> ` line of README.md;
2. the pipeline figure, `images/pipeline.png` (made by `tools/make_pipeline_figure.py`), with a sentence on what to
   see in it (left out when README.md shows that figure itself);
3. README.md's body, verbatim, one markdown cell for the text before the first `## ` heading and one per `## `
   section (its `### ` subsections stay in it), with relative links into `nbs/` rewritten to work from inside `nbs/`;
4. the notebook's own ending, kept verbatim with its outputs: the trailing code cells of the current
   `nbs/index.ipynb` (the "In Python" example) and the markdown cell that introduces them.

Cell ids are derived from the headings, so they stay the same from run to run.

    .venv/bin/python tools/render_index.py                      # rewrite nbs/index.ipynb
    .venv/bin/python tools/render_index.py --check              # exit 1, with a short diff, when nbs/index.ipynb differs
    .venv/bin/python tools/render_index.py --out /tmp/index.ipynb
"""
import argparse, difflib, hashlib, json, re, sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
README, INDEX = ROOT / 'README.md', ROOT / 'nbs' / 'index.ipynb'
FIGURE = 'images/pipeline.png'
FIGURE_CELL = (f'![The method at a glance]({FIGURE})\n\n'
               'Read it top to bottom: stage I teaches D to find G\'s synthetic anomalies on frozen features, stage II '
               'fine-tunes F with SimSiam while the frozen D keeps it able to find them, and at inference the fine-tuned F '
               'fills a memory bank whose nearest neighbours score every test patch (Eq. 7–9); each box names its notebook '
               'and its equations.')
METADATA = {'kernelspec': {'display_name': 'python3', 'language': 'python', 'name': 'python3'}}
FENCE = re.compile(r'^\s*(```|~~~)')
# a relative link into nbs/ in markdown (`](nbs/x)`, `[ref]: nbs/x`) or in HTML (`src="nbs/x"`, `href='./nbs/x'`)
NBS_LINK = re.compile(r'''(\]\(\s*<?|^\s*\[[^\]]+\]:\s*<?|\b(?:src|href)\s*=\s*["'])(?:\./)?nbs/''')

def cell_id(key:str)->str:
    "A stable cell id from `key` (a heading, or a fixed name)."
    return hashlib.sha1(key.encode()).hexdigest()[:8]

def rewrite_links(md:str)->str:
    "`md` with relative links into `nbs/` made relative to `nbs/` itself; fenced code is left alone."
    out, fenced = [], False
    for line in md.split('\n'):
        if FENCE.match(line): fenced = not fenced
        out.append(line if fenced else NBS_LINK.sub(r'\1', line))
    return '\n'.join(out)

def split_readme(text:str)->tuple:
    "`(title, summary, sections)`: README's `# ` title, its `> ` summary, and `[(heading or None, markdown)]` split at `## `."
    lines = text.replace('\r\n', '\n').split('\n')
    i = next((k for k, x in enumerate(lines) if x.strip()), None)
    if i is None or not lines[i].startswith('# '): raise SystemExit('README.md must start with a `# title` line')
    title = lines[i][2:].strip()
    j = next((k for k in range(i + 1, len(lines)) if lines[k].strip()), None)
    if j is None or not lines[j].startswith('> '): raise SystemExit('README.md: the line after the title must be the `> summary` line')
    summary, body = lines[j][2:].strip(), lines[j + 1:]
    sections, heading, buf, fenced = [], None, [], False
    for line in body:
        if FENCE.match(line): fenced = not fenced
        if not fenced and line.startswith('## '):
            sections.append((heading, buf)); heading, buf = line[3:].strip(), []
        buf.append(line)
    sections.append((heading, buf))
    return title, summary, [(h, '\n'.join(b).strip('\n')) for h, b in sections if '\n'.join(b).strip()]

def md_cell(source:str, key:str)->dict:
    return dict(cell_type='markdown', id=cell_id(key), metadata={}, source=source)

def tail_cells(index:dict|None, headings:set)->list:
    "The ending of an index notebook to keep: its trailing code cells, and the markdown cell before them unless README made it."
    cells = (index or {}).get('cells', [])
    k = len(cells)
    while k > 0 and cells[k - 1]['cell_type'] == 'code': k -= 1
    if k == len(cells): return []
    if k > 0 and cells[k - 1]['cell_type'] == 'markdown':
        src = _src(cells[k - 1]); first = src.lstrip().split('\n', 1)[0]
        if not (first.startswith('## ') and first[3:].strip() in headings) and not src.lstrip().startswith('# ') and FIGURE not in src:
            k -= 1
    return [dict(c) for c in cells[k:]]

def _src(cell:dict)->str:
    s = cell.get('source', '')
    return ''.join(s) if isinstance(s, list) else s

def build(readme:str, index:dict|None=None)->dict:
    "The index notebook (a plain nbformat 4 dict) for README text `readme`, keeping the ending of the current `index`."
    title, summary, sections = split_readme(readme)
    cells = [md_cell(f'# {title}\n\n> {summary}', 'index:title')]
    if FIGURE not in rewrite_links(readme): cells.append(md_cell(FIGURE_CELL, 'index:figure'))
    seen = {}
    for heading, md in sections:
        key = 'index:intro' if heading is None else f'index:section:{heading}'
        seen[key] = seen.get(key, 0) + 1
        cells.append(md_cell(rewrite_links(md), key if seen[key] == 1 else f'{key}:{seen[key]}'))
    headings = {h for h, _ in sections if h}
    for c in tail_cells(index, headings):
        c.setdefault('id', cell_id('index:tail:' + _src(c))); cells.append(c)
    ids = [c['id'] for c in cells]
    if len(set(ids)) != len(ids): raise SystemExit(f'two cells of the index would share an id: {ids}')
    nb = dict(cells=cells, metadata=(index or {}).get('metadata') or METADATA, nbformat=4, nbformat_minor=5)
    for c in nb['cells']: c['source'] = _src(c).splitlines(True)  # nbdev's layout: the source as a list of lines
    nbformat.validate(nbformat.from_dict(nb))
    return nb

def dumps(nb:dict)->str:
    "The notebook as nbdev writes it (sorted keys, indent 1, UTF-8, a final newline)."
    return json.dumps(nb, sort_keys=True, indent=1, ensure_ascii=False) + '\n'

def outline(nb:dict)->list:
    "What `--check` compares: each cell's type and source (not ids, metadata or outputs), as lines for a diff."
    out = []
    for k, c in enumerate(nb.get('cells', [])):
        out.append(f'--- cell {k} ({c["cell_type"]})\n'); out += [x if x.endswith('\n') else x + '\n' for x in _src(c).split('\n')]
    return out

def main(argv=None):
    p = argparse.ArgumentParser(description='Build nbs/index.ipynb from README.md.')
    p.add_argument('--readme', type=Path, default=README, help='the README to render (default: README.md)')
    p.add_argument('--out', type=Path, default=INDEX, help='the notebook to write or check (default: nbs/index.ipynb)')
    p.add_argument('--tail-from', type=Path, default=INDEX, help='the notebook whose ending (code cells) is kept (default: nbs/index.ipynb)')
    p.add_argument('--check', action='store_true', help='write nothing; exit 1 with a short diff when --out differs')
    a = p.parse_args(argv)
    index = json.loads(a.tail_from.read_text()) if a.tail_from.is_file() else None
    nb = build(a.readme.read_text(), index)
    if a.check:
        old = json.loads(a.out.read_text()) if a.out.is_file() else {'cells': []}
        diff = list(difflib.unified_diff(outline(old), outline(nb), str(a.out), f'rendered from {a.readme.name}', n=1))
        if diff:
            sys.stdout.writelines(diff[:60] + ([f'... ({len(diff) - 60} more diff lines)\n'] if len(diff) > 60 else []))
            sys.exit(f'{a.out} differs from what {a.readme.name} renders: run .venv/bin/python tools/render_index.py')
        return
    text = dumps(nb)
    if not a.out.is_file() or a.out.read_text() != text:
        a.out.parent.mkdir(parents=True, exist_ok=True); a.out.write_text(text); print(f'{a.out} rendered from {a.readme.name}')

if __name__ == '__main__': main()
