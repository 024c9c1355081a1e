"""Re-execute notebooks in place so their committed outputs are current.

Cells flagged with any of `settings.ini`'s `tst_flags` (``#| slow``, ``#| cuda``) or ``#| eval: false``
are skipped, exactly as `nbdev_test` skips them, so committed outputs never depend on a GPU or a long run.
Usage: ``python tools/execute_nbs.py [--slow] [nbs/01_data.ipynb ...]`` (default: every notebook under ``nbs/``).
``--slow`` also runs the ``#| slow`` cells (training), so that a tutorial's committed pictures include them.
"""
import os, re, sys, time
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

def execute(fn, slow=False):
    "Run notebook `fn` top to bottom (flagged cells skipped) and write its outputs back."
    fn = Path(fn).resolve(); flags = _skip_flags(slow); nb = read_nb(fn)
    for c in nb.cells:
        if c.cell_type == 'code': c.outputs, c.execution_count = [], None
    os.environ['IN_TEST'] = '1'
    t = time.time(); shell = CaptureShell(fn)
    with working_directory(fn.parent): shell.run_all(nb, exc_stop=True, preproc=lambda c: _skip(c, flags))
    write_nb(nb, fn)
    print(f'{fn.name}: {time.time()-t:.1f}s')

if __name__ == '__main__':
    args = sys.argv[1:]; slow = '--slow' in args; args = [a for a in args if a != '--slow']
    nbs = args or sorted(str(p) for p in (Path(__file__).parents[1]/'nbs').glob('*.ipynb'))
    for fn in nbs: execute(fn, slow)
