"""Peer comparison: anomalib's PatchCore and tocoad's frozen baseline on the same images, backbone, weights and coreset algorithm.

Setting of issue 13: MVTec AD bottle, offline ImageNet tf_efficientnet_lite0 (mean = std = 0.5), its stride-8 and
stride-16 stages (anomalib: 'blocks.2', 'blocks.4'; tocoad: 'layer2', 'layer3'), 256 px without centre crop,
coreset 10 %, b = 9. anomalib's `PatchcoreModel` collects its own training embeddings; its memory bank is then
selected by tocoad's coreset (`MemoryBank.fit`, the same greedy as ours: its own greedy takes about 45 min on this
CPU), and it scores the test images with its own code. Both are measured by tocoad's metrics on the same
preloaded test tensors, in one run. Then tocoad's remaining differences from the peer are switched, one at a time
and together (`--set` fields of `ToCoADConfig`): map_upsample='nearest', map_scores='raw' (the map from Eq. 8's
distances; Eq. 9 only for the image score), and back to our former patch_pool_pad='exclude' (the 3×3 average
at the border leaves the zero padding out; the default now counts it, as PatchCore does).
`--texture` runs the same on a synthetic uniform texture instead (smoothed grey noise, 120 train, 30 good and 30
test images with one thin bright scratch each, written to --work in MVTec AD layout): the case where the border
handling shows.
Needs anomalib (pip install -e ".[bench]"); without it, says so and exits 0.
Usage: python benchmarks/peer_anomalib.py [--data ../shared/data/mvtec_ad] [--category bottle | --texture] [--threads 2]
"""
import argparse, importlib.util, os, sys, time, warnings
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from _results import write_result
from tocoad.core import data_root
os.environ.setdefault('HF_HUB_OFFLINE', '1')
import torch

VARIANTS = {'tocoad (defaults)': {}, "patch_pool_pad='exclude' (our former default)": dict(patch_pool_pad='exclude'),
            "map_upsample='nearest'": dict(map_upsample='nearest'), "map_scores='raw'": dict(map_scores='raw'),
            "both (PatchCore's choices throughout)": dict(map_upsample='nearest', map_scores='raw')}

def write_texture(root):
    "A uniform texture in MVTec AD layout: smoothed grey noise; test defects are one thin bright scratch each."
    import math
    import numpy as np
    import torchvision.transforms.v2.functional as TF
    from PIL import Image
    root = Path(root) / 'noise_texture'
    if (root / 'test').is_dir(): return root.parent
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.arange(256.), torch.arange(256.), indexing='ij')
    def texture(): x = TF.gaussian_blur(torch.randn(1, 1, 256, 256, generator=g), [17, 17], [2.0, 2.0])[0, 0]; return (x / x.std()).clamp(-1, 1) * 0.2 + 0.5
    def save(t, path): path.parent.mkdir(parents=True, exist_ok=True); Image.fromarray((t.clamp(0, 1) * 255).round().byte().numpy()).convert('RGB').save(path)
    for i in range(120): save(texture(), root / 'train' / 'good' / f'{i:03d}.png')
    for i in range(30): save(texture(), root / 'test' / 'good' / f'{i:03d}.png')
    for i in range(30):
        t = texture(); a = torch.rand(1, generator=g).item() * math.pi; cx, cy = (torch.rand(2, generator=g) * 160 + 48).tolist()
        L = 30 + 50 * torch.rand(1, generator=g).item()
        d = (xx - cx) * math.sin(a) - (yy - cy) * math.cos(a); u = (xx - cx) * math.cos(a) + (yy - cy) * math.sin(a)
        m = (d.abs() < 1.5) & (u.abs() < L / 2); t[m] += 0.175
        save(t, root / 'test' / 'scratch' / f'{i:03d}.png')
        (root / 'ground_truth' / 'scratch').mkdir(parents=True, exist_ok=True)
        Image.fromarray(m.numpy().astype(np.uint8) * 255).save(root / 'ground_truth' / 'scratch' / f'{i:03d}_mask.png')
    return root.parent

def tensors(ds):
    items = [ds[i] for i in range(len(ds))]
    return (torch.stack([b['image'] for b in items]), torch.stack([b['mask'][0] > 0.5 for b in items]),
            torch.tensor([int(b['label']) for b in items]))

def run_peer(x_train, x_test, weights):
    "anomalib's PatchcoreModel with our weights; its bank selected by tocoad's coreset on its own embeddings."
    from anomalib.models.image.patchcore.torch_model import PatchcoreModel
    from tocoad.core import preset
    from tocoad.parts import create_part
    p = PatchcoreModel(layers=['blocks.2', 'blocks.4'], backbone='tf_efficientnet_lite0', pre_trained=False, num_neighbors=9)
    fe = p.feature_extractor.feature_extractor; fe.load_state_dict({k: v for k, v in weights.items() if k in fe.state_dict()})
    t = time.perf_counter(); p.train()
    with torch.no_grad():
        for b in x_train.split(16): p(b)
    emb = torch.vstack(p.embedding_store); p.embedding_store.clear()
    p.memory_bank = create_part('bank', preset('cpu')).fit(emb).vectors.float(); fit_s = time.perf_counter() - t
    p.eval()
    with torch.no_grad(): outs = [p(b) for b in x_test.split(32)]
    return torch.cat([o.pred_score.flatten() for o in outs]), torch.cat([o.anomaly_map[:, 0] for o in outs]), fit_s, len(p.memory_bank)

if __name__ == '__main__':
    ap = argparse.ArgumentParser()
    ap.add_argument('--data', default=str(data_root('mvtec_ad')))
    ap.add_argument('--category', default='bottle'); ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--texture', action='store_true'); ap.add_argument('--work', default='runs/peer')
    a = ap.parse_args(); torch.set_num_threads(a.threads)
    if a.texture: a.data, a.category = str(write_texture(a.work)), 'noise_texture'
    if importlib.util.find_spec('anomalib') is None:
        print('anomalib is not installed: pip install -e ".[bench]" to run the peer comparison'); sys.exit(0)
    warnings.simplefilter('ignore')
    from tocoad.core import preset
    from tocoad.data import load_samples, AnomalyDataset
    from tocoad.metrics import evaluate_scores
    from tocoad.model import ToCoAD
    train, test = load_samples(a.data, a.category), load_samples(a.data, a.category, split='test')
    rows = {}
    for name, over in VARIANTS.items():
        m = ToCoAD(preset('cpu', stages='none', crop=False, image_size=256, resize=256, device='cpu', **over))
        t = time.perf_counter(); m.fit(train, progress=False); fit_s = time.perf_counter() - t
        if not rows: x_test, masks, labels = tensors(AnomalyDataset(test, m.transform)); x_train = tensors(AnomalyDataset(train, m.transform))[0]; weights = m.F.body.state_dict()
        p = m.predict(x_test); rows[name] = dict(evaluate_scores(labels, p['scores'], masks=masks, maps=p['maps']), fit_s=fit_s, bank=len(m.bank.vectors))
        print(f'{name} done', file=sys.stderr, flush=True)
    s, maps, fit_s, n_bank = run_peer(x_train, x_test, weights)
    rows['anomalib PatchCore (our coreset)'] = dict(evaluate_scores(labels, s, masks=masks, maps=maps), fit_s=fit_s, bank=n_bank)
    print(f'{a.category}: {len(x_train)} train / {len(x_test)} test images, tf_efficientnet_lite0 (offline ImageNet weights), 256 px without crop, '
          f'coreset 10 %, b = 9, {a.threads} threads, one run; metrics by tocoad.metrics on the same tensors')
    print(f'| {"":40} | image AUROC | pixel AUROC | AUPRO | bank | fit s |')
    print('|---|---|---|---|---|---|')
    for k, r in rows.items():
        print(f'| {k:40} | {r["image_auroc"]:.4f} | {r["pixel_auroc"]:.4f} | {r["pixel_aupro"]:.4f} | {r["bank"]} | {r["fit_s"]:.0f} |')
    write_result(f'peer_{a.category}', dict(what=f'{a.category}: {len(x_train)} train / {len(x_test)} test images, tf_efficientnet_lite0 (offline ImageNet weights), 256 px without crop, coreset 10 %, b = 9, {a.threads} threads, one run; metrics by tocoad.metrics on the same tensors',
                                          rows={k: {m: (round(v, 4) if isinstance(v, float) else v) for m, v in r.items() if m in ('image_auroc', 'pixel_auroc', 'pixel_aupro', 'fit_s', 'bank')} for k, r in rows.items()}))
