"""One source for every measured number: the README's measured tables are what `tools/render_results.py` renders from
`results/*.json`, and every results file says which command made it."""
import importlib.util, json, shutil
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location('render_results', ROOT / 'tools' / 'render_results.py')
render_results = importlib.util.module_from_spec(spec); spec.loader.exec_module(render_results)
FILES = sorted((ROOT / 'results').glob('*.json'))

def test_the_readme_is_what_results_render():
    readme = (ROOT / 'README.md').read_text()
    assert '<!-- results:' in readme, 'the README has no rendered results block'
    assert render_results.render(readme) == readme, 'README.md differs from results/: run .venv/bin/python tools/render_results.py'

@pytest.mark.parametrize('f', FILES, ids=lambda p: p.name)
def test_every_results_file_names_the_command_that_made_it(f):
    r = json.loads(f.read_text())
    script = r['command'].split()[1]
    assert r['command'].startswith(('python benchmarks/', 'python tools/')) and (ROOT / script).is_file(), r['command']
    assert r['made'] and r['machine']

def test_a_number_changed_in_results_changes_the_readme(tmp_path, monkeypatch):
    "The check can fail: move one measured number and the README no longer matches."
    shutil.copytree(ROOT / 'results', tmp_path / 'results')
    f = next(p for p in sorted((tmp_path / 'results').glob('table5_*.json')))
    r = json.loads(f.read_text()); old = r['rows'][0]['pixel_auroc'][0]; r['rows'][0]['pixel_auroc'][0] = round(old - 0.0123, 4)
    f.write_text(json.dumps(r))
    readme = (ROOT / 'README.md').read_text()
    monkeypatch.setattr(render_results, 'RESULTS', tmp_path / 'results')
    new = render_results.render(readme)
    assert new != readme and f'{old - 0.0123:.4f} ±' in new
