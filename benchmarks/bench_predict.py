"""Model-only prediction throughput, split by step, beside the bare backbone forward and (where installed) anomalib's PatchCore.

Setting of issue 13: MVTec AD bottle, frozen features (`--train-stages none`), offline tf_efficientnet_lite0, 256 px
without centre crop, coreset 10 %, b = 9, batch 32, test images preloaded as tensors. The fitted model is kept in
`--work` so reruns only measure. Every figure is the median of `--repeats` passes over the same tensors, all in one
run, so the ratios are comparable even on a noisy machine. The peer is anomalib's `PatchcoreModel` given *our* bank
(same backbone, weights, tensors and bank size), so only its inference code differs.
With `--texture DIR`, the synthetic uniform texture of issue 21 instead (`shared/tools/make_texture.py DIR --h H --w W
--train 200`, written there if missing), where the probe calibrates to most cells and the bfloat16 screen competes
with the exact search; `--size H W` sets the input size
(default: 256 × 256 for bottle, 640 × 256 for the texture). The search's share of the bare forward is printed beside
the ratios (issue 21's goal: at most 50 %).
Usage: python benchmarks/bench_predict.py [--data ../shared/data/mvtec_ad] [--category bottle] [--threads 2]
       python benchmarks/bench_predict.py --texture runs/texture640 [--size 640 256]
"""
import argparse, importlib.util, os, statistics, sys, time, warnings
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from _results import write_result
from tocoad.core import data_root
os.environ.setdefault('HF_HUB_OFFLINE', '1')
import torch

SEARCH_KEYS = ('knn_choice', 'knn_exact_ms', 'knn_cells_ms', 'knn_cells_probe', 'knn_screen_ms', 'knn_screen_groups')  # the search timings at fit, as recorded

def median_time(fn, batches, repeats):
    "Median over `repeats` of the seconds one pass of `fn` over all `batches` takes (after one warm-up batch)."
    fn(batches[0]); times = []
    for _ in range(repeats):
        t = time.perf_counter()
        for b in batches: fn(b)
        times.append(time.perf_counter() - t)
    return statistics.median(times)

def texture_data(out:Path, size:tuple, train:int=200)->Path:
    "The synthetic uniform texture at `size` (H, W) in `out` (written by shared/tools/make_texture.py if missing): the root holding 'texture'."
    import subprocess
    if not (out / 'texture' / 'train').is_dir():
        tool = Path(__file__).resolve().parents[2] / 'shared' / 'tools' / 'make_texture.py'
        subprocess.run([sys.executable, str(tool), str(out), '--h', str(size[0]), '--w', str(size[1]), '--train', str(train)], check=True)
    return out

def query_sets(m, batches):
    "The patch features of each batch, as the bank's queries."
    from tocoad.memory import aggregate_patches
    cfg = m.cfg
    with torch.inference_mode():
        return [p.permute(0, 2, 3, 1).reshape(-1, p.shape[1]) for p in (aggregate_patches(m.F(b), cfg.memory_layers, patch_size=cfg.patch_size, feature_dim=cfg.feature_dim) for b in batches)]

def predict_steps(m, batches, repeats, bare=None, peer:bool=True):
    "Seconds for one pass over `batches` of each step of prediction (median of `repeats`), beside the bare timm forward and anomalib's PatchcoreModel on the same bank (if installed): (steps, peer model or None)."
    from tocoad.backbone import offline_classifier
    from tocoad.memory import aggregate_patches, anomaly_map
    from tocoad.search import NearestNeighbours
    cfg, dev = m.cfg, m.bank.vectors.device; sync = torch.cuda.synchronize if dev.type == 'cuda' else (lambda: None)
    def timed(fn, items):
        return median_time(lambda b: (fn(b), sync()), items, repeats)
    bare = bare or offline_classifier().to(dev).eval()
    feats = [m.F(b) for b in batches]; qs = query_sets(m, batches)
    grid = (feats[0][cfg.memory_layers[0]].shape[-2:]); exact = NearestNeighbours(m.bank.vectors); H, W = batches[0].shape[-2:]; steps = {}
    with torch.inference_mode():
        steps['bare timm forward (whole classifier)'] = timed(bare, batches)
        steps['backbone (F to layer 3)'] = timed(m.F, batches)
        steps['patch aggregation'] = timed(lambda f: aggregate_patches(f, cfg.memory_layers, patch_size=cfg.patch_size, feature_dim=cfg.feature_dim), feats)
        steps['neighbour search, exact (flat)'] = timed(lambda q: exact.search(q, 1), qs)
        steps[f'neighbour search, model ({m.bank.search_kind})'] = timed(lambda q: m.bank.knn.search(q, 1), qs)
        steps['bank scoring (search + Eq. 9)'] = timed(m.bank.score, qs)
        steps['map (up-sample + smooth)'] = timed(lambda q: anomaly_map(q[:, 0].reshape(-1, *grid), (H, W), sigma=cfg.smoothing_sigma), qs)
        steps['tocoad predict (all of it)'] = timed(m.predict, batches)
        p = None
        if peer and importlib.util.find_spec('anomalib') is not None:
            p = peer_model(m).to(dev); steps['anomalib PatchcoreModel, same bank'] = timed(p, batches)
        elif peer: print('(anomalib is not installed: pip install -e ".[bench]" for the peer figure)')
    return steps, p

def fitted_model(a):
    from tocoad.core import preset
    from tocoad.data import load_samples
    from tocoad.model import ToCoAD
    path = Path(a.work) / f'{a.category}-{a.size[0]}x{a.size[1]}-model'
    if (path / 'model.json').is_file(): return ToCoAD.load(path, device='cpu')
    cfg = preset('cpu', stages='none', crop=False, image_size=tuple(a.size), resize=tuple(a.size), coreset_ratio=0.1, reweight_b=9, device='cpu')
    m = ToCoAD(cfg).fit(load_samples(a.data, a.category), progress=True)
    return m.save(path) and m

def peer_model(m):
    "anomalib's PatchcoreModel with our backbone weights and our bank."
    from anomalib.models.image.patchcore.torch_model import PatchcoreModel
    p = PatchcoreModel(layers=['blocks.2', 'blocks.4'], backbone='tf_efficientnet_lite0', pre_trained=False, num_neighbors=9).eval()
    fe = p.feature_extractor.feature_extractor
    fe.load_state_dict({k: v for k, v in m.F.body.state_dict().items() if k in fe.state_dict()})
    p.memory_bank = m.bank.vectors.clone()
    return p

if __name__ == '__main__':
    ap = argparse.ArgumentParser()
    ap.add_argument('--data', default=str(data_root('mvtec_ad')))
    ap.add_argument('--category', default='bottle'); ap.add_argument('--work', default='runs/bench_predict')
    ap.add_argument('--threads', type=int, default=2); ap.add_argument('--repeats', type=int, default=3); ap.add_argument('--batch', type=int, default=32)
    ap.add_argument('--texture', help='folder of the synthetic uniform texture (written there if missing) instead of --data/--category')
    ap.add_argument('--size', type=int, nargs=2, metavar=('H', 'W'), help='input size (default 256 256; the texture: 640 256)')
    ap.add_argument('--train', type=int, default=200, help='training images of a texture written here')
    a = ap.parse_args(); torch.set_num_threads(a.threads); warnings.simplefilter('ignore')
    if a.texture: a.size = a.size or [640, 256]; a.data, a.category = str(texture_data(Path(a.texture), a.size, train=a.train)), 'texture'
    a.size = a.size or [256, 256]; tag = a.category + ('' if a.size == [256, 256] and not a.texture else f'_{a.size[0]}x{a.size[1]}')
    from tocoad.data import load_samples, AnomalyDataset
    from tocoad.search import NearestNeighbours, SCREEN_GROUP
    m = fitted_model(a); cfg = m.cfg
    ds = AnomalyDataset(load_samples(a.data, a.category, split='test'), m.transform)
    x = torch.stack([ds[i]['image'] for i in range(len(ds))]); n = len(x)
    batches = list(x.split(a.batch))
    print(f'{a.category}: {n} test images {tuple(x.shape[1:])}, bank {tuple(m.bank.vectors.shape)}, b = {cfg.reweight_b}, batch {a.batch}, '
          f'{a.threads} threads, torch {torch.__version__}; median of {a.repeats} passes')

    steps, peer = predict_steps(m, batches, a.repeats)
    ours = steps['tocoad predict (all of it)']; qs = query_sets(m, batches); exact = NearestNeighbours(m.bank.vectors)
    for k, s in steps.items(): print(f'  {k:40} {n / s:8.1f} images/s   {1000 * s / n:7.1f} ms/image')
    approx = None
    if m.bank.search_kind in ('ivf', 'screen'):
        found = torch.cat([m.bank.knn.search(q, 1)[0][:, 0] for q in qs]); ex = torch.cat([exact.search(q, 1)[0][:, 0] for q in qs])
        knob = f'{len(m.bank.cells[0])} cells, probe {m.bank.probe}' if m.bank.cells else f'{m.bank.knn.groups} groups of {SCREEN_GROUP}, {m.bank.candidates} re-ranked'
        print(f'{m.bank.search_kind}: {knob} (calibrated recall {m.bank.probe_recall:.4f} on held-out training patches); '
              f'on the {len(found)} test patches: exact neighbour found for {(found <= ex * (1 + 1e-5) + 1e-6).float().mean():.4f}, '
              f'largest relative distance excess {((found - ex) / ex.clamp(min=1e-6)).max():.4f}')
        samples = load_samples(a.data, a.category, split='test'); r_ivf = m.evaluate(samples, progress=False)
        with m.bank.exact_search(): r_flat = m.evaluate(samples, progress=False)
        print(f'metrics with the {m.bank.search_kind} search vs the exact search: ' + ', '.join(f'{k} {r_ivf[k]:.4f} vs {r_flat[k]:.4f}' for k in ('image_auroc', 'pixel_auroc', 'pixel_aupro')))
        approx = dict(kind=m.bank.search_kind, cells=len(m.bank.cells[0]) if m.bank.cells else None, probe=m.bank.probe, groups=None if m.bank.cells else m.bank.knn.groups,
                        candidates=m.bank.candidates, test_patches=len(found), exact_found=round(float((found <= ex * (1 + 1e-5) + 1e-6).float().mean()), 5),
                        largest_excess=round(float(((found - ex) / ex.clamp(min=1e-6)).max()), 4), metrics={k: [round(r_ivf[k], 4), round(r_flat[k], 4)] for k in ('image_auroc', 'pixel_auroc', 'pixel_aupro')})
    fwd = steps['bare timm forward (whole classifier)']; search = steps[f'neighbour search, model ({m.bank.search_kind})']
    print(f'search choice at fit: {m.timings.get("knn_choice", "(not timed)")}; exact {m.timings.get("knn_exact_ms")} ms, cells {m.timings.get("knn_cells_ms")} ms '
          f'(probe {m.timings.get("knn_cells_probe")}), screen {m.timings.get("knn_screen_ms")} ms (groups {m.timings.get("knn_screen_groups")}) on 2,048 held-out patches')
    print(f'search / bare forward: {search / fwd:.2f} (goal <= 0.5)')
    print(f'predict / bare forward: {fwd / ours:.2f} (goal >= 0.6)')
    if peer is not None: print(f'predict / anomalib: {steps["anomalib PatchcoreModel, same bank"] / ours:.2f} (goal >= 1.5)')
    write_result(f'predict_{tag}', dict(what=f'model-only prediction on {n} preloaded {a.category} test tensors {tuple(x.shape[1:])}, batch {a.batch}, {a.threads} threads, median of {a.repeats} passes',
                 bank=list(m.bank.vectors.shape), search=m.bank.search_kind, probe=m.bank.probe,
                 search_choice={k: m.timings.get(k) for k in SEARCH_KEYS}, search_over_forward=round(search / fwd, 3), ms_per_image={k: round(1000 * s / n, 2) for k, s in steps.items()},
                 predict_over_forward=round(fwd / ours, 3), peer_over_predict=round(steps['anomalib PatchcoreModel, same bank'] / ours, 3) if peer is not None else None,
                 approximate=approx))
