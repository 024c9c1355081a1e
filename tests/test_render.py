"""The notebooks render as documentation without Quarto: nbconvert to HTML shows their figures, and a headless
Chromium screenshot of a rendered page shows real pixels (skipped, with the reason, where Chromium is absent)."""
import shutil, subprocess
from pathlib import Path
import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
NBS = sorted(p for p in (ROOT / 'nbs').glob('*.ipynb') if not p.name.startswith('_'))

def to_html(nb):
    import nbformat
    from nbconvert import HTMLExporter
    return HTMLExporter().from_notebook_node(nbformat.read(nb, as_version=4))[0]

@pytest.mark.parametrize('nb', NBS, ids=lambda p: p.name)
def test_notebook_renders_with_its_figures(nb):
    import nbformat
    html = to_html(nb)
    n_figs = sum('image/png' in o.get('data', {}) for c in nbformat.read(nb, as_version=4).cells for o in c.get('outputs', []))
    assert html.count('src="data:image/png;base64,') == n_figs
    title = nbformat.read(nb, as_version=4).cells[0].source.splitlines()[0].lstrip('# ')
    assert title in html

def _screenshot(html, tmp_path, name):
    page, shot = tmp_path / f'{name}.html', tmp_path / f'{name}.png'; page.write_text(html)
    subprocess.run(['chromium', '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
                    '--disable-component-update', '--disable-sync', f'--user-data-dir={tmp_path / ("profile-" + name)}', '--window-size=1000,2600',
                    f'--screenshot={shot}', page.as_uri()], check=True, capture_output=True, timeout=120)
    return np.asarray(Image.open(shot).convert('L')).astype(float)

@pytest.mark.skipif(shutil.which('chromium') is None, reason='headless Chromium is not installed (Debian package chromium; tools/test.sh installs it where apt works)')
def test_screenshot_of_a_rendered_page_shows_its_figures(tmp_path):
    import re
    html = to_html(ROOT / 'nbs' / '02_generators.ipynb')
    with_figs = _screenshot(html, tmp_path, 'with')
    without = _screenshot(re.sub(r'src="data:image/png;base64,[^"]*"', 'src=""', html), tmp_path, 'without')
    assert with_figs.shape[0] >= 2000 and with_figs.std() > 10  # a real page, not a blank one
    changed = np.abs(with_figs - without) > 30
    assert changed.mean() > 0.02, changed.mean()  # the figures are what a reader sees, not empty boxes
