"""Anomaly generator throughput at 224 px (prints figures and writes results/generators.json; not a test)."""
import statistics, sys, time
from pathlib import Path
import torch
sys.path.insert(0, str(Path(__file__).parent))
from _results import write_result
from tocoad.core import preset
from tocoad.parts import create_part
from skimage import data

def main():
    torch.set_num_threads(2)
    img = torch.nn.functional.interpolate(torch.from_numpy(data.astronaut()).permute(2, 0, 1).float()[None] / 255, size=(224, 224), mode='bilinear', antialias=True)[0]
    batch = img.expand(16, -1, -1, -1).clone(); rows = {}
    print('generator   images/s (one process, median of 5 batches of 16)   ms per batch of 16')
    for name in ('perlin', 'cutpaste', 'nsa'):
        G = create_part('G', preset('cpu', generator=name)); g = torch.Generator().manual_seed(0); ts = []
        for _ in range(5): t = time.perf_counter(); G.batch(batch, g); ts.append(time.perf_counter() - t)
        m = statistics.median(ts); rows[name] = round(16 / m, 1); print(f'{name:>9}   {16 / m:8.1f}   {1000 * m:8.1f}')
    write_result('generators', dict(what='images/s of each anomaly generator at 224 px, one process, 2 threads, median of 5 batches of 16', images_per_s=rows))

if __name__ == '__main__': main()
