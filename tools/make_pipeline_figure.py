"""Draw the method at a glance (in the spirit of the paper's Fig. 2) with matplotlib boxes and arrows only.

Three bands, read top to bottom: stage I (D learns G's anomalies on frozen F), stage II (F fine-tuned with SimSiam and
the frozen D's negative guide), inference (memory bank, coreset, Eq. 8-9). Every box names its symbol, its notebook and
its equations; a grey dashed side box marks our validation protocol (09a_validation).

    .venv/bin/python tools/make_pipeline_figure.py                 # writes nbs/images/pipeline.png
    .venv/bin/python tools/make_pipeline_figure.py --out /tmp/p.png
"""
import argparse, io
from pathlib import Path

import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / 'nbs' / 'images' / 'pipeline.png'
W, H = 9.0, 7.0  # inches; the axes are in inches too, so a box is placed where it is drawn
BAND = dict(I='#e8f0fb', II='#fdf0e2', III='#e9f5ea')  # background of each band
EDGE = dict(I='#3b6fb6', II='#c0661f', III='#3f8f4a', data='#555555', val='#6f6f6f')
NOTE = '#4a4a4a'  # colour of the notebook / equation lines
# column x-ranges (left, width), in inches: the inputs, then four columns of boxes
C0, C1, C2, C3, C4 = (0.58, 0.88), (1.7, 1.66), (3.58, 1.34), (5.14, 1.9), (7.26, 1.69)

def box(ax, col, yc, h, title, body='', ref='', edge='#333333', fill='white', dashed=False, size=8.0):
    "A rounded box in column `col` centred at height `yc`: a bold title, plain body lines and grey reference lines."
    x, w = col
    ax.add_patch(FancyBboxPatch((x, yc - h / 2), w, h, boxstyle='round,pad=0,rounding_size=0.07', lw=1.1 if dashed else 1.3,
                                ec=edge, fc=fill, ls='--' if dashed else '-', zorder=2))
    lines = [(title, dict(weight='bold', size=size + 1, color='black'))]
    lines += [(b, dict(size=size, color='black')) for b in body.split('\n') if b]
    lines += [(r, dict(size=size - 0.5, color=NOTE, style='italic')) for r in ref.split('\n') if r]
    step = 0.152 * size / 8
    top = yc + step * (len(lines) - 1) / 2
    for i, (t, kw) in enumerate(lines):
        ax.text(x + w / 2, top - i * step, t, ha='center', va='center', zorder=3, **kw)
    return dict(l=x, r=x + w, t=yc + h / 2, b=yc - h / 2, x=x + w / 2, y=yc)

def arrow(ax, a, b, color='#333333', dashed=False, rad=0.0, label='', at=None, ha='center', lsize=7.5):
    "An arrow from point `a` to point `b` (inches); `label` is written at point `at` (default: the middle, just above)."
    ax.add_patch(FancyArrowPatch(a, b, arrowstyle='-|>', mutation_scale=11, lw=1.3, color=color, ls='--' if dashed else '-',
                                 connectionstyle=f'arc3,rad={rad}', shrinkA=1, shrinkB=1, zorder=4))
    if label:
        x, y = at or ((a[0] + b[0]) / 2, (a[1] + b[1]) / 2 + 0.1)
        ax.text(x, y, label, ha=ha, va='center', size=lsize, color=color, zorder=5,
                bbox=dict(boxstyle='round,pad=0.1', fc='white', ec='none', alpha=0.8))

def band(ax, y0, y1, key, name, nb, x1=W - 0.03):
    "A coloured background band, named on its left edge (turned by 90°)."
    ax.add_patch(FancyBboxPatch((0.03, y0), x1 - 0.03, y1 - y0, boxstyle='round,pad=0,rounding_size=0.1', lw=0, fc=BAND[key], zorder=0))
    ax.text(0.2, (y0 + y1) / 2, name, rotation=90, ha='center', va='center', size=10, weight='bold', color=EDGE[key])
    ax.text(0.42, (y0 + y1) / 2, nb, rotation=90, ha='center', va='center', size=8, style='italic', color=EDGE[key])

def draw():
    "The figure: returns the matplotlib Figure."
    fig = plt.figure(figsize=(W, H))
    ax = fig.add_axes([0, 0, 1, 1]); ax.set_xlim(0, W); ax.set_ylim(0, H); ax.axis('off')
    ax.text(W / 2, H - 0.18, 'ToCoAD at a glance: two training stages adapt F, then a memory bank of normal patches scores each test patch',
            ha='center', va='center', size=9.5, weight='bold')

    # bands: stage I stops short of the validation side box in its top-right corner
    band(ax, 5.15, 6.62, 'I', 'Stage I (DNP)', '07_training', x1=C4[0] - 0.1)
    band(ax, 2.58, 5.05, 'II', 'Stage II (NCL)', '07_training')
    band(ax, 0.03, 2.48, 'III', 'Inference', '08_memory')

    data = box(ax, C0, 3.95, 4.9, 'Normal', 'training\nimages\n$T_{train}$\n\ndefect-free,\nno labels', '01_data', edge=EDGE['data'], fill='#f4f4f4')

    # --- stage I: G paints anomalies, frozen F describes them, D learns to segment them
    yI = 5.72
    g1 = box(ax, C1, yI, 0.86, 'G  anomaly generator', 'Perlin noise × texture\n(or CutPaste, NSA)', 'Eq. 1 · 02_generators', edge=EDGE['I'])
    f1 = box(ax, C2, yI, 0.86, 'F  frozen', 'feature extractor:\nWideResNet50,\nImageNet weights', '03_backbone', edge=EDGE['I'], fill='#eef1f5', size=7.6)
    d1 = box(ax, C3, yI, 0.86, 'D  discriminative net', r'inverse backbone → mask $\hat{y}_G$' + '\n' + r'focal loss $L_{dis}$ against $y_G$',
             'Eq. 2 · 05_discriminator, 04_losses', edge=EDGE['I'], size=7.6)
    arrow(ax, (data['r'], yI), (g1['l'], yI))
    arrow(ax, (g1['r'], yI), (f1['l'], yI), label='$I_G$', at=((g1['r'] + f1['l']) / 2, yI + 0.13))
    arrow(ax, (f1['r'], yI), (d1['l'], yI))
    arrow(ax, (g1['x'] + 0.3, g1['t']), (d1['x'] - 0.3, d1['t']), rad=-0.12, color=EDGE['I'], label='mask $y_G$', at=(f1['x'], 6.46))

    # --- validation side box (ours), top right, with its two hooks
    v = box(ax, C4, 5.88, 1.45, 'Validation (ours)', 'held-out normal images\n(every 10th, not trained on);\nD\'s probe: pixel AUROC\non G\'s anomalies;\nthe guard of stage II',
            '09a_validation', edge=EDGE['val'], fill='#f7f7f7', dashed=True, size=7.3)

    # --- stage II: anomaly lane on top (under stage I's D), view lane below
    ya, yv = 4.5, 3.42
    g2 = box(ax, C1, ya, 0.66, 'G  anomalies', "$I'_G$ with mask $y'_G$", 'Eq. 1 · 02_generators', edge=EDGE['II'])
    s2 = box(ax, C1, yv, 0.8, 'Augmented views', '$v^1, …, v^M$ of one image\n(crop, jitter, grey, blur)', '07_training', edge=EDGE['II'])
    f2 = box(ax, C2, (ya + yv) / 2, 1.86, 'F  fine-tuned', 'now trainable;\nboth lanes go\nthrough it in\none batch', '03_backbone', edge=EDGE['II'])
    d2 = box(ax, C3, ya, 0.66, 'D  frozen: negative guide', r"$L_{neg}$ = focal loss of $\hat{y}'_G$, $y'_G$", 'Eq. 2 · 04_losses', edge=EDGE['II'], fill='#eef1f5', size=7.6)
    c2 = box(ax, C3, yv, 0.95, 'C  contrastive (SimSiam)', 'projector + predictor,\nstop-gradient on z → $L_{sym}$', 'Eq. 3–5 · 06_contrastive, 04_losses',
             edge=EDGE['II'], size=7.6)
    l2 = box(ax, C4, (ya + yv) / 2, 1.0, 'Stage II loss', r'$L=\lambda\,L_{sym}+(1-\lambda)\,L_{neg}$', 'Eq. 6 · 04_losses\n07_training', edge=EDGE['II'])
    arrow(ax, (data['r'], ya), (g2['l'], ya)); arrow(ax, (data['r'], yv), (s2['l'], yv))
    arrow(ax, (g2['r'], ya), (f2['l'], ya)); arrow(ax, (s2['r'], yv), (f2['l'], yv))
    arrow(ax, (f2['r'], ya), (d2['l'], ya)); arrow(ax, (f2['r'], yv), (c2['l'], yv))
    arrow(ax, (d2['r'], ya), (l2['l'], l2['y'] + 0.25))
    arrow(ax, (c2['r'], yv), (l2['l'], l2['y'] - 0.25))
    arrow(ax, (d1['x'], d1['b']), (d2['x'], d2['t']), color=EDGE['I'], label='D of stage I, weights frozen', at=(d1['x'] + 0.05, 5.1))
    arrow(ax, (l2['x'] - 0.3, l2['b']), (f2['x'] + 0.25, f2['b']), color=EDGE['II'], dashed=True, rad=-0.25,
          label='gradients of L update F and C', at=(c2['x'], 2.7))
    arrow(ax, (v['l'], d1['y']), (d1['r'], d1['y']), color=EDGE['val'], dashed=True)
    arrow(ax, (v['x'] + 0.5, v['b']), (l2['x'] + 0.5, l2['t']), color=EDGE['val'], dashed=True, label='guard: keeps the best F', at=(v['x'], 4.83))

    # --- inference: bank lane on top, test lane below
    yb, yt = 1.8, 0.62
    f3 = box(ax, C2, (yb + yt) / 2, 2.0, 'F  fine-tuned', 'patch features\nof layers 2 + 3\n(3×3 average,\nconcatenated)', '08_memory', edge=EDGE['III'])
    t3 = box(ax, C1, yt, 0.66, 'Test image $I_t$', 'good or defective', '01_data', edge=EDGE['data'], fill='#f4f4f4')
    m3 = box(ax, C3, yb, 1.0, r'Memory bank $\mathcal{M}$', r'all normal patches $\mathcal{M}_O$' + '\n→ greedy coreset (k-center),\n10 % of them kept', 'Eq. 7 · 08_memory',
             edge=EDGE['III'], size=7.6)
    n3 = box(ax, C3, yt, 1.0, 'Patch score', "nearest neighbour c*: s′ (Eq. 8);\nreweighted by the b\nneighbours of c*: s (Eq. 9)", '08_memory',
             edge=EDGE['III'], size=7.4)
    o3 = box(ax, C4, (yb + yt) / 2, 1.3, 'Output', 'image score = max of s\nover its patches;\nanomaly map: up-sample\n+ Gaussian smoothing', '08_memory · 09_metrics', edge=EDGE['III'])
    arrow(ax, (data['r'], yb), (f3['l'], yb), label='all training images', at=((data['r'] + f3['l']) / 2, yb + 0.12))
    arrow(ax, (t3['r'], yt), (f3['l'], yt))
    arrow(ax, (f3['r'], yb), (m3['l'], yb)); arrow(ax, (f3['r'], yt), (n3['l'], yt), label='$p_t$', at=((f3['r'] + n3['l']) / 2, yt + 0.13))
    arrow(ax, (m3['x'], m3['b']), (n3['x'], n3['t']), color=EDGE['III'], label='search', at=(m3['x'] + 0.3, (m3['b'] + n3['t']) / 2), ha='left')
    arrow(ax, (n3['r'], yt), (o3['l'], yt))
    arrow(ax, (f2['x'], f2['b']), (f3['x'], f3['t']), color=EDGE['II'], label='F after stage II', at=(f2['x'] + 0.08, 2.53), ha='left')
    return fig

def save(fig, out:Path, dpi:int=100, colors:int=96):
    "Write `fig` as a palette PNG (flat colours and text need few colours: about a third of the RGB file's size)."
    buf = io.BytesIO(); fig.savefig(buf, dpi=dpi, format='png', metadata={'Software': None})
    img = Image.open(buf).convert('RGB').quantize(colors=colors, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    out.parent.mkdir(parents=True, exist_ok=True); img.save(out, optimize=True)

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--out', type=Path, default=OUT, help=f'PNG to write (default: {OUT.relative_to(ROOT)})')
    p.add_argument('--dpi', type=int, default=100)
    a = p.parse_args(argv)
    fig = draw(); save(fig, a.out, a.dpi); plt.close(fig)
    print(f'{a.out}: {a.out.stat().st_size / 1024:.0f} KB')

if __name__ == '__main__': main()
