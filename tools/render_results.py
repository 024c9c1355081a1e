"""Render the README's measured tables from `results/*.json`, the one source of every measured number.

Each table sits in README.md between `<!-- results:NAME -->` and `<!-- /results:NAME -->`; this script replaces what
is between the markers with what `BLOCKS[NAME]` renders from the JSON files the benchmarks wrote.

    .venv/bin/python tools/render_results.py           # rewrite README.md
    .venv/bin/python tools/render_results.py --check   # exit 1, with a diff, when README.md differs (tests/test_results.py)
"""
import difflib, json, re, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / 'results'

def load(name):
    p = RESULTS / f'{name}.json'
    if not p.is_file(): raise SystemExit(f'tocoad: error: {p} is missing: run the benchmark that writes it (README.md names each block\'s command)')
    return json.loads(p.read_text())
def f4(v): return '–' if v is None else f'{v:.4f}'
def pm(ms, digits=4): return '–' if ms is None or ms[0] is None else f'{ms[0]:.{digits}f} ± {ms[1]:.{digits}f}'
def diff_se(x): return f"{x['difference']:+.4f}" + ('' if x['se'] is None else f" ± {x['se']:.4f}" if x['se'] >= 5e-5 else ' ± < 0.0001')
def made_by(r): return f"<sub>`{r['command']}` ({r['made']}, commit {r['commit']}, {r['machine']})</sub>"

def choose_stage1():
    r = load('choose_stage1'); rows = r['rows']
    marks = sorted({c['epoch'] for row in rows for c in row['curve']})
    show = [e for e in marks if e in (1, 2, 4, 6, 8, 10, 12)] or marks
    lines = ['| data | stage I learning rate | D head | ' + ' | '.join(f'epoch {e}' for e in show) + ' | s / epoch |', '|---|---|---|' + '---|' * (len(show) + 1)]
    for row in rows:
        c = {x['epoch']: x for x in row['curve']}; per = row['curve'][-1]['seconds'] / row['curve'][-1]['epoch']
        lines.append(f"| {row['data']} | {row['stage1_lr']:g} | {tuple(row['decoder_head'])} | " + ' | '.join(f4(c[e]['probe']) if e in c else '' for e in show) + f' | {per:.0f} |')
    return '\n'.join(lines + ['', f"D's probe: pixel AUROC on G's anomalies in held-out normal training images (0.5 is chance); a pool of {rows[0]['pool']} synthetic images, batch 16. " + made_by(r)])

def choose_bn():
    r = load('choose_bn'); rows = r['rows']
    lines = ['| data | batch-norm statistics of F | validation score | minus frozen | ± SE (paired) |', '|---|---|---|---|---|']
    lines += [f"| {x['data']} | {x['statistics']} | {x['score']:.4f} | {x['minus_frozen']:+.4f} | {f4(x['se']) if x['se'] is not None else ''} |" for x in rows]
    return '\n'.join(lines + ['', made_by(r)])

def choose_stage2():
    r = load('choose_stage2'); rows = r['rows']
    lines = ['| data | stage2_bn | stage II learning rate | frozen F | after stage II | difference | ± SE (paired) | epochs |', '|---|---|---|---|---|---|---|---|']
    lines += [f"| {x['data']} | {x['stage2_bn']} | {x['stage2_lr']:g} | {x['before']:.4f} | {x['after']:.4f} | {x['after'] - x['before']:+.4f} | {x['se']:.4f} | {x['epochs']} |" for x in rows]
    return '\n'.join(lines + ['', made_by(r)])

def table5():
    names = sorted(p.stem.removeprefix('table5_') for p in RESULTS.glob('table5_*.json'))
    out = []
    for n in names:
        r = load(f'table5_{n}')
        k = len(r['rows'][0]['seeds'])
        out += [f"**{n}** ({k} seed{'s' if k != 1 else ''}; mean ± std)", '',
                '| condition | image AUROC | pixel AUROC | AUPRO | D probe | validation: frozen F → after | F weight change | feature cosine | fit (s) | peak RSS (MB) |',
                '|---|---|---|---|---|---|---|---|---|---|']
        for x in r['rows']:
            val = f"{x['val_before'][0]:.4f} → {x['val_after'][0]:.4f}" if x['val_before'][0] is not None else '–'
            wc = f"{100 * x['weight_change'][0]:.3f} %" if x['weight_change'][0] is not None else '0'
            cos = '1' if x['feature_cosine'][0] is None else f4(x['feature_cosine'][0])
            out.append(f"| {x['condition']} | {pm(x['image_auroc'])} | {pm(x['pixel_auroc'])} | {pm(x['pixel_aupro'])} | {pm(x['d_probe_auroc'], 3)} | {val} | {wc} | "
                       f"{cos} | {x['fit_s']} | {x['peak_rss_mb']} |")
        out += [''] + [f'- {m}' for m in r['notes']] + ['', made_by(r), '']
    return '\n'.join(out).rstrip()

def table5_reading():
    from tocoad.ablation import table5_reading as reading
    lines = ['| data | comparison | effect of | pixel AUROC difference ± SE | | AUPRO difference ± SE | |', '|---|---|---|---|---|---|---|']
    for n in sorted(p.stem.removeprefix('table5_') for p in RESULTS.glob('table5_*.json')):
        r = load(f'table5_{n}'); px, pro = reading(r, 'pixel_auroc'), {x['comparison']: x for x in reading(r, 'pixel_aupro')}
        for x in px:
            y = pro[x['comparison']]
            lines.append(f"| {n} | {x['comparison']} | {x['effect_of']} | {diff_se(x)} | {x['verdict']} | {diff_se(y)} | {y['verdict']} |")
    return '\n'.join(lines + ['', 'SE: the standard error of the difference of two means over the seeds, √(s²ₐ/nₐ + s²ᵦ/nᵦ); beyond noise: larger than 2 SE '
                               '(`tocoad.ablation.table5_reading`, nbs/10a_ablation.ipynb).'])

def demo():
    r = load('demo')
    lines = [f"Measured: `tocoad demo` took {r['wall_s'] / 60:.1f} min and at most {r['peak_rss_gb']} GB of memory in one fresh process "
             f"({r['machine']}); its summary:", '', '| toy category | image AUROC | pixel AUROC | AUPRO | fit (s) |', '|---|---|---|---|---|']
    lines += [f"| {k} | {v['image_auroc']:.3f} | {v['pixel_auroc']:.3f} | {v['aupro']:.3f} | {v['fit_s']} |" for k, v in r['categories'].items()]
    return '\n'.join(lines + ['', made_by(r)])

def peer():
    out = []
    for p in sorted(RESULTS.glob('peer_*.json')):
        r = json.loads(p.read_text())
        out += [f"**{p.stem.removeprefix('peer_')}**: {r['what']}", '', '| | image AUROC | pixel AUROC | AUPRO | bank | fit (s) |', '|---|---|---|---|---|---|']
        out += [f"| {k} | {v['image_auroc']:.4f} | {v['pixel_auroc']:.4f} | {v['pixel_aupro']:.4f} | {v['bank']} | {v['fit_s']:.0f} |" for k, v in r['rows'].items()]
        out += ['', made_by(r), '']
    return '\n'.join(out).rstrip()

def predict():
    out = []
    for p in sorted(RESULTS.glob('predict_*.json')):
        r = json.loads(p.read_text())
        out += [f"{r['what']}; bank {' × '.join(map(str, r['bank']))}, search {r['search']}:", '', '| step | ms / image | images / s |', '|---|---|---|']
        out += [f'| {k} | {v:.1f} | {1000 / v:.1f} |' for k, v in r['ms_per_image'].items()]
        out += ['', f"tocoad predict runs at {r['predict_over_forward']:.2f} × the speed of the bare classifier forward"
                + (f", and anomalib's PatchcoreModel with the same bank takes {r['peer_over_predict']:.2f} × tocoad's time." if r.get('peer_over_predict') else '.')]
        if r.get('search_over_forward') is not None:
            c = r['search_choice']
            timed = [f"exact {c['knn_exact_ms']} ms"] + ([f"cells {c['knn_cells_ms']} ms (probe {c['knn_cells_probe']} cells)"] if c.get('knn_cells_ms') is not None else []) + (
                [f"screen {c['knn_screen_ms']} ms ({c['knn_screen_groups']} groups re-ranked)"] if c.get('knn_screen_ms') is not None else [])
            out += ['', f"The model's search takes {r['search_over_forward']:.2f} × the bare forward's time. At fit it was chosen by timing on 2,048 held-out patches: "
                    + ', '.join(timed) + f"; kept: {c['knn_choice']}." if c.get('knn_choice') else
                    f"The model's search takes {r['search_over_forward']:.2f} × the bare forward's time (a bank below IVF_FROM vectors: searched exactly, not timed)."]
        v = r.get('approximate') or r.get('ivf')
        if v:
            what = (f"The bfloat16 screen ({v['groups']} groups, {v['candidates']} re-ranked)" if v.get('kind') == 'screen' else
                    f"The inverted-list search ({v['cells']} cells, probe {v['probe']})")
            out += ['', f"{what} found the exact nearest neighbour for {100 * v['exact_found']:.2f} % of the "
                    f"{v['test_patches']} test patches (largest relative distance excess {v['largest_excess']:.4f}); metrics {v.get('kind', 'ivf')} vs exact: "
                    + ', '.join(f"{k} {a:.4f} vs {b:.4f}" for k, (a, b) in v['metrics'].items()) + '.']
        out += ['', made_by(r), '']
    return '\n'.join(out).rstrip()

def train_memory():
    out = []
    for p in sorted(RESULTS.glob('train_memory*.json')):
        r = json.loads(p.read_text())
        out += ['| input | micro_batch | images per micro-batch | F checkpointed | peak RSS (GB) | stage I peak (MB) | stage II peak (MB) | before training (MB) | stage II images / s |', '|---|---|---|---|---|---|---|---|---|']
        out += [f"| {x['size']} | {x['micro_batch'] or 'auto (0)'} | {x['micro_used']} | {'yes' if x.get('checkpoint_F') else 'no'} | {x['peak_gb']:.2f} | {x['stage_i_peak_mb']} | {x['stage_ii_peak_mb']} | {x['rss_start_mb']} | {x['stage_ii_images_per_s']:.2f} |" for x in r['rows']]
        fit = '; '.join(f"{s}: {v['mb_per_image']:.0f} MB per image in a stage II micro-batch ({v['kb_per_pixel']:.1f} KB per input pixel)" for s, v in r.get('fit', {}).items())
        out += ['', r['what'] + '. ' + (fit + '. ' if fit else '') + (r['note'] + '. ' if r.get('note') else '') + made_by(r), '']
    return '\n'.join(out).rstrip()

def train_steps():
    out = []
    for p in sorted(RESULTS.glob('train_steps_*.json')):
        r = json.loads(p.read_text()); parts = [k for k in r['ms']['stage II'] if k != 'step']
        out += [f"{r['what']}; batch {r['images_per_step']}, micro-batches of {r['micro']}:", '', '| ms per step | ' + ' | '.join(parts) + ' | step | images / s |', '|---|' + '---|' * (len(parts) + 2)]
        out += [f"| {s} | " + ' | '.join(f"{d[k]:.0f}" if k in d else '' for k in parts) + f" | {d['step']:.0f} | {1000 * r['images_per_step'] / d['step']:.2f} |" for s, d in r['ms'].items()]
        out += ['', f"Stage I runs at {r['stage_I_over_limit']:.2f} × the bare forward + backward of F on its images ({r['stage_I_over_forward']:.2f} × F's bare forward; F is frozen there), "
                f"stage II at {r['stage_II_over_limit']:.2f} × F's forward + backward of its views and anomalies; the networks' own work is "
                f"{100 * r['networks_share']['stage I']:.0f} % (stage I) and {100 * r['networks_share']['stage II']:.0f} % (stage II) of a step.", '', made_by(r), '']
    return '\n'.join(out).rstrip()

def coreset():
    r = load('coreset')
    lines = ['| case | patches | selection | seconds | peak RSS (MB) | coverage radius | radius / exact greedy |', '|---|---|---|---|---|---|---|']
    rel = lambda x: '–' if x['radius_over_exact'] is None else f"{x['radius_over_exact']:.3f}"
    lines += [f"| {x['case']} | {x['patches']} | {x['method']} | {x['seconds']:.1f} | {x['peak_rss_mb']} | {x['radius']:.3f} | {rel(x)} |" for x in r['rows']]
    if r.get('large_exact_minutes_extrapolated'): lines += ['', f"The exact greedy on the large case would take about {r['large_exact_minutes_extrapolated']} min (extrapolated from the noise case by its n·N growth)."]
    lines += ['', made_by(r)]
    g = load('generators')
    lines += ['', '| generator | images / s at 224 px |', '|---|---|'] + [f'| {k} | {v:.0f} |' for k, v in g['images_per_s'].items()] + ['', made_by(g)]
    return '\n'.join(lines)

def notebook_times():
    r = load('notebook_times')
    lines = ['Wall time of a whole notebook run, training cells included (`tools/execute_nbs.py --slow`):', '', '| notebook | minutes |', '|---|---|']
    lines += [f'| {k} | {v / 60:.1f} |' for k, v in sorted(r['times'].items())]
    return '\n'.join(lines + ['', made_by(r)])

def threads():
    r = load('threads')
    lines = ['| processes at once | torch threads each | OpenMP wait | steps / s, each | together | together / one alone |', '|---|---|---|---|---|---|']
    share = "tocoad's share (`THREADS`)"
    lines += [f"| {x['processes']} | {x['threads'] if x['threads'] != 'auto' else share} | {x['omp_wait']} | {', '.join(f'{v:.2f}' for v in x['steps_per_s'])} | {x['total']:.2f} | {x['total_over_solo']:.2f} |" for x in r['rows']]
    return '\n'.join(lines + ['', r['what'] + '. ' + made_by(r)])

def micro_bottle():
    return '\n\n'.join(micro_one(json.loads(p.read_text())) for p in sorted(RESULTS.glob('micro_batch_*.json')))

def micro_one(r):
    ks = ('image_auroc', 'pixel_auroc', 'pixel_aupro')
    row = lambda name, x, pieces: f"| {name} | {pieces} | " + ' | '.join(f4(x[k]) for k in ks) + f" | {x['peak_rss_mb'] / 1024:.1f} |"
    lines = ['| run | a batch of 16 in | image AUROC | pixel AUROC | AUPRO | peak RSS (GB) |', '|---|---|---|---|---|---|']
    lines += [row(f"before micro-batches, seed {x['seed']}", x, 'one piece') for x in r['before']]
    lines += [row(f"micro-batches, seed {r['micro']['seed']}", r['micro'], ' + '.join(map(str, r['micro']['pieces'])))]
    def where(k):
        (lo, hi), v = r['before_range'][k], r['micro'][k]
        return f'{k} above it by {v - hi:.5f}' if v > hi + 1e-9 else f'{k} below it by {lo - v:.5f}' if v < lo - 1e-9 else f'{k} inside'
    inside = ', '.join(where(k) for k in ks)
    return '\n'.join(lines + ['', f"{r['what']}. Against the range of the seeds before: {inside}. " + (r['note'] + '. ' if r.get('note') else '') + made_by(r)])

BLOCKS = {'choose_stage1': choose_stage1, 'choose_bn': choose_bn, 'choose_stage2': choose_stage2, 'table5': table5, 'table5_reading': table5_reading,
          'demo': demo, 'peer': peer, 'predict': predict, 'coreset': coreset, 'train_memory': train_memory, 'train_steps': train_steps, 'notebook_times': notebook_times,
          'threads': threads, 'micro_bottle': micro_bottle}

def render(text:str)->str:
    "`text` with every results block re-rendered."
    def sub(m):
        name = m.group(1)
        if name not in BLOCKS: raise SystemExit(f'README.md: unknown results block {name!r}; known: {sorted(BLOCKS)}')
        return f'<!-- results:{name} -->\n{BLOCKS[name]()}\n<!-- /results:{name} -->'
    return re.sub(r'<!-- results:([\w-]+) -->\n.*?<!-- /results:\1 -->', sub, text, flags=re.S)

def main():
    readme = ROOT / 'README.md'; old = readme.read_text(); new = render(old)
    if '--check' in sys.argv:
        if new != old:
            sys.stdout.writelines(difflib.unified_diff(old.splitlines(True), new.splitlines(True), 'README.md', 'rendered from results/'))
            sys.exit('README.md differs from what results/ renders: run .venv/bin/python tools/render_results.py')
        return
    if new != old: readme.write_text(new); print('README.md re-rendered from results/')

if __name__ == '__main__': main()
