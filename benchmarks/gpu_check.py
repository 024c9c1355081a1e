"""GPU check for a lent device (no internet there): the GPU column of every table of issue 21, in one run.

1. Prediction per step (bench_predict.py's split: bare forward, F, aggregation, exact and model search, scoring, maps,
   predict, and anomalib's PatchcoreModel on the same bank) on MVTec AD bottle at 256 px, the synthetic uniform
   texture at 640 × 256, and bottle at 640 × 256.
2. Training per step (bench_train_steps.py's split: data + generator, F forward, C, D, backward, optimizer, beside
   the bare forward + backward of F) at 256 × 256 and 640 × 256.
3. Memory by size: peak GPU memory (CUDA's allocator) and stage II images/s of one batch per stage, by input size
   and micro-batch (bench_train_memory.py's configurations, and 1024 × 1024).
Also one epoch of each stage of the `paper` preset with WideResNet50 (random init: the GPU machine has no model hub).
`--dry` runs every part on the CPU with the `tiny` preset, toy data and small sizes: a check that the script works
before a device is lent (tests/test_benchmarks.py runs it). Writes results/gpu_check.json unless `--dry`.
Usage: python benchmarks/gpu_check.py [--data ../shared/data/mvtec_ad] [--dry]
"""
import argparse, os, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault('HF_HUB_OFFLINE', '1')
import torch

def prediction(root, category, size, device, preset_name, repeats, work):
    "Per-step prediction figures (ms per image) of a frozen-feature model (offline EfficientNet-Lite0, as bench_predict.py) at `size` on `category`'s test images."
    from bench_predict import predict_steps
    from tocoad.core import preset
    from tocoad.data import load_samples, AnomalyDataset
    from tocoad.model import ToCoAD
    cfg = preset(preset_name, stages='none', crop=False, image_size=size, resize=size, device=device, backbone='tf_efficientnet_lite0', weights='offline')  # the peer is built on this backbone
    t = time.perf_counter(); m = ToCoAD(cfg).fit(load_samples(root, category), progress=False); fit_s = time.perf_counter() - t
    ds = AnomalyDataset(load_samples(root, category, split='test'), m.transform)
    x = torch.stack([ds[i]['image'] for i in range(len(ds))]).to(m.bank.vectors.device); n = len(x)
    steps, peer = predict_steps(m, list(x.split(32)), repeats)
    ms = {k: round(1000 * s / n, 3) for k, s in steps.items()}
    fwd, ours = steps['bare timm forward (whole classifier)'], steps['tocoad predict (all of it)']
    row = dict(data=category, size=list(size), fit_s=round(fit_s, 1), search=m.bank.search_kind, search_choice={k: m.timings.get(k) for k in ('knn_choice', 'knn_exact_ms', 'knn_cells_ms', 'knn_cells_probe', 'knn_screen_ms', 'knn_screen_groups')},
               ms_per_image=ms, predict_over_forward=round(fwd / ours, 3), search_over_forward=round(steps[f'neighbour search, model ({m.bank.search_kind})'] / fwd, 3),
               peer_over_predict=round(steps['anomalib PatchcoreModel, same bank'] / ours, 3) if peer is not None else None)
    print(f"  predict {category} {size}: {n / ours:.1f} images/s, {row['predict_over_forward']}x the bare forward, peer ratio {row['peer_over_predict']}, "
          f"search {row['search']} ({row['search_over_forward']}x the forward); " + ', '.join(f'{k} {v}' for k, v in ms.items()))
    return row

def main():
    ap = argparse.ArgumentParser(); ap.add_argument('--data', default=None); ap.add_argument('--dry', action='store_true', help='CPU, tiny preset, toy data, small sizes')
    ap.add_argument('--work', default='/tmp/tocoad_gpu_check')
    a = ap.parse_args()
    from bench_predict import texture_data
    from bench_train_memory import one
    from bench_train_steps import split_steps, report
    from tocoad.core import data_root, preset
    from tocoad.data import load_samples, make_toy_dataset
    from _stages import time_stages
    work = Path(a.work)
    if a.dry:
        device, pname, repeats, steps = 'cpu', 'tiny', 1, 1
        toy = make_toy_dataset(work / 'toy', categories=('washer',), n_train=8, n_test_good=2, n_test_defect=2, size=96)
        pred_sets = [(toy, 'washer', (64, 64))]; train_sizes = [(64, 64)]; mem = [((96, 64), 2)]
        tex_images = 8; print('dry run on the CPU: tiny preset, toy data, small sizes (figures mean nothing)')
    else:
        assert torch.cuda.is_available(), 'no CUDA device: this script is for a GPU machine (or use --dry)'
        device, pname, repeats, steps = 'cuda', 'cpu', 5, 5
        print(torch.cuda.get_device_name(), torch.__version__)
        mvtec = Path(a.data) if a.data else data_root('mvtec_ad'); tex = texture_data(work / 'texture640', (640, 256), train=200)
        pred_sets = [(mvtec, 'bottle', (256, 256)), (tex, 'texture', (640, 256)), (mvtec, 'bottle', (640, 256))]
        train_sizes = [(256, 256), (640, 256)]; mem = [(s, m) for s in ((256, 256), (640, 256), (1024, 1024)) for m in (0, 16, 4)]
        tex_images = 32
    out = dict(device=torch.cuda.get_device_name() if device == 'cuda' else 'cpu (dry run)', prediction=[], training=[], memory=[])
    print('1. prediction per step')
    for root, cat, size in pred_sets: out['prediction'].append(prediction(root, cat, size, device=device, preset_name=pname, repeats=repeats, work=work))
    print('2. training per step')
    for H, W in train_sizes:
        cfg = preset(pname, image_size=(H, W), resize=(H, W), crop=False, val_holdout=0.0, device=device, **({'num_workers': 8} if device == 'cuda' else {}))
        samples = load_samples(texture_data(work / f'texture_{H}x{W}', (H, W), train=max(tex_images, 2 * cfg.batch_size)), 'texture')
        out['training'].append(dict(size=[H, W], **report(split_steps(cfg, samples, steps=steps), title=f'  {pname} preset {H}x{W} on {device}')))
    print('3. memory by size and micro-batch (one batch per stage)')
    for size, micro in mem:
        r = one(size, micro, images=tex_images if a.dry else 16, preset_name=pname, device=device, work=str(work / 'mem'))
        if device == 'cuda': r['peak_what'] = 'CUDA allocator peak (MB)'
        out['memory'].append(r); print(f"  {r['size']} micro_batch {micro} (uses {r['micro_used']}): peak {r['peak_mb']} MB, stage II {r['stage_ii_images_per_s']} images/s")
    if not a.dry:
        print('4. the paper preset, WideResNet50 (random init), one epoch per stage on bottle')
        cfg = preset('paper', weights='random', stage1_epochs=1, stage2_epochs=1, num_workers=8, device=device); bottle = load_samples(mvtec, 'bottle')
        out['paper_epochs'] = [dict(stage=name, seconds=round(dt, 1), steps=n, images_per_s=round(len(bottle) / dt, 1), peak_mb=round(mb)) for name, dt, n, loss, mb in time_stages(cfg, bottle)]
        print('  ' + '; '.join(f"{r['stage']}: {r['images_per_s']} images/s, peak {r['peak_mb']} MB" for r in out['paper_epochs']))
        from _results import write_result
        write_result('gpu_check', out)
    return out

if __name__ == '__main__': main()
