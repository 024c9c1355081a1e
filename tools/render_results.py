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

def load(name): return json.loads((RESULTS / f'{name}.json').read_text())
def f4(v): return '–' if v is None else f'{v:.4f}'
def pm(ms, digits=4): return '–' if ms is None or ms[0] is None else f'{ms[0]:.{digits}f} ± {ms[1]:.{digits}f}'
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
        out += [f"**{n}** ({len(r['rows'][0]['seeds'])} seeds; mean ± std)", '',
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

BLOCKS = {'choose_stage1': choose_stage1, 'choose_bn': choose_bn, 'choose_stage2': choose_stage2, 'table5': table5}

def render(text:str)->str:
    "`text` with every results block re-rendered."
    def sub(m):
        name = m.group(1)
        if name not in BLOCKS: raise SystemExit(f'README.md: unknown results block {name!r}; known: {sorted(BLOCKS)}')
        return f'<!-- results:{name} -->\n{BLOCKS[name]()}\n<!-- /results:{name} -->'
    return re.sub(r'<!-- results:([\w-]+) -->\n.*?\n<!-- /results:\1 -->', sub, text, flags=re.S)

def main():
    readme = ROOT / 'README.md'; old = readme.read_text(); new = render(old)
    if '--check' in sys.argv:
        if new != old:
            sys.stdout.writelines(difflib.unified_diff(old.splitlines(True), new.splitlines(True), 'README.md', 'rendered from results/'))
            sys.exit('README.md differs from what results/ renders: run .venv/bin/python tools/render_results.py')
        return
    if new != old: readme.write_text(new); print('README.md re-rendered from results/')

if __name__ == '__main__': main()
