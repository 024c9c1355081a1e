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
import argparse, copy, sys, tempfile, time
from pathlib import Path
import numpy as np, torch
sys.path.insert(0, str(Path(__file__).parent))
from _results import write_result, data_sets
from tocoad.core import preset
from tocoad.data import load_samples, AnomalyDataset
from tocoad.runtime import Runtime
from tocoad.training import create_part, train_stage1, train_stage2, StageDataset, probe_discriminator, recalibrate_batchnorm
from tocoad.validation import validation_split, validation_images, validation_generator, validation_score, paired_standard_error, Guard

def setup(root, cat, over, **kw):
    cfg = preset('cpu', device='cpu', **over, **kw); rt = Runtime('cpu')
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
            F = create_part('F', cfg, rt=rt); tfm = create_part('transform', cfg, F); G = create_part('G', cfg); D = create_part('D', cfg, F, rt)
            curve, t0 = [], time.perf_counter()
            def on_epoch(e):
                curve.append(dict(epoch=e + 1, steps=(e + 1) * -(-a.pool // cfg.batch_size), seconds=round(time.perf_counter() - t0, 1),
                                  probe=round(probe_discriminator(F, D, G, tfm, held)['auroc'], 4)))
                print(name, lr, head, curve[-1], flush=True); D.train()
            train_stage1(F, D, StageDataset(AnomalyDataset(train, tfm, normalize=False), G, 0, cfg.seed), cfg, rt, progress=False, on_epoch=on_epoch)
            rows.append(dict(data=name, stage1_lr=lr, decoder_head=list(head), pool=a.pool, train_images=len(train), held_images=len(held), curve=curve))
    write_result('choose_stage1', dict(what="D's probe after each stage I epoch (pixel AUROC on G's anomalies in held-out normal training images)", rows=rows))

def stats_from_batches(F, cfg, rt, train, tfm):
    "F with batch-norm statistics re-estimated on stage II's batches: M augmented views and G's anomalies of every training image."
    ds = StageDataset(AnomalyDataset(train, tfm, normalize=False), create_part('G', cfg), cfg.views, cfg.seed + 1)
    items = []
    for i in range(len(ds)):
        it = ds[i]; items += [{'image': v} for v in it['views']] + [{'image': it['anomalous']}]
    return recalibrate_batchnorm(copy.deepcopy(F), items, rt, cfg.batch_size * (cfg.views + 1))

def bn(sets, a):
    rows = []
    for name, (root, cat, over) in sets.items():
        cfg, rt, train, held = setup(root, cat, over)
        F0 = create_part('F', cfg, rt=rt).eval(); tfm = create_part('transform', cfg, F0)
        vs = validation_images(held, tfm, validation_generator(cfg), cfg.seed)
        variants = {'frozen (ImageNet statistics)': F0,
                    'clean normal images (recalibrate, lr 0)': recalibrate_batchnorm(copy.deepcopy(F0), AnomalyDataset(train, tfm), rt, cfg.batch_size),
                    "stage II's batches (views + anomalies)": stats_from_batches(F0, cfg, rt, train, tfm)}
        scores = {k: validation_score(f, cfg, train, vs, rt, tfm) for k, f in variants.items()}
        base = scores['frozen (ImageNet statistics)']['per_image']
        for k, v in scores.items():
            rows.append(dict(data=name, statistics=k, score=round(v['score'], 4), minus_frozen=round(v['score'] - np.mean(base), 4),
                             se=round(paired_standard_error(base, v['per_image']), 4) if k != 'frozen (ImageNet statistics)' else None, held_images=len(held)))
            print(rows[-1], flush=True)
    write_result('choose_bn', dict(what="F's validation score (mean per-image pixel AUROC, CutPaste anomalies in held-out images) by the source of its batch-norm statistics; no training", rows=rows))

def stage2(sets, a):
    rows = []
    for name, (root, cat, over) in sets.items():
        epochs = 1 if name == 'texture640' else a.stage2_epochs
        cfg, rt, train, held = setup(root, cat, over, stage2_epochs=epochs, stage2_guard='off')
        F = create_part('F', cfg, rt=rt); tfm = create_part('transform', cfg, F); G = create_part('G', cfg)
        base = AnomalyDataset(train, tfm, normalize=False)
        D = create_part('D', cfg, F, rt); t0 = time.perf_counter()
        train_stage1(F, D, StageDataset(base, G, 0, cfg.seed), cfg, rt, progress=False)
        probe = probe_discriminator(F, D, G, tfm, held)['auroc']; print(name, 'stage I', round(time.perf_counter() - t0), 's, probe', round(probe, 4), flush=True)
        for bn_mode in ('frozen', 'train', 'recalibrate'):
            for lr in a.stage2_lrs:
                c = cfg.replace(stage2_bn=bn_mode, stage2_lr=lr); Fc, Dc = copy.deepcopy(F), copy.deepcopy(D)
                torch.manual_seed(c.seed); head = create_part('C', c, Fc, rt); guard = Guard(c, train, held, rt); t = time.perf_counter()
                train_stage2(Fc, Dc, head, StageDataset(base, G, c.views, c.seed + 1), c, rt, progress=False, guard=guard)
                s = guard.summary(); last = guard.records['scores'][-1]; first = guard.records['scores'][0]
                rows.append(dict(data=name, stage2_bn=bn_mode, stage2_lr=lr, epochs=epochs, d_probe=round(probe, 4), scores=s['scores'], before=s['before'], after=s['after'],
                                 se=round(paired_standard_error(first['per_image'], last['per_image']), 4), seconds=round(time.perf_counter() - t), held_images=len(held)))
                print(rows[-1], flush=True)
    write_result('choose_stage2', dict(what="F's validation score before stage II (epoch 0) and after each epoch, by stage2_bn and stage2_lr, after the chosen stage I", rows=rows))

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('parts', nargs='+', choices=['stage1', 'bn', 'stage2'])
    ap.add_argument('--data', nargs='+', default=['bottle', 'gravel', 'washer', 'texture640'])
    ap.add_argument('--stage1-lrs', nargs='+', type=float, default=[1e-4, 1e-3, 3e-3])
    ap.add_argument('--stage1-epochs', type=int, default=12); ap.add_argument('--pool', type=int, default=384)
    ap.add_argument('--stage2-lrs', nargs='+', type=float, default=[0.003125, 0.02]); ap.add_argument('--stage2-epochs', type=int, default=3)
    ap.add_argument('--threads', type=int, default=2)
    a = ap.parse_args(); torch.set_num_threads(a.threads)
    tmp = Path(tempfile.gettempdir()) / 'tocoad_choose'
    sets = data_sets(a.data, tmp / 'toy', tmp / 'texture640')
    for p in a.parts:
        if p == 'stage1': stage1({k: v for k, v in sets.items() if k != 'texture640'}, a)
        else: globals()[p](sets, a)

if __name__ == '__main__': main()
