"""GPU check for a lent device (no internet there): one epoch of each stage of the `paper` preset on MVTec AD bottle.

Runs WideResNet50 (random init: the GPU machine has no model hub) and the offline ImageNet backbone, and prints
step times, images/s and peak GPU memory. Usage: python benchmarks/gpu_check.py [--data ../shared/data/mvtec_ad]
"""
import argparse, statistics, time
from pathlib import Path
import torch
from tocoad.core import preset, seed_everything, LAYERS
from tocoad.data import load_samples, AnomalyDataset, ImageTransform
from tocoad.backbone import FeatureExtractor
from tocoad.discriminator import DiscriminativeNetwork
from tocoad.contrastive import ContrastiveHead
from tocoad.generators import make_generator
from tocoad.training import Runtime, StageDataset, train_stage1, train_stage2, generator_from_config
from tocoad.model import ToCoAD

def run(cfg, samples, test):
    rt = Runtime(cfg.device, cfg.amp); seed_everything(0)
    F = rt.prepare(FeatureExtractor(cfg.backbone, cfg.weights, LAYERS))
    base = AnomalyDataset(samples, ImageTransform(cfg.image_size, cfg.resize, cfg.crop, F.mean, F.std), normalize=False)
    D = rt.prepare(DiscriminativeNetwork(F.channels, cfg.decoder_width))
    head = rt.prepare(ContrastiveHead(F.channels, cfg.cl_layers, cfg.cl_concat, cfg.proj_dim, cfg.pred_layers))
    gen = generator_from_config(cfg)
    for name, fn in [('stage I', lambda: train_stage1(F, D, StageDataset(base, gen, 0, 0), cfg, rt, progress=False)),
                     ('stage II', lambda: train_stage2(F, D, head, StageDataset(base, gen, cfg.views, 1), cfg, rt, progress=False))]:
        torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats(); t = time.perf_counter()
        hist = fn(); torch.cuda.synchronize(); dt = time.perf_counter() - t
        steps = len(hist)
        print(f'  {name}: {steps} steps in {dt:.1f} s = {dt / steps:.3f} s/step, {len(samples) / dt:.1f} images/s, '
              f'peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB, last loss {hist[-1]["loss"]:.4f}')
    torch.cuda.reset_peak_memory_stats(); t = time.perf_counter()
    m = ToCoAD(cfg.replace(stages='none')).fit(samples, progress=False); torch.cuda.synchronize(); dt = time.perf_counter() - t
    print(f'  bank: {dt:.1f} s (coreset {m.timings["coreset_s"]:.1f} s, {m.timings["bank_size"]} of {m.timings["n_patches"]})')
    r = m.evaluate(test, progress=False)
    print(f'  frozen features: image AUROC {r["image_auroc"]:.4f}, pixel AUROC {r["pixel_auroc"]:.4f}, predict {r["predict_images_per_s"]:.1f} images/s, '
          f'peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB')

if __name__ == '__main__':
    ap = argparse.ArgumentParser(); ap.add_argument('--data', default=str(Path(__file__).resolve().parents[2] / 'shared' / 'data' / 'mvtec_ad'))
    a = ap.parse_args()
    assert torch.cuda.is_available(), 'no CUDA device: this script is for a GPU machine'
    print(torch.cuda.get_device_name(), torch.__version__)
    samples, test = load_samples(a.data, 'bottle'), load_samples(a.data, 'bottle', 'test')
    for name, cfg in [('paper preset, WideResNet50 (random init: no hub on the GPU machine)', preset('paper', weights='random', stage1_epochs=1, stage2_epochs=1, num_workers=8)),
                      ('paper schedule, offline ImageNet tf_efficientnet_lite0', preset('paper', backbone='tf_efficientnet_lite0', weights='offline', stage1_epochs=1, stage2_epochs=1, num_workers=8))]:
        print(name); run(cfg, samples, test)
