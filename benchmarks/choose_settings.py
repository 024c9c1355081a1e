"""Choose the `cpu` preset's training settings on the validation protocol (nbs/09a_validation.ipynb): held-out normal
training images only, never a test image. Three parts, each writing `results/choose_<part>.json`:

  stage1  D's probe (pixel AUROC on G's anomalies in held-out images) after every stage I epoch, for stage I
          learning rates and D's head widths, with the feature pool
  bn      F's validation score with its batch-norm statistics from ImageNet (frozen), from the clean normal
          training images, and from stage II's batches (augmented views and synthetic anomalies); no training
  stage2  F's validation score before stage II and after every epoch, for stage2_bn x stage2_lr, after the
          stage I chosen above (the guard only records)

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/choose_settings.py stage1 bn stage2
"""
import argparse, copy, json, sys, tempfile, time
from pathlib import Path
import numpy as np, torch
sys.path.insert(0, str(Path(__file__).parent))
from _results import write_result, data_sets
from tocoad.core import preset
from tocoad.data import load_samples, AnomalyDataset
from tocoad.parts import create_part
from tocoad.training import stage_parts, train_stage1, train_stage2, probe_discriminator, recalibrate_batchnorm
from tocoad.validation import validation_split, validation_images, validation_score, paired_standard_error, Guard

def setup(root, cat, over, **kw):
    cfg = preset('cpu', device='cpu', **over, **kw); rt = create_part('runtime', cfg)
    train, held = validation_split(load_samples(root, cat), cfg.val_holdout)
    return cfg, rt, train, held

def stage1(sets, a):
    rows = []
    grid = [(lr, head) for lr in a.stage1_lrs for head in [(16, 8)]] + [(1e-3, (64, 32))]
    for name, (root, cat, over) in sets.items():
        for lr, head in grid:
            if head == (64, 32) and name != 'bottle': continue  # the paper-sized head: on bottle only, for fewer epochs (4x the cost per step)
            epochs = a.stage1_epochs if head == (16, 8) else max(1, a.stage1_epochs // 3)
            cfg, rt, train, held = setup(root, cat, over, stage1_lr=lr, decoder_head=head, stage1_pool=a.pool, stage1_epochs=epochs, stage2_epochs=0)
            p = stage_parts(cfg, train, runtime=rt); F, tfm, G, D = p.F, p.transform, p.G, p.D
            curve, t0 = [], time.perf_counter()
            def on_epoch(e):
                curve.append(dict(epoch=e + 1, steps=(e + 1) * -(-a.pool // cfg.batch_size), seconds=round(time.perf_counter() - t0, 1),
                                  probe=round(probe_discriminator(F, D, G=G, transform=tfm, samples=held)['auroc'], 4)))
                print(name, lr, head, curve[-1], flush=True); D.train()
            train_stage1(F, D, dataset=p.stage1, cfg=cfg, rt=rt, progress=False, on_epoch=on_epoch)
            rows.append(dict(data=name, stage1_lr=lr, decoder_head=list(head), pool=a.pool, train_images=len(train), held_images=len(held), curve=curve))
    write_result('choose_stage1', dict(what="D's probe after each stage I epoch (pixel AUROC on G's anomalies in held-out normal training images)", rows=rows))

def stats_from_batches(F, cfg, rt, train):
    "F with batch-norm statistics re-estimated on stage II's batches: M augmented views and G's anomalies of every training image."
    ds = stage_parts(cfg.replace(stages='dnp+ncl'), train, runtime=rt).stage2  # stage II's items: views and G's anomalies
    items = []
    for i in range(len(ds)):
        it = ds[i]; items += [{'image': v} for v in it['views']] + [{'image': it['anomalous']}]
    return recalibrate_batchnorm(copy.deepcopy(F), items, rt=rt, batch_size=cfg.batch_size * (cfg.views + 1))

def bn(sets, a):
    rows = []
    for name, (root, cat, over) in sets.items():
        cfg, rt, train, held = setup(root, cat, over)
        F0 = create_part('F', cfg, runtime=rt).eval(); tfm = create_part('transform', cfg, F=F0)
        vs = validation_images(held, tfm, G=create_part('G_val', cfg), seed=cfg.seed)
        variants = {'frozen (ImageNet statistics)': F0,
                    'clean normal images (recalibrate, lr 0)': recalibrate_batchnorm(copy.deepcopy(F0), AnomalyDataset(train, tfm), rt=rt, batch_size=cfg.batch_size),
                    "stage II's batches (views + anomalies)": stats_from_batches(F0, cfg, rt, train)}
        scores = {k: validation_score(f, cfg, train=train, vs=vs, rt=rt, transform=tfm) for k, f in variants.items()}
        base = scores['frozen (ImageNet statistics)']['per_image']
        for k, v in scores.items():
            rows.append(dict(data=name, statistics=k, score=round(v['score'], 4), minus_frozen=round(v['score'] - np.mean(base), 4),
                             se=round(paired_standard_error(base, v['per_image']), 4) if k != 'frozen (ImageNet statistics)' else None, held_images=len(held)))
            print(rows[-1], flush=True)
    write_result('choose_bn', dict(what="F's validation score (mean per-image pixel AUROC, CutPaste anomalies in held-out images) by the source of its batch-norm statistics; no training", rows=rows))

def stage2(sets, a):
    rows, cache = [], Path(a.cache); cache.mkdir(parents=True, exist_ok=True)
    key = lambda name, bn_mode, lr: cache / f'{name}_{bn_mode}_{lr:g}.json'  # one finished row each: a rerun skips them
    for name, (root, cat, over) in sets.items():
        epochs = 1 if name == 'texture640' else a.stage2_epochs
        done = [key(name, b, lr) for b in ('frozen', 'train', 'recalibrate') for lr in a.stage2_lrs]
        if all(k.is_file() for k in done):
            rows += [json.loads(k.read_text()) for k in done]; print(name, ': every row done before, read from', cache, flush=True); continue
        cfg, rt, train, held = setup(root, cat, over, stage2_epochs=epochs, stage2_guard='off')
        p = stage_parts(cfg, train, runtime=rt); F, tfm, G, D = p.F, p.transform, p.G, p.D; t0 = time.perf_counter()
        train_stage1(F, D, dataset=p.stage1, cfg=cfg, rt=rt, progress=False)
        probe = probe_discriminator(F, D, G=G, transform=tfm, samples=held)['auroc']; print(name, 'stage I', round(time.perf_counter() - t0), 's, probe', round(probe, 4), flush=True)
        for bn_mode in ('frozen', 'train', 'recalibrate'):
            for lr in a.stage2_lrs:
                if key(name, bn_mode, lr).is_file(): rows.append(json.loads(key(name, bn_mode, lr).read_text())); continue
                c = cfg.replace(stage2_bn=bn_mode, stage2_lr=lr); Fc, Dc = copy.deepcopy(F), copy.deepcopy(D)
                torch.manual_seed(c.seed); C = create_part('C', c, F=Fc, runtime=rt); guard = Guard(c, train, held=held, rt=rt); t = time.perf_counter()
                train_stage2(Fc, Dc, C=C, dataset=p.stage2, cfg=c, rt=rt, progress=False, guard=guard)
                s = guard.summary(); last = guard.records['scores'][-1]; first = guard.records['scores'][0]
                rows.append(dict(data=name, stage2_bn=bn_mode, stage2_lr=lr, epochs=epochs, d_probe=round(probe, 4), scores=s['scores'], before=s['before'], after=s['after'],
                                 se=round(paired_standard_error(first['per_image'], last['per_image']), 4), seconds=round(time.perf_counter() - t), held_images=len(held)))
                key(name, bn_mode, lr).write_text(json.dumps(rows[-1])); print(rows[-1], flush=True)
    write_result('choose_stage2', dict(what="F's validation score before stage II (epoch 0) and after each epoch, by stage2_bn and stage2_lr, after the chosen stage I",
                                       rule='the preset takes the (stage2_bn, stage2_lr) with the largest mean gain (after - before) over the data sets',
                                       **({'note': a.note} if a.note else {}), rows=rows))

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('parts', nargs='+', choices=['stage1', 'bn', 'stage2'])
    ap.add_argument('--data', nargs='+', default=['bottle', 'gravel', 'washer', 'texture640'])
    ap.add_argument('--stage1-lrs', nargs='+', type=float, default=[1e-4, 1e-3, 3e-3])
    ap.add_argument('--stage1-epochs', type=int, default=12); ap.add_argument('--pool', type=int, default=384)
    ap.add_argument('--stage2-lrs', nargs='+', type=float, default=[0.003125, 0.02]); ap.add_argument('--stage2-epochs', type=int, default=3)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--cache', default='runs/choose_stage2', help='stage2: where each finished row is kept (a rerun skips it)')
    ap.add_argument('--note', default='', help='a sentence kept in the result (how it was made, what was cut)')
    a = ap.parse_args(); torch.set_num_threads(a.threads)
    tmp = Path(tempfile.gettempdir()) / 'tocoad_choose'
    sets = data_sets(a.data, tmp / 'toy', tmp / 'texture640')
    for p in a.parts:
        if p == 'stage1': stage1({k: v for k, v in sets.items() if k != 'texture640'}, a)
        else: globals()[p](sets, a)

if __name__ == '__main__': main()
