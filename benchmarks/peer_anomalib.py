"""Peer comparison: anomalib's PatchCore and tocoad's frozen baseline on the same data, backbone and weights.

Both use the offline ImageNet tf_efficientnet_lite0 (mean = std = 0.5), its stride-8 and stride-16 stages
(anomalib: 'blocks.2', 'blocks.4'; tocoad: 'layer2', 'layer3'), resize 256 -> centre crop 224, coreset 10 %,
b = 9. Prints image/pixel AUROC, fit seconds, predict images/s and peak memory, and ratios from one run.
Needs anomalib (pip install -e ".[bench]"); without it, says so and exits 0.
Usage: python benchmarks/peer_anomalib.py [--data ../shared/data/mvtec_ad] [--category bottle]
"""
import argparse, importlib.util, os, resource, sys, tempfile, time, warnings
from pathlib import Path
os.environ.setdefault('HF_HUB_OFFLINE', '1')
import torch

def peak_rss_mb(): return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

def run_anomalib(root, category, workdir):
    from torchvision.transforms import v2 as T
    from anomalib.data import MVTecAD
    from anomalib.engine import Engine
    from anomalib.models import Patchcore
    from anomalib.pre_processing import PreProcessor
    from tocoad.backbone import offline_state_dict
    pre = PreProcessor(transform=T.Compose([T.Resize((256, 256), antialias=True), T.CenterCrop((224, 224)), T.Normalize([0.5] * 3, [0.5] * 3)]))
    model = Patchcore(backbone='tf_efficientnet_lite0', layers=['blocks.2', 'blocks.4'], pre_trained=False, coreset_sampling_ratio=0.1,
                      num_neighbors=9, pre_processor=pre, visualizer=False)
    fe = model.model.feature_extractor.feature_extractor; sd = offline_state_dict()
    fe.load_state_dict({k: sd[k] for k in fe.state_dict()})
    dm = MVTecAD(root=root, category=category, train_batch_size=16, eval_batch_size=16, num_workers=0)
    engine = Engine(default_root_dir=workdir, logger=False, enable_progress_bar=False, accelerator='auto', devices=1)
    t = time.perf_counter(); engine.fit(model, datamodule=dm); fit_s = time.perf_counter() - t
    t = time.perf_counter(); res = engine.test(model, datamodule=dm, verbose=False)[0]; test_s = time.perf_counter() - t
    n_test = len(dm.test_data)
    return dict(image_auroc=float(res['image_AUROC']), pixel_auroc=float(res['pixel_AUROC']), fit_s=fit_s, predict_images_per_s=n_test / test_s)

def run_tocoad(root, category):
    from tocoad.core import preset
    from tocoad.data import load_samples
    from tocoad.model import ToCoAD
    m = ToCoAD(preset('cpu', stages='none'))
    t = time.perf_counter(); m.fit(load_samples(root, category), progress=False); fit_s = time.perf_counter() - t
    r = m.evaluate(load_samples(root, category, 'test'), progress=False)
    return dict(image_auroc=r['image_auroc'], pixel_auroc=r['pixel_auroc'], fit_s=fit_s, predict_images_per_s=r['predict_images_per_s'])

if __name__ == '__main__':
    ap = argparse.ArgumentParser()
    ap.add_argument('--data', default=str(Path(__file__).resolve().parents[2] / 'shared' / 'data' / 'mvtec_ad')); ap.add_argument('--category', default='bottle')
    a = ap.parse_args()
    if importlib.util.find_spec('anomalib') is None:
        print('anomalib is not installed: pip install -e ".[bench]" to run the peer comparison'); sys.exit(0)
    warnings.simplefilter('ignore')
    ours = run_tocoad(a.data, a.category); ours['peak_rss_mb'] = peak_rss_mb()
    with tempfile.TemporaryDirectory() as d: peer = run_anomalib(a.data, a.category, d)
    peer['peak_rss_mb'] = peak_rss_mb()
    print(f'{a.category}: tf_efficientnet_lite0 (offline ImageNet weights), 224 px, coreset 10 %, b = 9, device {"cuda" if torch.cuda.is_available() else "cpu"}')
    print(f'{"":24}{"tocoad":>12}{"anomalib":>12}{"ratio":>10}')
    for k in ('image_auroc', 'pixel_auroc', 'fit_s', 'predict_images_per_s', 'peak_rss_mb'):
        print(f'{k:24}{ours[k]:12.4f}{peer[k]:12.4f}{ours[k] / peer[k]:10.2f}')
    print('peak_rss_mb is the process high-water mark: tocoad runs first, so its figure is its own; anomalib\'s includes everything before it.')
