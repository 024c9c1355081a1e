"""Coreset, nearest-neighbour and scoring speed and memory (prints figures; not a test)."""
import os, resource, statistics, time, tracemalloc
from pathlib import Path
import torch
from tocoad.core import data_root
from tocoad.core import preset
from tocoad.memory import greedy_coreset_simple, covering_radius
from tocoad.search import greedy_coreset, NearestNeighbours
from tocoad.parts import create_part

torch.set_num_threads(int(os.environ.get('OMP_NUM_THREADS', os.cpu_count())))
MVTEC = data_root('mvtec_ad')

def patch_bank(n, dim=1536, seed=0):
    "n × dim patch features with the structure of real ones: bottle features of the offline backbone (repeated past 164k), lifted to `dim` by a fixed random linear map."
    cache = Path('/tmp/tocoad_bottle_feats.pt')
    if not cache.exists():
        from tocoad.core import preset
        from tocoad.data import load_samples
        from tocoad.model import ToCoAD
        from tocoad.parts import create_part
        cfg = preset('cpu', stages='none', device='cpu'); m = ToCoAD(cfg).use_extractor(create_part('F', cfg))
        f = m.embed_samples(load_samples(MVTEC, 'bottle')); torch.save(f.permute(0, 2, 3, 1).reshape(-1, f.shape[1]), cache)
    base = torch.load(cache, weights_only=True); g = torch.Generator().manual_seed(seed)
    idx = torch.arange(n) % len(base)
    lift = torch.randn(base.shape[1], dim, generator=g) / base.shape[1] ** 0.5
    return base[idx] @ lift

def peak_rss_mb(): return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

def timed(fn, repeats=3):
    ts = []
    for _ in range(repeats): t = time.perf_counter(); out = fn(); ts.append(time.perf_counter() - t)
    return statistics.median(ts), out

if __name__ == '__main__':
    print(f'threads: {torch.get_num_threads()}')
    print('\n== greedy coreset, 10 %, random projection to 128 (the default) ==')
    for n in (50_000, 160_000, 200_000):
        x = patch_bank(n); k = n // 10
        tracemalloc.start(); t = time.perf_counter(); idx = greedy_coreset(x, k, projection=128); dt = time.perf_counter() - t
        _, peak = tracemalloc.get_traced_memory(); tracemalloc.stop()
        print(f'{n:>7} × 1536 -> {k:>6}: pruned greedy {dt:6.1f} s   (features {x.numel() * 4 / 2**20:.0f} MB; process peak RSS {peak_rss_mb():.0f} MB)')
        if n == 50_000:
            t = time.perf_counter(); ref = greedy_coreset_simple(x, k, projection=128); dts = time.perf_counter() - t
            from tocoad.search import random_projection
            xp = random_projection(x, 128, g=torch.Generator().manual_seed(0))  # the space both loops ran in
            same = (ref == idx).float().mean().item()
            print(f'{"":>7}   textbook greedy {dts:6.1f} s   speed-up {dts / dt:.1f}×   identical picks {same:.0%} (they part at float32 near-ties)')
            print(f'{"":>7}   covering radius (Eq. 7): pruned {covering_radius(xp, idx):.4f}, textbook {covering_radius(xp, ref):.4f}')
        del x
    print('\n== nearest neighbour: one 224 px image (784 patches of 1536) against a 10k bank ==')
    bank, q = patch_bank(10_000, seed=1), patch_bank(784, seed=2)
    res = {}
    for backend in ('torch', 'faiss'):
        nn = NearestNeighbours(bank, backend); res[backend] = timed(lambda: nn.search(q, 1), 7)
        print(f'{backend:>6}: {1000 * res[backend][0]:7.1f} ms')
    print(f'same neighbours: {torch.equal(res["torch"][1][1], res["faiss"][1][1])};  faiss / torch time: {res["faiss"][0] / res["torch"][0]:.2f}×')
    mb = create_part('bank', preset('cpu', coreset_ratio=1.0)).fit(bank)
    t_score, _ = timed(lambda: mb.score(q), 7)
    print(f'scoring one image with Eq. 9 (b = 9), besides the backbone: {1000 * t_score:.1f} ms (target < 300 ms)')
