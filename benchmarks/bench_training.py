"""Images/s of stage I, stage II, feature extraction and prediction, and peak memory (prints figures; not a test).

Usage: python benchmarks/bench_training.py [--preset cpu] [--data ROOT --category CAT] [--steps 5] [--device cuda]
"""
import argparse, resource, statistics, time
from pathlib import Path
import torch
from tocoad.core import preset, seed_everything, LAYERS
from tocoad.data import load_samples, make_toy_dataset, AnomalyDataset, ImageTransform
from tocoad.backbone import FeatureExtractor
from tocoad.discriminator import DiscriminativeNetwork
from tocoad.contrastive import ContrastiveHead
from tocoad.generators import make_generator
from tocoad.training import Runtime, StageDataset, train_stage1, train_stage2, generator_from_config
from tocoad.model import ToCoAD

def peak_mb(rt):
    if rt.cuda: return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

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
    rt = Runtime(cfg.device, cfg.amp); seed_everything(0)
    print(f'device {rt.device}, preset {a.preset}, backbone {cfg.backbone}, {cfg.image_size} px, batch {cfg.batch_size}, {len(samples)} images')
    F = rt.prepare(FeatureExtractor(cfg.backbone, cfg.weights, LAYERS))
    base = AnomalyDataset(samples, ImageTransform(cfg.image_size, cfg.resize, cfg.crop, F.mean, F.std), normalize=False)
    D = rt.prepare(DiscriminativeNetwork(F.channels, cfg.decoder_width))
    head = rt.prepare(ContrastiveHead(F.channels, cfg.cl_layers, cfg.cl_concat, cfg.proj_dim, cfg.pred_layers))
    gen = generator_from_config(cfg)
    for name, fn in [('stage I', lambda: train_stage1(F, D, StageDataset(base, gen, 0, 0), cfg, rt, progress=False)),
                     ('stage II', lambda: train_stage2(F, D, head, StageDataset(base, gen, cfg.views, 1), cfg, rt, progress=False))]:
        if rt.cuda: torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
        t = time.perf_counter(); fn()
        if rt.cuda: torch.cuda.synchronize()
        dt = time.perf_counter() - t
        print(f'{name:>9}: {len(samples) / dt:7.2f} images/s  ({dt:.1f} s for one epoch)   peak memory {peak_mb(rt):.0f} MB')
    m = ToCoAD(cfg.replace(stages='none')); t = time.perf_counter(); m.fit(samples, progress=False); dt = time.perf_counter() - t
    print(f' bank fit: {len(samples) / dt:7.2f} images/s  (features + coreset {dt:.1f} s)   peak memory {peak_mb(rt):.0f} MB')
    x = torch.stack([m.transform.normalize(base[i]['image']) for i in range(min(16, len(base)))])
    ts = []
    for _ in range(3):
        t = time.perf_counter(); m.predict(x)
        if rt.cuda: torch.cuda.synchronize()
        ts.append(time.perf_counter() - t)
    print(f'  predict: {len(x) / statistics.median(ts):7.2f} images/s  (batch of {len(x)}, median of 3)')

if __name__ == '__main__': main()
