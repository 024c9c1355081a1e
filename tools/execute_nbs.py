"""Re-execute notebooks in place so their committed outputs are current.

Cells flagged with any of `settings.ini`'s `tst_flags` (``#| slow``, ``#| cuda``) or ``#| eval: false``
are skipped, exactly as `nbdev_test` skips them, so committed outputs never depend on a GPU or a long run.
Usage: ``python tools/execute_nbs.py [--slow] [--shrink-only] [nbs/01_data.ipynb ...]`` (default: every notebook under ``nbs/``).
``--slow`` also runs the ``#| slow`` cells (training), so that a tutorial's committed pictures include them.
"""
import os, re, subprocess, sys, time
from pathlib import Path
from configparser import ConfigParser
from execnb.nbio import read_nb, write_nb
from execnb.shell import CaptureShell
from fastcore.xtras import working_directory

def _skip_flags(slow=False):
    cfg = ConfigParser(); cfg.read(Path(__file__).parents[1]/'settings.ini')
    return set(cfg['DEFAULT'].get('tst_flags', '').replace('|', ' ').split()) - ({'slow'} if slow else set())  # nbdev splits on spaces

def _skip(cell, flags):
    if cell.cell_type != 'code': return True
    for line in cell.source.splitlines():
        m = re.match(r'\s*#\s*\|\s*(.*)', line)
        if not m: continue
        words = m.group(1).replace(':', ' ').split()
        if words and (words[0] in flags or (words[0] == 'eval' and words[1:2] == ['false'])): return True
    return False

def shrink_png(b64:str, colors:int=256)->str:
    "A figure as a palette PNG of at most `colors` colours (no dithering): plots and heatmaps look the same at a third of the bytes."
    import base64, io
    from PIL import Image
    im = Image.open(io.BytesIO(base64.b64decode(b64)))
    if im.mode == 'P' and len(im.getcolors(256) or range(257)) <= colors: return b64  # already a small enough palette
    out = io.BytesIO(); im.convert('RGB').quantize(colors=colors, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(out, 'PNG', optimize=True)
    return base64.b64encode(out.getvalue()).decode() if out.tell() < len(b64) * 3 // 4 else b64

def shrink_outputs(nb):
    """Every PNG output of `nb` through `shrink_png` (keeps notebooks under the 350 KB that tests/test_docs.py allows).
    A notebook with many photographs can ask for fewer colours in its metadata: `{"tocoad": {"png_colors": 128}}`."""
    colors = nb.metadata.get('tocoad', {}).get('png_colors', 256)
    for c in nb.cells:
        for o in c.get('outputs', []):
            if 'image/png' in o.get('data', {}):
                v = o['data']['image/png']; o['data']['image/png'] = shrink_png(''.join(v) if isinstance(v, list) else v, colors)

def execute(fn, slow=False):
    "Run notebook `fn` top to bottom (flagged cells skipped) and write its outputs back."
    fn = Path(fn).resolve(); flags = _skip_flags(slow); nb = read_nb(fn)
    for c in nb.cells:
        if c.cell_type == 'code': c.outputs, c.execution_count = [], None
    os.environ['IN_TEST'] = '1'
    import matplotlib.pyplot as plt
    plt.close('all')  # pyplot's figures are one per process: those a notebook run before left open would show in this one
    t = time.time(); shell = CaptureShell(fn)
    with working_directory(fn.parent): shell.run_all(nb, exc_stop=True, preproc=lambda c: _skip(c, flags))
    shrink_outputs(nb); write_nb(nb, fn)
    dt = time.time() - t; print(f'{fn.name}: {dt:.1f}s')
    if slow: record_time(fn.stem, dt)

def _commit()->str:
    "The commit the notebooks ran at, marked when the library (tocoad/) had uncommitted changes (the notebooks always do: their new outputs)."
    git = lambda *a: subprocess.run(['git', *a], cwd=Path(__file__).parents[1], capture_output=True, text=True).stdout.strip()
    return git('rev-parse', '--short', 'HEAD') + (' (with uncommitted changes)' if git('status', '--porcelain', '--', 'tocoad') else '')

def record_time(name:str, seconds:float):
    "Keep the wall time of a whole run (slow cells included) in results/notebook_times.json: the README and the notebooks quote it from there."
    import json, platform
    p = Path(__file__).parents[1]/'results'/'notebook_times.json'
    r = json.loads(p.read_text()) if p.is_file() else dict(what='wall time of a notebook run top to bottom, training cells included (tools/execute_nbs.py --slow), one run each', times={})
    r['times'][name] = round(seconds)
    r.update(command='python tools/execute_nbs.py --slow ' + ' '.join(f'nbs/{n}.ipynb' for n in sorted(r['times'])), made=time.strftime('%Y-%m-%d %H:%M'),
             machine=f'{platform.machine()}, {os.cpu_count()} cores', commit=_commit())
    p.parent.mkdir(exist_ok=True); p.write_text(json.dumps(r, indent=1) + '\n')

if __name__ == '__main__':
    args = sys.argv[1:]; slow, only = '--slow' in args, '--shrink-only' in args; args = [a for a in args if a not in ('--slow', '--shrink-only')]
    nbs = args or sorted(str(p) for p in (Path(__file__).parents[1]/'nbs').glob('*.ipynb'))
    for fn in nbs:
        if only: nb = read_nb(fn); shrink_outputs(nb); write_nb(nb, fn)  # re-encode the committed figures without running anything
        else: execute(fn, slow)
