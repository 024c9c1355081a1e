"""The notebooks read as documentation: titles and summaries, the Quarto sidebar lists every one, sizes stay small."""
from pathlib import Path
import json
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
NBS = sorted(p for p in (ROOT / 'nbs').glob('*.ipynb') if not p.name.startswith('_'))

def test_sidebar_lists_every_notebook_in_reading_order():
    side = yaml.safe_load((ROOT / 'nbs' / 'sidebar.yml').read_text())['website']['sidebar']['contents']
    listed = []
    for item in side: listed += item['contents'] if isinstance(item, dict) else [item]
    assert sorted(listed) == sorted(p.name for p in NBS)
    numbered = [n for n in listed if n != 'index.ipynb']
    assert numbered == sorted(numbered)  # dependency order = file order

def test_quarto_config_is_shared_with_nbdev():
    q = yaml.safe_load((ROOT / '_quarto.yml').read_text())
    assert q['project']['type'] == 'website' and 'sidebar.yml' in q['metadata-files']
    assert (ROOT / 'nbs' / '_quarto.yml').resolve() == (ROOT / '_quarto.yml').resolve()

@pytest.mark.parametrize('nb', NBS, ids=lambda p: p.name)
def test_notebook_opens_with_title_and_summary_and_is_small(nb):
    cells = json.loads(nb.read_text())['cells']
    first = ''.join(cells[0]['source'])
    assert cells[0]['cell_type'] == 'markdown' and first.startswith('# ') and '\n> ' in first, first[:120]
    assert nb.stat().st_size <= 350 * 1024, f"{nb.name} is {nb.stat().st_size // 1024} KB: smaller figures (dpi, fewer panels) keep it under 350 KB"
