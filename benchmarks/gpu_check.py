"""GPU check for a lent device (no internet there): one epoch of each stage of the `paper` preset on MVTec AD bottle.

Runs WideResNet50 (random init: the GPU machine has no model hub) and the offline ImageNet backbone, and prints
step times, images/s and peak GPU memory. Usage: python benchmarks/gpu_check.py [--data ../shared/data/mvtec_ad]
"""
import argparse, time
import torch
from tocoad.core import data_root
from tocoad.core import preset
from tocoad.data import load_samples
from tocoad.model import ToCoAD
from _stages import time_stages

def run(cfg, samples, test):
    for name, dt, steps, loss, mb in time_stages(cfg, samples):
        print(f'  {name}: {steps} steps in {dt:.1f} s = {dt / steps:.3f} s/step, {len(samples) / dt:.1f} images/s, '
              f'peak GPU memory {mb / 1024:.2f} GiB, last loss {loss:.4f}')
    torch.cuda.reset_peak_memory_stats(); t = time.perf_counter()
    m = ToCoAD(cfg.replace(stages='none')).fit(samples, progress=False); torch.cuda.synchronize(); dt = time.perf_counter() - t
    print(f'  bank: {dt:.1f} s (coreset {m.timings["coreset_s"]:.1f} s by {m.timings["coreset_greedy"]}, {m.timings["bank_size"]} of {m.timings["n_patches"]}; search {m.timings["knn_index"]}, probe {m.timings["knn_probe"]})')
    r = m.evaluate(test, progress=False)
    print(f'  frozen features: image AUROC {r["image_auroc"]:.4f}, pixel AUROC {r["pixel_auroc"]:.4f}, predict {r["predict_images_per_s"]:.1f} images/s, '
          f'peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB')

if __name__ == '__main__':
    ap = argparse.ArgumentParser(); ap.add_argument('--data', default=str(data_root('mvtec_ad')))
    a = ap.parse_args()
    assert torch.cuda.is_available(), 'no CUDA device: this script is for a GPU machine'
    print(torch.cuda.get_device_name(), torch.__version__)
    samples, test = load_samples(a.data, 'bottle'), load_samples(a.data, 'bottle', split='test')
    for name, cfg in [('paper preset, WideResNet50 (random init: no hub on the GPU machine)', preset('paper', weights='random', stage1_epochs=1, stage2_epochs=1, num_workers=8)),
                      ('paper schedule, offline ImageNet tf_efficientnet_lite0', preset('paper', backbone='tf_efficientnet_lite0', weights='offline', stage1_epochs=1, stage2_epochs=1, num_workers=8))]:
        print(name); run(cfg, samples, test)
