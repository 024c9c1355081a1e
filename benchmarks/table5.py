"""Table 5 on real data: frozen features (`none`), NCL only (`ncl`) and both stages (`dnp+ncl`), several seeds.

Each (row, batch-norm mode, seed) is one `ToCoAD(...).fit` + `evaluate` in its own process, so that wall time and
peak RSS are that run's alone; its result is kept as JSON in `--out` and a rerun skips what is done (so the
benchmark can be run in pieces). At the end it prints mean ± std per setting of image AUROC, pixel AUROC, AUPRO,
fit time and peak RSS, how far stage II moved F, and whether the spread is larger than the differences.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/table5.py --seeds 0 1 2 --out runs/table5
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/table5.py --rows dnp+ncl --bn frozen train --seeds 0 1 2 --out runs/table5
"""
import argparse, json, os, resource, subprocess, sys, time
from pathlib import Path
from tocoad.core import data_root
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
METRICS = ('image_auroc', 'pixel_auroc', 'pixel_aupro')

def run_one(args):
    "Fit and evaluate one setting in this process; write its JSON."
    import torch
    from tocoad.core import preset
    from tocoad.cli import parse_overrides
    from tocoad.data import load_samples
    from tocoad.model import ToCoAD
    torch.set_num_threads(args.threads)
    cfg = preset(args.preset, stages=args.row, seed=args.seed, stage2_bn=args.bn[0], device='cpu', **parse_overrides(args.set))
    train, test = load_samples(args.data, args.category), load_samples(args.data, args.category, 'test')
    t0 = time.perf_counter(); model = ToCoAD(cfg).fit(train, progress=False); fit_s = time.perf_counter() - t0
    m = model.evaluate(test, progress=False)
    res = dict(row=args.row, bn=args.bn[0], seed=args.seed, fit_s=fit_s, train_s=model.timings.get('train_s', 0.0),
               peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, drift=model.drift,
               config=cfg.to_dict(), set=args.set, **{k: m[k] for k in METRICS})
    Path(args.result).write_text(json.dumps(res, indent=1))

def mean_std(v): return f'{np.mean(v):.4f} ± {np.std(v, ddof=1) if len(v) > 1 else 0:.4f}'

def summary(results:list)->str:
    "Markdown table of mean ± std per setting, and a note on spread against differences."
    key = lambda r: (r['row'], r['bn'], ' '.join(r.get('set', [])))  # a run with --set overrides is its own row
    keys = sorted({key(r) for r in results}, key=lambda k: (('none', 'ncl', 'dnp+ncl').index(k[0]), k[1], k[2]))
    lines = ['| row (Table 5) | stage II batch norm | seeds | image AUROC | pixel AUROC | AUPRO | fit time (s) | peak RSS (MB) | F weight change (layer 2 / 3) | feature cosine (layer 2 / 3) |',
             '|---|---|---|---|---|---|---|---|---|---|']
    for row, bn, extra in keys:
        rs = [r for r in results if key(r) == (row, bn, extra)]
        wc = [r['drift']['weight_change'] for r in rs if r['drift']]; fc = [r['drift']['feature_cosine'] for r in rs if r['drift']]
        drift = (f"{np.mean([w['layer2'] for w in wc]):.2%} / {np.mean([w['layer3'] for w in wc]):.2%}" if wc else '0 (frozen)')
        cos = (f"{np.mean([c['layer2'] for c in fc]):.4f} / {np.mean([c['layer3'] for c in fc]):.4f}" if fc else '1 (frozen)')
        lines.append(f"| `{row}`{f' `{extra}`' if extra else ''} | {'–' if row == 'none' else bn} | {len(rs)} | " + ' | '.join(mean_std([r[k] for r in rs]) for k in METRICS)
                     + f" | {np.median([r['fit_s'] for r in rs]):.0f} | {max(r['peak_rss_mb'] for r in rs):.0f} | {drift} | {cos} |")
    notes = []
    for k in METRICS:
        means = {g: np.mean([r[k] for r in results if key(r) == g]) for g in keys}
        stds = [np.std([r[k] for r in results if key(r) == g], ddof=1) for g in keys if sum(key(r) == g for r in results) > 1]
        spread, diff = (max(stds) if stds else 0.0), max(means.values()) - min(means.values())
        notes.append(f'{k}: largest difference between settings {diff:.4f}, largest seed std {spread:.4f}'
                     + (' -> the spread is as large as the differences: no setting is shown better' if spread >= diff / 2 else ''))
    return '\n'.join(lines + [''] + notes)

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--data', default=str(data_root('mvtec_ad')))
    ap.add_argument('--category', default='bottle')
    ap.add_argument('--preset', default='cpu')
    ap.add_argument('--rows', nargs='+', default=['none', 'ncl', 'dnp+ncl'], choices=['none', 'ncl', 'dnp+ncl'])
    ap.add_argument('--bn', nargs='+', default=[None], help="stage II batch-norm modes to compare (default: the config's)")
    ap.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2])
    ap.add_argument('--set', nargs='*', default=[], help='config overrides field=value, as in tocoad fit')
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--out', default='runs/table5')
    ap.add_argument('--one', action='store_true', help=argparse.SUPPRESS)
    ap.add_argument('--row', help=argparse.SUPPRESS); ap.add_argument('--seed', type=int, help=argparse.SUPPRESS)
    ap.add_argument('--result', help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one: return run_one(args)
    if not (Path(args.data) / args.category).is_dir(): sys.exit(f'tocoad: error: {Path(args.data) / args.category} not found; pass --data ROOT of MVTec AD')
    from tocoad.core import ToCoADConfig
    out = Path(args.out); out.mkdir(parents=True, exist_ok=True)
    bns = [b or ToCoADConfig.stage2_bn for b in args.bn]
    todo = [(row, bn, s) for row in args.rows for s in args.seeds for bn in (bns if row != 'none' else bns[:1])]  # seeds outer: a cut run stays balanced
    for k, (row, bn, seed) in enumerate(todo, 1):
        tag = '_'.join([row.replace('+', '-'), bn, f's{seed}'] + [x.replace('=', '-') for x in args.set])
        res = out / f'{tag}.json'
        if res.is_file(): print(f'[{k}/{len(todo)}] {tag}: done before', flush=True); continue
        print(f'[{k}/{len(todo)}] {tag} ...', flush=True); t = time.perf_counter()
        cmd = [sys.executable, __file__, '--one', '--row', row, '--bn', bn, '--seed', str(seed), '--result', str(res), '--data', args.data,
               '--category', args.category, '--preset', args.preset, '--threads', str(args.threads), '--set', *args.set]
        subprocess.run(cmd, check=True, env={**os.environ, 'HF_HUB_OFFLINE': '1', 'PYTHONWARNINGS': 'ignore::UserWarning'})
        r = json.loads(res.read_text())
        print(f"    image {r['image_auroc']:.4f}  pixel {r['pixel_auroc']:.4f}  AUPRO {r['pixel_aupro']:.4f}  ({time.perf_counter() - t:.0f} s)", flush=True)
    results = [json.loads(p.read_text()) for p in sorted(out.glob('*.json'))]
    results = [r for r in results if r['row'] in args.rows and r['seed'] in args.seeds and r['set'] == args.set and (r['row'] == 'none' or r['bn'] in bns)]
    if args.set: results += [r for r in map(json.loads, map(Path.read_text, sorted(out.glob('*.json')))) if r['row'] == 'none' and r['set'] == [] and r['seed'] in args.seeds]  # the frozen baseline beside a control
    print(f'\n{args.category}, preset {args.preset}' + (f', --set {" ".join(args.set)}' if args.set else '') + f', seeds {args.seeds}:\n')
    print(summary(results))

if __name__ == '__main__': main()
