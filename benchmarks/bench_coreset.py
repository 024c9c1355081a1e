"""Coreset time, peak memory and covering radius: the exact greedy (pruned) against the greedy within k-means cells.

Cases, all 152-dimensional patch features of the offline tf_efficientnet_lite0 (layers 2 + 3) at 256 px, 10 %:
- `bottle`: MVTec AD bottle's 209 training images (215k patches), where the data is present;
- `noise`: 209 images of smoothed grey noise, a uniform texture where the pruned greedy cannot skip anything;
- `large`: 980 noise images at four grain sizes (1.0M patches); the exact greedy is not run there (its time is
  extrapolated from `noise` by its n·N growth) and the radius is measured on a sample of 100k patches.
Each selection runs in a fresh process, so its peak RSS is its own; the features are kept in `--work` as
safetensors. The covering radius (Eq. 7's objective) is measured on the original features.
Usage: python benchmarks/bench_coreset.py [--cases bottle noise large] [--device cpu] [--threads 2]
"""
import argparse, json, os, resource, subprocess, sys, time
from pathlib import Path
from tocoad.core import data_root
os.environ.setdefault('HF_HUB_OFFLINE', '1')
import torch
sys.path.insert(0, str(Path(__file__).parent))
from _results import write_result

def features(case, a):
    "N×152 patch features of a case, computed once and kept in --work."
    path = Path(a.work) / f'{case}.safetensors'
    from safetensors.torch import save_file
    if path.is_file(): return path
    from tocoad.core import preset
    from tocoad.parts import create_part
    from tocoad.memory import aggregate_patches
    import torchvision.transforms.v2.functional as TF
    F = create_part('F_memory', preset('cpu'), weights='offline')  # layers 2 and 3, ImageNet weights
    def images():
        if case == 'bottle':
            from tocoad.data import load_samples, AnomalyDataset, ImageTransform
            ds = AnomalyDataset(load_samples(a.data, 'bottle'), ImageTransform(256, 256, crop=False, mean=F.mean, std=F.std))
            for s in range(0, len(ds), 16): yield torch.stack([ds[i]['image'] for i in range(s, min(s + 16, len(ds)))])
        else:
            g = torch.Generator().manual_seed(0); n = 209 if case == 'noise' else 980
            for s in range(0, n, 16):
                sig = [1.0, 2.0, 3.0, 5.0][(s // 16) % 4] if case == 'large' else 2.0
                x = TF.gaussian_blur(torch.randn(min(16, n - s), 1, 256, 256, generator=g), [int(8 * sig) | 1] * 2, [sig] * 2)
                yield (x / x.std()).clamp(-1, 1).expand(-1, 3, -1, -1) * 0.5  # grey, mean 0 in the backbone's normalisation
    with torch.inference_mode():
        out = [aggregate_patches(F(x), ('layer2', 'layer3'), patch_size=3).permute(0, 2, 3, 1).reshape(-1, 152) for x in images()]
    save_file({'x': torch.cat(out).contiguous()}, str(path)); return path

def radius_of(x, idx, sample=None, chunk=4096):
    "The covering radius of the rows `idx` of `x`: over all rows, or over the rows `sample` (a lower estimate)."
    rows = x if sample is None else x[sample]; c = x[idx]
    return max(torch.cdist(rows[i:i + chunk], c).min(1).values.max().item() for i in range(0, len(rows), chunk))

def select(feat_path, method, device, threads, out):
    "Child process: run one coreset selection, write indices, seconds and peak RSS."
    from safetensors.torch import load_file, save_file
    torch.set_num_threads(threads)
    from tocoad.search import greedy_coreset, greedy_coreset_cells
    x = load_file(feat_path)['x'].to(device); n = round(0.1 * len(x)); base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    idx = (greedy_coreset if method == 'global' else greedy_coreset_cells)(x, n, 128, 0)
    if device != 'cpu': torch.cuda.synchronize()
    s = time.perf_counter() - t
    save_file({'idx': idx.cpu()}, out)
    print(json.dumps(dict(seconds=s, peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, features_rss_mb=base / 1024)))

if __name__ == '__main__':
    ap = argparse.ArgumentParser()
    ap.add_argument('--data', default=str(data_root('mvtec_ad')))
    ap.add_argument('--cases', nargs='+', default=['bottle', 'noise', 'large']); ap.add_argument('--work', default='runs/bench_coreset')
    ap.add_argument('--device', default='cpu'); ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--select', nargs=3, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.select: select(*a.select[:2], a.device, a.threads, a.select[2]); sys.exit(0)
    torch.set_num_threads(a.threads); Path(a.work).mkdir(parents=True, exist_ok=True)
    from safetensors.torch import load_file
    print(f'coreset 10 %, projection 128, device {a.device}, {a.threads} threads, torch {torch.__version__}')
    print(f'{"case":8}{"patches":>10}{"method":>8}{"seconds":>10}{"peak RSS MB":>13}{"features MB":>13}{"radius":>9}{"/ exact":>9}')
    global_s, rows = {}, []
    for case in a.cases:
        if case == 'bottle' and not (Path(a.data) / 'bottle').is_dir(): print(f'bottle: no data at {a.data}, skipped'); continue
        fp = features(case, a); x = load_file(str(fp))['x']; N = len(x)
        sample = torch.randperm(N, generator=torch.Generator().manual_seed(1))[:100_000] if N > 300_000 else None
        radius = {}
        for method in (['cells'] if case == 'large' else ['global', 'cells']):
            out = str(Path(a.work) / f'{case}-{method}-idx.safetensors')
            r = subprocess.run([sys.executable, __file__, '--device', a.device, '--threads', str(a.threads), '--select', str(fp), method, out],
                               capture_output=True, text=True)
            if r.returncode: print(r.stderr[-2000:]); sys.exit(1)
            res = json.loads(r.stdout.strip().splitlines()[-1]); idx = load_file(out)['idx']
            radius[method] = radius_of(x, idx, sample)
            if method == 'global': global_s[case] = res['seconds']
            rel = f'{radius[method] / radius["global"]:9.3f}' if 'global' in radius else f'{"–":>9}'
            print(f'{case:8}{N:10d}{method:>8}{res["seconds"]:10.1f}{res["peak_rss_mb"]:13.0f}{res["features_rss_mb"]:13.0f}{radius[method]:9.3f}{rel}', flush=True)
            rows.append(dict(case=case, patches=N, method=method, seconds=round(res['seconds'], 1), peak_rss_mb=round(res['peak_rss_mb']), features_mb=round(res['features_rss_mb']),
                             radius=round(radius[method], 4), radius_over_exact=round(radius[method] / radius['global'], 4) if 'global' in radius else None))
        if case == 'large' and 'noise' in global_s:
            n_noise = 209 * 1024
            print(f'large: the exact greedy would take about {global_s["noise"] * (N / n_noise) ** 2 / 60:.0f} min (noise case × (N / {n_noise})², its n·N growth); radius over a sample of {len(sample)} patches')
    extrapolated = round(global_s['noise'] * (len(load_file(str(features('large', a)))['x']) / (209 * 1024)) ** 2 / 60) if 'large' in a.cases and 'noise' in global_s else None
    write_result('coreset', dict(what=f'coreset 10 %, projection 128, {a.device}, {a.threads} threads; each selection in its own process', rows=rows, large_exact_minutes_extrapolated=extrapolated))
