"""Bottle's (or `--data`: a toy category's) `dnp+ncl` row of Table 5 with the `cpu` preset's automatic micro-batches, beside the same row made before them (issue 21).

Micro-batches change what batch norm sees during training (each micro-batch's own statistics), so the metrics
may move: this runs benchmarks/table5.py's one-run path (the same fit and evaluation, its own process, its own peak
RSS) for `dnp+ncl` with `--seed`, and writes results/micro_batch_<data>.json with its metrics, fit time, peak RSS and
the micro-batch used, beside the `dnp+ncl` runs of Table 5 found in `--reference` (their JSON files, one per seed:
`dnppncl_s<seed>.json` in a table5.py --out folder).
Usage: python benchmarks/bench_micro_bottle.py [--data bottle] [--seed 0] [--reference runs/table5/bottle] [--threads 2]
"""
import argparse, json, subprocess, sys, os
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from _results import write_result

METRICS = ('image_auroc', 'pixel_auroc', 'pixel_aupro')

def main():
    ap = argparse.ArgumentParser(); ap.add_argument('--seed', type=int, default=0); ap.add_argument('--data', default='bottle', help='bottle, or a toy category of Table 5 (gravel, washer)'); ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--reference', default='runs/table5/bottle'); ap.add_argument('--out', default='runs/micro_bottle'); ap.add_argument('--note', default='', help='a sentence kept in the result (what shared the machine)')
    a = ap.parse_args()
    import tempfile
    from tocoad.core import preset
    from _results import data_sets
    import torch
    from tocoad.training import micro_batch_size, split_batch, MICRO_PIXELS
    ref = [json.loads(p.read_text()) for p in sorted(Path(a.reference).glob('dnppncl_s*.json'))]
    if not ref: raise SystemExit(f'tocoad: error: no dnppncl_s*.json in {a.reference}: give the folder of a table5.py run on bottle (--reference)')
    tmp = Path(tempfile.gettempdir()) / 'tocoad_table5'  # table5.py's own data: the same toy images
    (root, category, over), = data_sets([a.data], tmp / 'toy', tmp / 'texture640').values()
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True); res = out / f'dnppncl_s{a.seed}.json'
    if not res.is_file():
        subprocess.run([sys.executable, str(Path(__file__).parent / 'table5.py'), '--one', '--root', str(root), '--category', category, '--over', json.dumps(over),
                        '--condition', 'dnp+ncl', '--seed', str(a.seed), '--result', str(res), '--threads', str(a.threads)],
                       check=True, env={**os.environ, 'HF_HUB_OFFLINE': '1', 'PYTHONWARNINGS': 'ignore::UserWarning'})
    r = json.loads(res.read_text()); cfg = preset('cpu')
    keep = lambda x: {k: x.get(k) for k in (*METRICS, 'seed', 'fit_s', 'peak_rss_mb')}
    pieces = [len(p['x']) for p in split_batch({'x': torch.zeros(cfg.batch_size)}, micro_batch_size(cfg))]  # what each batch of the preset is cut into
    row = dict(keep(r), micro_batch=micro_batch_size(cfg), pieces=pieces, micro_pixels=MICRO_PIXELS)
    print(f"micro-batches {pieces}: " + '  '.join(f'{k} {r[k]:.4f}' for k in METRICS) + f"  fit {r['fit_s']} s  peak RSS {r['peak_rss_mb']} MB")
    for x in ref: print(f"before, seed {x['seed']}:      " + '  '.join(f'{k} {x[k]:.4f}' for k in METRICS) + f"  fit {x['fit_s']} s  peak RSS {x['peak_rss_mb']} MB")
    spread = {k: [min(x[k] for x in ref), max(x[k] for x in ref)] for k in METRICS}
    inside = {k: spread[k][0] - 1e-9 <= r[k] <= spread[k][1] + 1e-9 for k in METRICS}
    print('within the seeds\' range before micro-batches: ' + ', '.join(f'{k} {"yes" if v else "no"}' for k, v in inside.items()))
    write_result(f'micro_batch_{a.data}', dict(what=f"{a.data}, cpu preset, dnp+ncl, guard off, with automatic micro-batches (each batch of {cfg.batch_size} cut into {pieces} at {cfg.image_size} px), beside the Table 5 runs made before them",
                                            micro=row, before=[keep(x) for x in ref], before_range=spread, within_range=inside, **({'note': a.note} if a.note else {})))

if __name__ == '__main__': main()
