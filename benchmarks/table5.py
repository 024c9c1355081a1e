"""The paper's Table 5 with the controls that separate the explanations (issue 18), on real data and toy categories.

Five conditions, each a full `ToCoAD.fit` + `evaluate` of the `cpu` preset in its own process (its own wall time and
peak RSS), over several seeds; the guard is off in every row, so that each row is what its stages did:

  none                    frozen ImageNet features: PatchCore on F
  bn-only                 F's weights untouched, its batch-norm statistics as stage II leaves them (`ncl`, stage2_lr=0)
  ncl                     stage II with L_sym only (no D)
  dnp+ncl                 stage I, then stage II with the trained D's L_neg (the paper's ToCoAD)
  dnp+ncl untrained D     the same with stage I skipped: L_neg from a randomly initialised D
(`tocoad ablate --axis stages` runs the same five settings.)

Each run keeps its JSON in --out (a rerun skips finished runs); for seed 0 it also keeps what the figures need: the
anomaly maps of a few test images and the histogram of the raw patch nearest-neighbour distances (Eq. 8) of normal
against defect pixels. At the end it writes `results/table5_<data>.json` (and `results/table5_<data>_maps.npz`) and
prints mean ± std per condition, with a note wherever the seeds' spread is as large as the differences.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/table5.py --data bottle gravel washer --seeds 0 1 2
"""
import argparse, json, os, resource, subprocess, sys, tempfile, time
from pathlib import Path
import numpy as np
sys.path.insert(0, str(Path(__file__).parent))
from _results import write_result, data_sets, RESULTS
from tocoad.ablation import AXES, table5_maps_key

CONDITIONS = {k: dict(v, stage2_guard='off') for k, v in AXES['stages'].items()}  # Table 5's rows and two controls, as `tocoad ablate --axis stages` runs them
METRICS = ('image_auroc', 'pixel_auroc', 'pixel_aupro')
BINS = np.linspace(0, 4, 41)  # raw patch distance / the median distance of normal pixels

def figure_data(model, test, cfg, root):
    "Maps of a few test images (one per defect type, one good) and the histogram of raw patch distances, normal against defect pixels."
    import torch, torch.nn.functional as nnf
    from sklearn.metrics import roc_auc_score
    from tocoad.core import hw
    ev = model.last_eval; defects = list(ev['defects'])
    pick = [defects.index(d) for d in sorted(set(defects) - {'good'})][:3] + [defects.index('good')]
    maps = nnf.adaptive_avg_pool2d(ev['maps'][pick][:, None], 56)[:, 0].numpy().astype(np.float16)
    feats = model.embed_samples(test); C, h, w = feats.shape[1:]
    raw = torch.cat([model.bank.score(f.permute(1, 2, 0).reshape(-1, C))[0].reshape(1, h, w).cpu() for f in feats])
    raw = nnf.interpolate(raw[:, None], size=hw(cfg.image_size), mode='nearest')[:, 0].flatten().numpy()
    y = ev['masks'].flatten().numpy().astype(bool); med = float(np.median(raw[~y]))
    hist = {k: np.histogram(np.clip(raw[m] / med, 0, BINS[-1]), BINS)[0].tolist() for k, m in (('normal', ~y), ('defect', y))}
    return dict(paths=[str(Path(ev['paths'][i]).relative_to(root)) for i in pick], titles=[defects[i] for i in pick], good_q99=float(np.quantile(ev['maps'][[i for i, d in enumerate(defects) if d == 'good']].numpy(), 0.99)),
                hist=hist, separation=float(roc_auc_score(y, raw))), maps

def d_on_real_defects(model, test, cfg):
    "D's pixel AUROC on the real test images, read through stage I's F (the frozen F it trained on)."
    import torch
    from sklearn.metrics import roc_auc_score
    from tocoad.data import AnomalyDataset
    from tocoad.parts import create_part
    F0, D = create_part('F', cfg).eval(), model.trained['D'].eval(); ds = AnomalyDataset(test, model.transform); probs, ys = [], []
    with torch.no_grad():
        for k in range(0, len(ds), 16):
            b = [ds[i] for i in range(k, min(len(ds), k + 16))]; x = torch.stack([it['image'] for it in b])
            probs.append(D(F0(x), x.shape[-2:]).softmax(1)[:, 1].flatten()); ys.append(torch.stack([it['mask'][0] > 0.5 for it in b]).flatten())
    return float(roc_auc_score(torch.cat(ys).numpy(), torch.cat(probs).numpy()))

def run_one(a):
    "Fit and evaluate one (data, condition, seed) in this process; write its JSON (and, for seed 0, its maps)."
    import torch
    from tocoad.core import preset
    from tocoad.data import load_samples
    from tocoad.model import ToCoAD
    torch.set_num_threads(a.threads)
    root, cat, over = a.root, a.category, json.loads(a.over)
    cfg = preset('cpu', seed=a.seed, device='cpu', **over, **CONDITIONS[a.condition])
    train, test = load_samples(root, cat), load_samples(root, cat, split='test')
    t0 = time.perf_counter(); model = ToCoAD(cfg).fit(train, progress=False); fit_s = time.perf_counter() - t0
    m = model.evaluate(test, progress=False)
    res = dict(condition=a.condition, seed=a.seed, fit_s=round(fit_s, 1), train_s=round(model.timings.get('train_s', 0.0), 1),
               peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024), drift=model.drift,
               d_probe_auroc=model.report.get('d_probe_auroc'), validation=model.report.get('validation'), **{k: m[k] for k in METRICS})
    if cfg.stages == 'dnp+ncl': res['d_real_pixel_auroc'] = d_on_real_defects(model, test, cfg)
    if a.seed == 0:
        res['figure'], maps = figure_data(model, test, cfg, root); np.save(a.result.replace('.json', '_maps.npy'), maps)
    Path(a.result).write_text(json.dumps(res, indent=1, default=float))

def run_stem(condition:str)->str: return condition.replace(', ', '_').replace(' ', '-').replace('+', 'p')  # a run's file name in --out

def mean_std(v): v = [x for x in v if x is not None]; return (round(float(np.mean(v)), 6), round(float(np.std(v, ddof=1)), 6) if len(v) > 1 else 0.0) if v else (None, None)

def summarise(name, runs):
    "Per condition: mean ± std of every measure over the seeds, and where the seeds' spread is as large as the differences."
    rows = []
    for c in CONDITIONS:
        rs = [r for r in runs if r['condition'] == c]
        if not rs: continue
        v = [r['validation'] for r in rs if r.get('validation')]
        row = dict(condition=c, seeds=[r['seed'] for r in rs], **{k: mean_std([r[k] for r in rs]) for k in METRICS},
                   fit_s=round(float(np.median([r['fit_s'] for r in rs]))), peak_rss_mb=max(r['peak_rss_mb'] for r in rs),
                   d_probe_auroc=mean_std([r.get('d_probe_auroc') for r in rs]), d_real_pixel_auroc=mean_std([r.get('d_real_pixel_auroc') for r in rs]),
                   val_before=mean_std([x['before'] for x in v]), val_after=mean_std([x['after'] for x in v]),
                   weight_change=mean_std([float(np.mean(list(r['drift']['weight_change'].values()))) for r in rs if r['drift']]),
                   feature_cosine=mean_std([float(np.mean(list(r['drift']['feature_cosine'].values()))) for r in rs if r['drift']]))
        rows.append(row)
    notes = []
    if any(len(r['seeds']) < 2 for r in rows):
        notes.append('one seed in some rows: their spread is unknown (shown as ± 0), so no difference here can be called beyond noise yet')
    for k in METRICS:
        means = [r[k][0] for r in rows]; spread = max(r[k][1] for r in rows); diff = max(means) - min(means)
        if spread >= diff / 2: notes.append(f'{k}: the seeds spread (largest std {spread:.4f}) as much as the conditions differ ({diff:.4f}): this table cannot rank them')
    figs = {r['condition']: r['figure'] for r in runs if r['seed'] == 0 and 'figure' in r}
    return dict(data=name, rows=rows, notes=notes, figures=figs, runs=[{k: v for k, v in r.items() if k != 'figure'} for r in runs])

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--data', nargs='+', default=['bottle', 'gravel', 'washer'])
    ap.add_argument('--conditions', nargs='+', default=list(CONDITIONS), choices=list(CONDITIONS))
    ap.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2])
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--out', default='runs/table5')
    ap.add_argument('--note', default='', help='a sentence kept in each result (how it was made, what shared the machine)')
    ap.add_argument('--one', action='store_true', help=argparse.SUPPRESS)
    for k in ('root', 'category', 'over', 'condition', 'result'): ap.add_argument(f'--{k}', help=argparse.SUPPRESS)
    ap.add_argument('--seed', type=int, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one: return run_one(a)
    tmp = Path(tempfile.gettempdir()) / 'tocoad_table5'
    sets = data_sets(a.data, tmp / 'toy', tmp / 'texture640')
    for name, (root, cat, over) in sets.items():
        out = Path(a.out) / name; out.mkdir(parents=True, exist_ok=True)
        todo = [(c, s) for s in a.seeds for c in a.conditions]  # seeds outer: a cut run stays balanced
        for k, (c, s) in enumerate(todo, 1):
            res = out / f"{run_stem(c)}_s{s}.json"
            if res.is_file(): print(f'[{name} {k}/{len(todo)}] {c}, seed {s}: done before', flush=True); continue
            print(f'[{name} {k}/{len(todo)}] {c}, seed {s} ...', flush=True); t = time.perf_counter()
            cmd = [sys.executable, __file__, '--one', '--root', str(root), '--category', cat, '--over', json.dumps(over), '--condition', c,
                   '--seed', str(s), '--result', str(res), '--threads', str(a.threads)]
            subprocess.run(cmd, check=True, env={**os.environ, 'HF_HUB_OFFLINE': '1', 'PYTHONWARNINGS': 'ignore::UserWarning'})
            r = json.loads(res.read_text())
            print(f"    image {r['image_auroc']:.4f}  pixel {r['pixel_auroc']:.4f}  AUPRO {r['pixel_aupro']:.4f}  D probe {r.get('d_probe_auroc')}  ({time.perf_counter() - t:.0f} s)", flush=True)
        runs = [json.loads(p.read_text()) for p in sorted(out.glob('*.json'))]
        runs = [r for r in runs if r['seed'] in a.seeds and r['condition'] in a.conditions]
        summary = summarise(name, runs)
        maps = {r['condition']: np.load(out / f"{run_stem(r['condition'])}_s0_maps.npy") for r in runs if r['seed'] == 0}
        if maps: np.savez_compressed(RESULTS / f'table5_{name}_maps.npz', **{table5_maps_key(c): m for c, m in maps.items()})
        p = write_result(f'table5_{name}', dict(what=f"Table 5 with controls on {name} ({cat}), cpu preset, guard off, seeds {sorted({r['seed'] for r in runs})}", preset='cpu',
                                                conditions={c: CONDITIONS[c] for c in a.conditions}, **({'note': a.note} if a.note else {}), **summary))
        print(f'\n{name}: written {p}')
        for r in summary['rows']:
            print(f"  {r['condition']:<22} " + '  '.join(f"{k} {r[k][0]:.4f} ± {r[k][1]:.4f}" for k in METRICS) + f"  fit {r['fit_s']} s  RSS {r['peak_rss_mb']} MB  D probe {r['d_probe_auroc'][0]}")
        for n in summary['notes']: print('  note:', n)

if __name__ == '__main__': main()
