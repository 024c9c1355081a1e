"""One source for every measured number: benchmarks write small JSON files under `results/`, each with the command that made it."""
import json, platform, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / 'results'

def write_result(name:str, payload:dict)->Path:
    "Write `results/<name>.json`: `payload` plus the command line, the commit and the machine that made it."
    try: commit = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    except OSError: commit = ''
    dirty = subprocess.run(['git', 'status', '--porcelain', '--', 'tocoad', 'benchmarks'], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    meta = dict(command='python ' + ' '.join([str(Path(sys.argv[0]).relative_to(ROOT)) if Path(sys.argv[0]).is_absolute() else sys.argv[0]] + sys.argv[1:]),
                commit=commit + (' (with uncommitted changes)' if dirty else ''), made=time.strftime('%Y-%m-%d %H:%M'),
                machine=f'{platform.machine()}, {__import__("os").cpu_count()} cores')
    RESULTS.mkdir(exist_ok=True); p = RESULTS / f'{name}.json'
    p.write_text(json.dumps({**meta, **payload}, indent=1, default=float) + '\n')
    return p

def read_result(name:str)->dict: return json.loads((RESULTS / f'{name}.json').read_text())

def data_sets(names:list, toy_root:Path, texture_root:Path|None=None)->dict:
    "name -> (root, category, config overrides) for 'bottle' (MVTec AD), the toy categories and 'texture640' (shared/tools/make_texture.py, 640 x 256)."
    from tocoad.core import data_root, TOY_CATEGORIES
    from tocoad.data import make_toy_dataset
    out = {}
    for n in names:
        if n == 'bottle':
            if (data_root('mvtec_ad') / 'bottle').is_dir(): out[n] = (data_root('mvtec_ad'), 'bottle', {})
            else: print(f'skipping bottle: {data_root("mvtec_ad")} not found', file=sys.stderr)
        elif n in TOY_CATEGORIES: out[n] = (make_toy_dataset(toy_root, categories=(n,)), n, {})
        elif n == 'texture640':
            tool = ROOT.parent / 'shared' / 'tools' / 'make_texture.py'
            if not tool.is_file(): print(f'skipping texture640: {tool} not found', file=sys.stderr); continue
            if not (texture_root / 'texture').is_dir():
                subprocess.run([sys.executable, str(tool), str(texture_root), '--h', '640', '--w', '256', '--train', '80', '--test', '12'], check=True)
            out[n] = (texture_root, 'texture', dict(image_size=(640, 256), resize=(640, 256)))
        else: raise SystemExit(f'unknown data set {n!r}')
    return out
