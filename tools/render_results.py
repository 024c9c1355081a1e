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
        if r.get('ivf'):
            v = r['ivf']; out += ['', f"The inverted-list search ({v['cells']} cells, probe {v['probe']}) found the exact nearest neighbour for {100 * v['exact_found']:.2f} % of the "
                                  f"{v['test_patches']} test patches (largest relative distance excess {v['largest_excess']:.4f}); metrics ivf vs exact: "
                                  + ', '.join(f"{k} {a:.4f} vs {b:.4f}" for k, (a, b) in v['metrics'].items()) + '.']
        out += ['', made_by(r), '']
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

BLOCKS = {'choose_stage1': choose_stage1, 'choose_bn': choose_bn, 'choose_stage2': choose_stage2, 'table5': table5, 'table5_reading': table5_reading,
          'demo': demo, 'peer': peer, 'predict': predict, 'coreset': coreset, 'notebook_times': notebook_times}

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
