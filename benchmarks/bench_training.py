"""Images/s of stage I, stage II, feature extraction and prediction, and peak memory (prints figures; not a test).

Usage: python benchmarks/bench_training.py [--preset cpu] [--data ROOT --category CAT] [--steps 5] [--device cuda]
"""
import argparse, statistics, time
import torch
from tocoad.core import preset, hw
from tocoad.data import load_samples, make_toy_dataset, AnomalyDataset
from tocoad.runtime import Runtime
from tocoad.model import ToCoAD
from _stages import time_stages, peak_mb

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--preset', default='cpu'); ap.add_argument('--data'); ap.add_argument('--category', default='bottle')
    ap.add_argument('--images', type=int, default=64, help='training images used for the timed epoch'); ap.add_argument('--device')
    ap.add_argument('--set', nargs='*', default=[])
    a = ap.parse_args()
    from tocoad.cli import parse_overrides
    cfg = preset(a.preset, stage1_epochs=1, stage2_epochs=1, device=a.device, **parse_overrides(a.set))
    if a.data: samples = load_samples(a.data, a.category)
    else: samples = load_samples(make_toy_dataset('/tmp/tocoad_bench_toy', categories=('washer',)), 'washer')
    samples = samples[:a.images]
    rt = Runtime(cfg.device, cfg.amp)
    print(f'device {rt.device}, preset {a.preset}, backbone {cfg.backbone}, {"x".join(map(str, hw(cfg.image_size)))} px, batch {cfg.batch_size}, {len(samples)} images')
    for name, dt, steps, loss, mb in time_stages(cfg, samples, rt):
        print(f'{name:>9}: {len(samples) / dt:7.2f} images/s  ({dt:.1f} s for one epoch)   peak memory {mb:.0f} MB')
    m = ToCoAD(cfg.replace(stages='none')); t = time.perf_counter(); m.fit(samples, progress=False); dt = time.perf_counter() - t
    print(f' bank fit: {len(samples) / dt:7.2f} images/s  (features + coreset {dt:.1f} s)   peak memory {peak_mb(rt):.0f} MB')
    test = AnomalyDataset(samples[:16], m.transform)  # normalised with the backbone's own statistics
    x = torch.stack([test[i]['image'] for i in range(len(test))])
    ts = []
    for _ in range(3):
        t = time.perf_counter(); m.predict(x)
        if rt.cuda: torch.cuda.synchronize()
        ts.append(time.perf_counter() - t)
    print(f'  predict: {len(x) / statistics.median(ts):7.2f} images/s  (batch of {len(x)}, median of 3)')

if __name__ == '__main__': main()
