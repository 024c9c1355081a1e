"""The book around the notebooks: the pipeline figure, the glossary, and the home page rendered from README.md."""
import json, re, subprocess, sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
FIGURE, FIGURE_SCRIPT = ROOT / 'nbs' / 'images' / 'pipeline.png', ROOT / 'tools' / 'make_pipeline_figure.py'
RENDER_INDEX, INDEX, GLOSSARY = ROOT / 'tools' / 'render_index.py', ROOT / 'nbs' / 'index.ipynb', ROOT / 'nbs' / 'A0_glossary.ipynb'

def run(*args, cwd=ROOT):
    return subprocess.run([sys.executable, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=300)

def sources(nb:dict)->list:
    return [(c['cell_type'], ''.join(c['source']) if isinstance(c['source'], list) else c['source']) for c in nb['cells']]

# --- the pipeline figure

def test_the_pipeline_figure_is_a_small_wide_png():
    assert FIGURE.is_file(), 'nbs/images/pipeline.png is missing: run .venv/bin/python tools/make_pipeline_figure.py'
    assert FIGURE.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n', 'not a PNG file'
    assert FIGURE.stat().st_size < 150 * 1024, f'{FIGURE.stat().st_size // 1024} KB: keep the figure under 150 KB (dpi about 100)'
    with Image.open(FIGURE) as im: assert im.width >= 600, f'{im.width} px wide: too small to read'

def test_the_figure_script_draws_something(tmp_path):
    out = tmp_path / 'p.png'
    r = run(FIGURE_SCRIPT, '--out', out)
    assert r.returncode == 0, r.stderr
    with Image.open(out) as im: px = np.asarray(im.convert('L'), dtype=float)
    assert px.shape[1] >= 600 and px.std() > 20, f'a blank image? pixel std {px.std():.1f}'
    assert (px < 80).mean() > 0.01, 'almost no dark pixels: the boxes and their text are missing'

# --- the glossary

REQUIRED = ['anomaly score', 'image level', 'pixel level', 'AUROC', 'pixel AUROC', 'AUPRO', 'F1-max', 'threshold', 'p_t', 'focal loss',
            'γ and α', 'cross-entropy', 'stop-gradient', 'SimSiam', 'projector and predictor', 'collapse', 'BYOL', 'L_sym', 'L_neg', 'λ',
            'negative guide', 'synthetic anomaly', 'Perlin noise', 'CutPaste', 'NSA', 'feature extractor', 'patch feature', 'memory bank',
            'coreset', 'k-center', 'covering radius', 'random projection', 'Johnson–Lindenstrauss', 'nearest neighbour', 'reweighted score',
            ' and b', 'k-means cell', 'IVF', 'probe', 'recall', 'batch norm', 'running statistics', 'recalibration', 'AdaBN',
            'validation protocol', 'held-out', "D's probe", 'guard', 'seed', 'bootstrap confidence interval', 'domain gap']

def glossary_terms(nb:dict)->dict:
    "{term heading: its definition} of every `### ` heading of a glossary notebook; a term defined twice fails."
    out = {}
    for kind, src in sources(nb):
        if kind != 'markdown': continue
        for m in re.finditer(r'^### ([^\n]+)\n(.*?)(?=^#{2,3} |\Z)', src, flags=re.M | re.S):
            assert m.group(1) not in out, f'{m.group(1)!r} is defined twice'
            out[m.group(1)] = m.group(2).strip()
    return out

def missing_terms(terms:dict)->list:
    return [t for t in REQUIRED if not any(t.lower() in h.lower() for h in terms)]

def test_the_glossary_opens_with_title_and_summary_and_has_no_code():
    cells = json.loads(GLOSSARY.read_text())['cells']
    kind, first = sources({'cells': cells})[0]
    assert kind == 'markdown' and re.fullmatch(r'# Glossary\n\n> \S.*', first), first[:120]
    assert all(c['cell_type'] == 'markdown' for c in cells), 'the glossary is prose only'
    assert all(c.get('id') for c in cells) and len({c['id'] for c in cells}) == len(cells)
    assert 'default_exp' not in GLOSSARY.read_text()

def test_the_glossary_defines_every_required_term_once_with_its_notebook():
    terms = glossary_terms(json.loads(GLOSSARY.read_text()))
    assert not missing_terms(terms), f'not defined in the glossary: {missing_terms(terms)}'
    for head, text in terms.items():
        assert 40 <= len(text) <= 900, f'{head!r}: a definition of 1-3 sentences, not {len(text)} characters'
        assert re.search(r'\]\(\d\w*\.ipynb\)', text), f'{head!r}: say in which notebook it appears'

def test_the_glossary_checks_can_fail():
    "A term only named in a group heading or in prose is not defined; a term defined twice is refused."
    md = lambda s: {'cells': [{'cell_type': 'markdown', 'source': s}]}
    terms = glossary_terms(md('## AUPRO and friends\n\nAUPRO is mentioned here.\n\n### AUROC\n\nThe area under the ROC curve.'))
    assert list(terms) == ['AUROC'] and 'AUPRO' in missing_terms(terms) and 'AUROC' not in missing_terms(terms)
    with pytest.raises(AssertionError, match='defined twice'): glossary_terms(md('### Seed\n\nOne.\n\n### Seed\n\nTwo.'))

# --- the home page, rendered from README.md

def test_the_index_is_what_the_readme_renders():
    if 'images/pipeline.png' not in INDEX.read_text():
        pytest.skip('nbs/index.ipynb is not rendered from README.md yet (no pipeline figure in it): run .venv/bin/python tools/render_index.py')
    r = run(RENDER_INDEX, '--check')
    assert r.returncode == 0, r.stdout + r.stderr

FAKE_README = '''# widget

> A one-line summary of widget.

Intro with a [link](nbs/01_data.ipynb), an image <img src="nbs/images/a.png">, a [script](benchmarks/b.py)
and a path in code, `nbs/02_x.ipynb`, which stays as it is.

## Install

```sh
pip install widget
## not a heading: inside a fence
```

### A subsection

Stays in the Install cell. See [the model](./nbs/10_model.ipynb).

## Notes

Last words.
'''

FAKE_INDEX = {'cells': [
    {'cell_type': 'markdown', 'id': 'old00001', 'metadata': {}, 'source': ['# widget\n', '\n', '> old summary']},
    {'cell_type': 'markdown', 'id': 'old00002', 'metadata': {}, 'source': ['## Reading order\n', '\n', 'a hand-kept copy']},
    {'cell_type': 'markdown', 'id': 'tail0001', 'metadata': {}, 'source': ['## In Python\n', '\n', 'An example:']},
    {'cell_type': 'code', 'execution_count': None, 'id': 'tail0002', 'metadata': {}, 'source': ['1 + 1'],
     'outputs': [{'data': {'text/plain': ['2']}, 'execution_count': None, 'metadata': {}, 'output_type': 'execute_result'}]}],
    'metadata': {'kernelspec': {'display_name': 'python3', 'language': 'python', 'name': 'python3'}}, 'nbformat': 4, 'nbformat_minor': 5}

@pytest.fixture
def fake(tmp_path):
    (tmp_path / 'README.md').write_text(FAKE_README); (tmp_path / 'index.ipynb').write_text(json.dumps(FAKE_INDEX))
    return tmp_path

def render(d, *extra):
    return run(RENDER_INDEX, '--readme', d / 'README.md', '--tail-from', d / 'index.ipynb', '--out', d / 'out.ipynb', *extra)

def test_render_index_splits_the_readme_at_each_level_two_heading(fake):
    assert render(fake).returncode == 0
    nb = json.loads((fake / 'out.ipynb').read_text())
    cells = sources(nb)
    assert [k for k, _ in cells] == ['markdown'] * 5 + ['markdown', 'code']
    assert cells[0][1] == '# widget\n\n> A one-line summary of widget.'
    assert cells[1][1].startswith('![The method at a glance](images/pipeline.png)\n\n')
    assert cells[2][1] == ('Intro with a [link](01_data.ipynb), an image <img src="images/a.png">, a [script](benchmarks/b.py)\n'
                           'and a path in code, `nbs/02_x.ipynb`, which stays as it is.')
    assert cells[3][1].startswith('## Install\n\n```sh\npip install widget\n## not a heading: inside a fence\n```\n\n### A subsection')
    assert cells[3][1].endswith('See [the model](10_model.ipynb).')
    assert cells[4][1] == '## Notes\n\nLast words.'
    assert cells[5:] == [('markdown', '## In Python\n\nAn example:'), ('code', '1 + 1')]  # the old ending, verbatim; the hand-kept copy is gone
    assert nb['cells'][-1]['outputs'] == FAKE_INDEX['cells'][-1]['outputs'] and nb['cells'][-1]['id'] == 'tail0002'

def test_render_index_is_stable_and_its_check_can_fail(fake):
    assert render(fake).returncode == 0
    first = (fake / 'out.ipynb').read_text(); ids = [c['id'] for c in json.loads(first)['cells']]
    assert render(fake, '--check').returncode == 0
    (fake / 'index.ipynb').write_text(first)  # the rendered notebook is now the index: its ending is found again
    assert render(fake).returncode == 0 and (fake / 'out.ipynb').read_text() == first
    (fake / 'README.md').write_text(FAKE_README.replace('Last words.', 'Other last words.'))
    r = render(fake, '--check')
    assert r.returncode == 1 and '-Last words.' in r.stdout and '+Other last words.' in r.stdout
    assert render(fake).returncode == 0
    assert [c['id'] for c in json.loads((fake / 'out.ipynb').read_text())['cells']] == ids  # ids follow headings, not text
    nb = json.loads((fake / 'out.ipynb').read_text()); nb['cells'][-1]['outputs'] = []; nb['cells'][0]['id'] = 'changed0'
    (fake / 'out.ipynb').write_text(json.dumps(nb))
    assert render(fake, '--check').returncode == 0  # outputs and ids are not compared

def test_render_index_leaves_out_the_figure_cell_when_the_readme_shows_it(fake):
    (fake / 'README.md').write_text(FAKE_README.replace('Last words.', '![map](nbs/images/pipeline.png)'))
    assert render(fake).returncode == 0
    cells = sources(json.loads((fake / 'out.ipynb').read_text()))
    assert sum('images/pipeline.png' in s for _, s in cells) == 1 and cells[3][1] == '## Notes\n\n![map](images/pipeline.png)'
